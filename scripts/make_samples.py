"""Write the README's sample grid: 32 faces G(z) of the shipped model, z ~ U(-1, 1).

    python scripts/make_samples.py [--out docs/samples.png] [--seed 0] [--checkpointDir CKPT]

The faces are the first 32 of `scripts/evaluate.py --realism`'s draw with the same seed,
so the grid shows the samples that face realism scores.
"""
import argparse

import numpy as np

from dcgan_completion.checkpoints import load_models
from dcgan_completion.images import save_grid
from dcgan_completion.networks import z_dim_of


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/samples.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpointDir", default=None, help="default: the shipped face model")
    args = p.parse_args(argv)
    generator, _ = load_models(args.checkpointDir)
    z = np.random.default_rng(args.seed).uniform(-1, 1, (32, z_dim_of(generator))).astype(np.float32)
    save_grid(args.out, generator(z, training=False).numpy(), cols=8)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

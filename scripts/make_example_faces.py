"""Write synthetic example faces, drawn by the shipped generator, into data/examples/.

    python scripts/make_example_faces.py [--seeds 1 3 5]

They are the project's own (no photo behind them), so they may ship with it.
"""
import argparse

import numpy as np

from dcgan_completion.checkpoints import load_models
from dcgan_completion.images import save_image
from dcgan_completion.networks import z_dim_of


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5])
    p.add_argument("--out", default="data/examples")
    args = p.parse_args(argv)
    generator, _ = load_models()
    for seed in args.seeds:
        z = np.random.default_rng(seed).uniform(-1, 1, (1, z_dim_of(generator))).astype(np.float32)
        save_image(f"{args.out}/generated-{seed}.png", generator(z, training=False).numpy()[0])
        print(f"wrote {args.out}/generated-{seed}.png")


if __name__ == "__main__":
    main()

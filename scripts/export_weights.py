"""Export a trained checkpoint as the package's shipped face model (float16 .npz).

    python scripts/export_weights.py /path/to/checkpoint_dir [--out dcgan_completion/weights/face64.npz]

Stores G(z) of four fixed z vectors computed by the source network beside the weights,
which the tests compare with the shipped copy.
"""
import argparse

import numpy as np

from dcgan_completion.checkpoints import SHIPPED_WEIGHTS, load_models, save_weights_file
from dcgan_completion.networks import z_dim_of


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="checkpoint folder or prefix written by train-dcgan")
    p.add_argument("--out", default=str(SHIPPED_WEIGHTS))
    p.add_argument("--float32", action="store_true", help="store float32 instead of float16")
    args = p.parse_args(argv)
    generator, discriminator = load_models(args.checkpoint)
    z = np.random.default_rng(0).uniform(-1, 1, (4, z_dim_of(generator))).astype(np.float32)
    save_weights_file(generator, discriminator, args.out, np.float32 if args.float32 else np.float16, reference_z=z)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""`train-encoder`: train the encoder that gives the search its starting z, for a model.

    train-encoder --checkpointDir checkpoint          # a model trained with train-dcgan
    train-encoder --out face64-with-encoder.npz       # the shipped model, into a copy

The encoder is kept with the model (dcgan_completion.encoder): beside a checkpoint as
`<prefix>.encoder.npz`, inside a weights file (.npz), or with --out in a new weights file
holding the model's networks and the encoder. It is saved every --save_every steps; run
the same command again to go on from the last save.
"""
import sys

from . import ArgumentParser, import_tensorflow, number, run

PROG = "train-encoder"


def build_parser():
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpointDir", "--checkpoint-dir", default=None,
                   help="the model: checkpoint folder or prefix from train-dcgan, or a weights file (.npz); "
                        "default: the face model shipped with the package (then give --out)")
    p.add_argument("--out", default=None,
                   help="write the model's networks and the encoder to this new weights file (.npz) instead "
                        "of keeping the encoder with the model")
    p.add_argument("--steps", type=number(int, minimum=1), default=10000, help="training steps (default 10000)")
    p.add_argument("--batch_size", "--batch-size", type=number(int, minimum=1), default=64)
    p.add_argument("--learning_rate", "--learning-rate", type=number(float, above=0), default=5e-4,
                   help="Adam's learning rate (default 0.0005)")
    p.add_argument("--seed", type=number(int, minimum=0), default=0, help="draws each step's z and masks")
    p.add_argument("--save_every", "--save-every", type=number(int, minimum=1), default=500,
                   help="save the encoder every N steps (default 500)")
    p.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16"), default="auto",
                   help="auto: mixed_bfloat16 where the hardware computes it natively, else float32")
    return p


def train_encoder_command(args):
    """Run the tool: the line to print at the end."""
    from ..errors import InputError

    if args.checkpointDir is None and args.out is None:
        raise InputError("the shipped model's file is part of the package: give --out FILE.npz for a copy "
                         "with the encoder, or --checkpointDir for your own model")
    if args.out is not None and not args.out.endswith(".npz"):
        raise InputError(f"--out {args.out}: give a weights file name ending in .npz")
    import_tensorflow()
    from ..checkpoints import load_models
    from ..encoder import build_encoder, encoder_step, load_encoder, save_encoder, train_encoder
    from ..networks import image_size_of, z_dim_of
    from ..training import default_precision

    precision = default_precision() if args.precision == "auto" else args.precision
    dtype = None if precision == "float32" else precision
    generator, discriminator = load_models(args.checkpointDir, dtype=dtype)
    destination = args.out or args.checkpointDir
    if args.out is not None:
        _copy_networks(args.checkpointDir, args.out, generator, discriminator)
    done = encoder_step(destination)
    if done >= args.steps:
        return f"the encoder already has {done} steps: nothing to do (raise --steps to train it further)"
    encoder = (load_encoder(destination, dtype=dtype) if done else None) or build_encoder(
        image_size_of(generator), z_dim_of(generator), dtype=dtype)
    reached = done

    def on_step(step, loss):
        nonlocal reached
        reached = step
        if step % args.save_every == 0:
            save_encoder(encoder, destination, step)

    try:
        train_encoder(generator, steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                      seed=args.seed, encoder=encoder, first_step=done + 1, precision=dtype, progress=True,
                      on_step=on_step)
    except KeyboardInterrupt:
        path = save_encoder(encoder, destination, reached)
        raise KeyboardInterrupt(f"the encoder at step {reached} is saved in {path}; "
                                "run the same command to go on") from None
    path = save_encoder(encoder, destination, args.steps)
    return f"step {args.steps}: encoder saved in {path} (computed in {precision})"


def _copy_networks(checkpoint, out, generator, discriminator):
    """Make `out` a weights file of the model's networks, unless it is one already
    (a run that goes on)."""
    import os

    from ..checkpoints import SHIPPED_WEIGHTS, save_weights_file
    from ..encoder import copy_weights_file

    if os.path.exists(out):
        return
    source = SHIPPED_WEIGHTS if checkpoint is None else checkpoint
    if str(source).endswith(".npz"):
        copy_weights_file(source, out)
    else:
        save_weights_file(generator, discriminator, out)


def main(argv=None):
    args = build_parser().parse_args(argv)
    print(run(PROG, train_encoder_command, args))


if __name__ == "__main__":
    sys.exit(main())

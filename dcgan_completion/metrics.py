"""Quality measures: PSNR and SSIM against the truth, and dlib face descriptors for face
realism (a Fréchet distance, as FID) and identity (whether a completion is the same person).

    from dcgan_completion.metrics import psnr, face_descriptors, face_realism, identity_distance
    psnr(completed, truth)                        # dB per image
    face_realism(samples, real_faces)             # 0 for sets of faces alike; higher is worse
    identity_distance(completed, truth)           # mean descriptor distance; < 0.6: same person

Images are batches [N, H, W, 3], either uint8 [0, 255] or floats in [-1, 1] (the
package's convention); the two may be mixed. The face measures are made for 64x64 faces
aligned as `align-faces` does. The face measures and PSNR run without TensorFlow; SSIM
loads it.
"""
from functools import lru_cache

import cv2
import dlib
import numpy as np
from tqdm import tqdm

from .alignment import packaged_model
from .errors import InputError
from .images import to_uint8

# PSNR of identical images (their error is 0): a finite cap, so that means stay finite.
MAX_PSNR = 100.0

# dlib's models, shipped by face-recognition-models.
LANDMARKS_5_FILE = "shape_predictor_5_face_landmarks.dat"
FACE_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DESCRIPTOR_SIZE = 128
# dlib treats two faces whose descriptors are closer than this as the same person
# (99.38% on the LFW benchmark, by dlib's documentation).
SAME_PERSON_THRESHOLD = 0.6

# How a face is prepared for dlib: its models were trained on faces of ~100+ pixels with
# some background around them, and its HOG detector finds faces of about 80 px and up.
DESCRIPTOR_FACE_SIZE = 128  # the face is resized (bicubic) to this ...
DESCRIPTOR_PADDING = 32  # ... then edge-replicated by this much on each side (-> 192x192)
DETECTOR_UPSAMPLE = 1
# The face's box in the padded image where the detector finds none (left, top, right,
# bottom): where it finds aligned faces, about.
FIXED_FACE_BOX = (40, 40, 152, 152)


# ---------------------------------------------------------------- pixels


def _unit_float(images, name):
    """A batch [N, H, W, C] as float64 in [0, 1]: uint8 / 255, or floats in [-1, 1] -> (x + 1) / 2."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise InputError(f"{name}: expected a batch of images [N, H, W, C], got shape {images.shape}")
    if images.dtype == np.uint8:
        return images / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"{name}: expected uint8 or float images, got {images.dtype}")
    _check_float_range(images, name)
    return (images.astype(np.float64) + 1.0) / 2.0


def _check_float_range(images, name):
    low, high = float(np.min(images)), float(np.max(images))
    if low < -1.001 or high > 1.001:
        raise InputError(
            f"{name}: float images must be in [-1, 1], got values in [{low:.3g}, {high:.3g}] "
            "(give uint8 [0, 255] images, or convert with images.to_float)"
        )


def _same_shape(a, b):
    if a.shape != b.shape:
        raise InputError(f"the two batches of images differ in shape: {a.shape} and {b.shape}")


def psnr(a, b, where=None):
    """Peak signal-to-noise ratio in dB, per image: [N] float64.

    `a` and `b` are uint8 [0, 255] or float [-1, 1] images (each read by its own dtype),
    compared on the [0, 1] scale, which gives the same figure as 8-bit images with peak
    255. `where` (bool, broadcastable to the images, e.g. the hole of a mask) limits the
    error to those pixels; an image with none of them gets NaN. Identical images give
    MAX_PSNR.
    """
    a, b = _unit_float(a, "psnr"), _unit_float(b, "psnr")
    _same_shape(a, b)
    err = (a - b) ** 2
    where = np.broadcast_to(np.ones((), bool) if where is None else np.asarray(where, bool), err.shape)
    counted = where.reshape(len(err), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = (err * where).reshape(len(err), -1).sum(1) / counted
    return np.where(counted > 0, 10 * np.log10(1.0 / np.maximum(mse, 10 ** (-MAX_PSNR / 10))), np.nan)


def ssim(a, b):
    """Structural similarity per image: [N] float32, TensorFlow's tf.image.ssim.

    Its defaults (11x11 Gaussian window, sigma 1.5, k1 0.01, k2 0.03) on the [0, 1] scale,
    the mean over pixels and channels; uint8 or float [-1, 1] images as `psnr`. TF computes
    in float32, so figures carry ~1e-3 of round-off (most in flat areas).
    """
    import tensorflow as tf  # only SSIM needs it: the face measures run without it

    a, b = _unit_float(a, "ssim"), _unit_float(b, "ssim")
    _same_shape(a, b)
    return tf.image.ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32), max_val=1.0).numpy()


# ---------------------------------------------------------------- face descriptors


@lru_cache(maxsize=1)
def _dlib_models():
    """(HOG face detector, 5-point landmark predictor, face recognition network), loaded once."""
    paths = {name: packaged_model(name) for name in (LANDMARKS_5_FILE, FACE_RECOGNITION_FILE)}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise InputError(
            f"dlib's {' and '.join(missing)} not found: install them with `pip install face-recognition-models`"
        )
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(paths[LANDMARKS_5_FILE])),
        dlib.face_recognition_model_v1(str(paths[FACE_RECOGNITION_FILE])),
    )


def _uint8_faces(images):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise InputError(f"face_descriptors: expected square RGB faces [N, size, size, 3], got shape {images.shape}")
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"face_descriptors: expected uint8 or float images, got {images.dtype}")
    _check_float_range(images, "face_descriptors")
    return to_uint8(images)


def prepare_face(face):
    """One aligned face, uint8 [size, size, 3], as dlib is shown it: 192x192 uint8.

    Resized to DESCRIPTOR_FACE_SIZE (bicubic), then DESCRIPTOR_PADDING pixels of edge
    replication on each side: aligned crops cut the face tight, and dlib's detector and
    networks expect some of the head around it.
    """
    size = DESCRIPTOR_FACE_SIZE
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    pad = DESCRIPTOR_PADDING
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def face_descriptors(images, return_fixed_box=False, progress=False):
    """dlib's 128-D face descriptor of each aligned face: [N, 128] float64.

    `images` are square RGB faces aligned as `align-faces` does (64x64 for the shipped
    model), uint8 or float [-1, 1]. Each is prepared by `prepare_face` (128x128 bicubic,
    32 px of edge replication: 192x192); dlib's HOG frontal face detector (upsampling
    once) gives the face's box, the largest where it finds several, or FIXED_FACE_BOX
    where it finds none (it misses many small or smeared faces); the 5-point landmark
    model places the face in that box, and dlib_face_recognition_resnet_model_v1 gives its
    descriptor. With `return_fixed_box`, also a bool [N]: which faces used the fixed box.
    """
    faces = _uint8_faces(images)
    detector, landmarks, network = _dlib_models()
    descriptors = np.zeros((len(faces), DESCRIPTOR_SIZE))
    fixed = np.zeros(len(faces), bool)
    for i, face in enumerate(tqdm(faces, desc="face descriptors", unit="face", disable=not progress)):
        prepared = prepare_face(face)
        boxes = detector(prepared, DETECTOR_UPSAMPLE)
        fixed[i] = len(boxes) == 0
        box = dlib.rectangle(*FIXED_FACE_BOX) if fixed[i] else max(boxes, key=lambda r: r.area())
        descriptors[i] = network.compute_face_descriptor(prepared, landmarks(prepared, box))
    return (descriptors, fixed) if return_fixed_box else descriptors


def _descriptors_of(faces_or_descriptors, name):
    """Descriptors [N, 128] given as they are, or computed from a batch of faces."""
    x = np.asarray(faces_or_descriptors)
    if x.ndim == 2:
        if x.shape[1] != DESCRIPTOR_SIZE:
            raise InputError(f"{name}: descriptors must be [N, {DESCRIPTOR_SIZE}], got shape {x.shape}")
        return x.astype(np.float64)
    if x.ndim == 4:
        return face_descriptors(x)
    raise InputError(f"{name}: give faces [N, size, size, 3] or descriptors [N, {DESCRIPTOR_SIZE}], got shape {x.shape}")


# ---------------------------------------------------------------- realism and identity


def _psd_eigenvalues(values):
    """Eigenvalues of a positive semi-definite matrix with round-off's set to 0.

    Those under numpy.linalg.matrix_rank's tolerance (largest * size * eps) are taken as 0:
    covariances of fewer faces than dimensions have many zero eigenvalues, which round-off
    makes +-1e-17, and a square root would turn those into errors of 1e-9 each.
    """
    tolerance = max(values.max(initial=0), 0) * len(values) * np.finfo(values.dtype).eps
    return np.where(values > tolerance, values, 0)


def _sqrtm_psd(matrix):
    """The square root of a symmetric positive semi-definite matrix, by its eigendecomposition."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(_psd_eigenvalues(values))) @ vectors.T


def frechet_distance(mean1, cov1, mean2, cov2):
    """Squared Fréchet (2-Wasserstein) distance between two Gaussians, as FID computes it.

    |m1 - m2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)). tr((C1 C2)^(1/2)) is computed as
    tr((C1^(1/2) C2 C1^(1/2))^(1/2)), equal to it (the two matrices are similar), whose
    argument is symmetric: numpy's symmetric eigendecomposition gives both roots, with
    eigenvalues at round-off level taken as 0 (no scipy.linalg.sqrtm needed).
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    root1 = _sqrtm_psd(cov1)
    middle = root1 @ cov2 @ root1
    cross = np.sqrt(_psd_eigenvalues(np.linalg.eigvalsh((middle + middle.T) / 2))).sum()
    distance = np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * cross
    return max(float(distance), 0.0)  # round-off can take a zero distance just below 0


def face_realism(generated, real):
    """How far generated faces are from real ones: the Fréchet distance of their descriptors.

    Each argument is a batch of aligned faces or their `face_descriptors` ([N, 128]; pass
    descriptors to reuse them or to count the fixed boxes). The distance between the two
    sets' means and covariances (np.cov, N - 1 normalised) of the descriptors, as FID does
    with Inception features; 0 for identical sets. It depends on the set sizes (small sets
    score higher): compare scores of equal sizes. The issue that introduced it measured
    0.03 for two sets of 256 real faces and 0.2 for a DCGAN after 7 epochs.
    """
    a, b = _descriptors_of(generated, "face_realism: generated"), _descriptors_of(real, "face_realism: real")
    if len(a) < 2 or len(b) < 2:
        raise InputError(f"face_realism needs at least 2 faces in each set, got {len(a)} and {len(b)}")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def identity_distance(completed, original, per_image=False):
    """How far completions drift from the person: Euclidean distance of their descriptors.

    `completed` and `original` are matching batches of aligned faces or their
    `face_descriptors`. The mean distance, or with `per_image` the distances [N]. dlib
    treats a distance under SAME_PERSON_THRESHOLD (0.6) as the same person.
    """
    a = _descriptors_of(completed, "identity_distance: completed")
    b = _descriptors_of(original, "identity_distance: original")
    if a.shape != b.shape:
        raise InputError(f"identity_distance: {len(a)} completed faces but {len(b)} originals: give one per original")
    distances = np.linalg.norm(a - b, axis=1)
    return distances if per_image else float(distances.mean())


def same_person_fraction(distances, threshold=SAME_PERSON_THRESHOLD):
    """The fraction of descriptor distances under `threshold` (dlib's 0.6): still the same person."""
    return float(np.mean(np.asarray(distances) < threshold))

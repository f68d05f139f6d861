"""Masks of known pixels (1 = known, 0 = to fill) and the weights of the context loss.

A mask is a float32 array [size, size, 3] whose channels are equal. The types are the
original's (`center`, `random`, `left`, `full`, `grid`, `lowres`), their mirror images
(`right`, `top`, `bottom`), the paper's `random80` (80% missing) and `half` (a random
half missing, horizontal or vertical), and `file` (a mask image, white = keep).
Photo masks are mask images of a whole photo (dcgan-complete --align), in its coordinates.

Adding a mask type is adding its name to MASK_TYPES and its branch to make_mask:
dcgan-complete's --maskType and dcgan-serve's preset masks follow from them.

The random types draw each image's mask from that image's own seed, so a mask never
depends on the other images of a run (the original drew one random mask for all).
"""
from pathlib import Path

import numpy as np
from .errors import InputError
from .images import IMAGE_EXTENSIONS, read_image

MASK_TYPES = (
    "center", "random", "left", "full", "grid", "lowres",
    "right", "top", "bottom", "random80", "half", "file",
)
# The lowres context compares means over blocks of LOWRES_BLOCK x LOWRES_BLOCK pixels
# (the original's `lowres = 8`: an 8x8 image for 64x64 inputs).
LOWRES_BLOCK = 8
GRID_STEP = 4
CONTEXT_WINDOW = 7  # the paper's 7x7 neighbourhood N(i) of the weighted context loss

_MISSING_FRACTION = {"random": 0.2, "random80": 0.8}
_HALVES = ("left", "right", "top", "bottom")


def mask_type_for(mask_type=None, mask_file=None):
    """The mask type a run uses, and the rule of --maskType and --maskFile: `file` when a
    mask file (or a photo mask) is given, else `mask_type` (default center). InputError
    for `file` without a mask file, a mask file with another type, or an unknown type."""
    if mask_file is not None:
        if mask_type not in (None, "file"):
            raise InputError(f"--maskFile goes with --maskType file, not {mask_type}: leave --maskType out")
        return "file"
    if mask_type == "file":
        raise InputError("--maskType file needs --maskFile (a mask image, white = keep, or a folder of them)")
    if mask_type is not None and mask_type not in MASK_TYPES:
        raise InputError(f"unknown mask type {mask_type!r}: choose one of {', '.join(MASK_TYPES)}")
    return mask_type or "center"


def make_mask(mask_type, image_size, *, center_scale=0.25, seed=0):
    """The mask of one image: float32 [image_size, image_size, 3], 1 = known pixel.

    `seed` only matters for the random types (`random`, `random80`, `half`).
    `file` masks come from `load_mask`.
    """
    mask_type = mask_type_for(mask_type)
    size = image_size
    keep = np.ones((size, size), bool)
    if mask_type == "center":
        if not 0 < center_scale <= 0.5:
            raise InputError(f"--centerScale must be in (0, 0.5], got {center_scale}")
        lo, hi = int(size * center_scale), int(size * (1 - center_scale))
        if lo >= hi:
            raise InputError(f"--centerScale {center_scale} leaves no hole in a {size}x{size} image: "
                             "use a smaller value (0.25, the default, leaves the centre half)")
        keep[lo:hi, lo:hi] = False
    elif mask_type in _MISSING_FRACTION:
        keep = _rng(seed).random((size, size)) >= _MISSING_FRACTION[mask_type]
    elif mask_type == "half":
        return make_mask(_HALVES[_rng(seed).integers(len(_HALVES))], size)
    elif mask_type == "left":
        keep[:, : size // 2] = False
    elif mask_type == "right":
        keep[:, size // 2 :] = False
    elif mask_type == "top":
        keep[: size // 2, :] = False
    elif mask_type == "bottom":
        keep[size // 2 :, :] = False
    elif mask_type == "full":
        pass
    elif mask_type == "grid":
        keep[:] = False
        keep[::GRID_STEP, ::GRID_STEP] = True
    elif mask_type == "lowres":
        keep[:] = False  # only the block means are known: see uses_lowres
    return _to_channels(keep)


def make_masks(mask_type, image_size, seeds, *, center_scale=0.25):
    """One mask per seed: float32 [len(seeds), image_size, image_size, 3]."""
    return np.stack([make_mask(mask_type, image_size, center_scale=center_scale, seed=s) for s in seeds])


def uses_lowres(mask_type):
    """Whether the mask type adds the context term on LOWRES_BLOCK-pixel block means."""
    return mask_type == "lowres"


def read_mask_image(path):
    """A mask image as H x W bool, True = keep (white = keep, black = fill; grey is
    thresholded at 50%), turned upright by its EXIF tag as images are."""
    try:
        return np.asarray(read_image(path, "L")) >= 128
    except InputError as e:  # its message names the file
        raise InputError(f"mask file {e}") from None


def load_mask(path, image_size):
    """A mask image (see read_mask_image) as the mask of image_size x image_size images."""
    keep = read_mask_image(path)
    if keep.shape != (image_size, image_size):
        raise InputError(
            f"mask file {path} is {keep.shape[1]}x{keep.shape[0]} but the images are "
            f"{image_size}x{image_size}: give a mask of the images' size"
        )
    if not keep.any():
        raise InputError(f"mask file {path} keeps no pixel (all black): white marks the pixels to keep")
    if keep.all():
        raise InputError(f"mask file {path} has no hole (all white): nothing to fill; black marks the pixels to fill")
    return _to_channels(keep)


def load_masks(mask_file, image_paths, image_size, index=None):
    """Masks for `image_paths` from --maskFile: one image for all, or a folder holding one
    mask per input with the input's base name (any of .png/.jpg/.jpeg). index: the
    folder's mask_folder_index, when it was made already."""
    if not Path(mask_file).is_dir():
        mask = load_mask(mask_file, image_size)
        return np.broadcast_to(mask, (len(image_paths),) + mask.shape).copy()
    index = mask_folder_index(mask_file) if index is None else index
    return np.stack([load_mask(mask_path_for(mask_file, p, index), image_size) for p in image_paths])


def mask_folder_index(folder):
    """{base name: mask image} of a folder of masks; of two with one base name, the first by name."""
    index = {}
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            index.setdefault(p.stem, p)
    return index


def mask_path_for(mask_file, image_path, index=None):
    """The mask image of an input: `mask_file` itself, or in a folder the file named as the
    input (any of .png/.jpg/.jpeg; index: the folder's mask_folder_index, if made)."""
    mask_file = Path(mask_file)
    if not mask_file.is_dir():
        return mask_file
    stem = Path(image_path).stem
    found = (mask_folder_index(mask_file) if index is None else index).get(stem)
    if found is None:
        raise InputError(f"mask folder {mask_file} has no mask for {image_path} (expected {stem}.png, .jpg or .jpeg)")
    return found


def input_masks(paths, image_size, seeds, *, mask_type=None, mask_file=None, center_scale=0.25, index=None):
    """The masks of input images: from `mask_file` (one image for all, or a folder of them,
    index: its mask_folder_index if made) for `file`, else made per image from its seed
    (see mask_type_for)."""
    if mask_type_for(mask_type, mask_file) == "file":
        return load_masks(mask_file, paths, image_size, index)
    return make_masks(mask_type_for(mask_type), image_size, seeds, center_scale=center_scale)


def load_photo_mask(path, photo_shape, photo_name="the photo"):
    """A mask image for a photo (see read_mask_image) as H x W bool, True = keep. Its size
    must be the photo's."""
    return check_photo_mask(read_mask_image(path), photo_shape[:2], f"{photo_name} (mask file {path})")


def check_photo_mask(mask, shape, name="the photo"):
    """A photo mask (H x W, or H x W x 1/3; 1/True = keep) as H x W bool, True = keep;
    InputError if it is not the photo's `shape` (H, W) or holds other values."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] in (1, 3):
        mask = mask.min(axis=2)  # a pixel is kept only if every channel keeps it
    if mask.ndim != 2 or mask.shape != tuple(shape):
        got = "x".join(map(str, mask.shape[1::-1])) if mask.ndim >= 2 else str(mask.shape)
        hint = " (it fits the photo turned sideways: was the mask drawn before an EXIF rotation?)" \
            if mask.ndim == 2 and mask.shape == tuple(shape)[::-1] else ""
        raise InputError(f"{name}: the mask is {got} but the photo is {shape[1]}x{shape[0]}{hint}: "
                         "give a mask of the photo's size")
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise InputError(f"{name}: a photo mask holds 1/True (keep) and 0/False (fill) only; "
                             "read a mask image with load_photo_mask")
        mask = mask == 1
    return mask


def check_masks(masks, lowres=False):
    """Raise InputError unless every mask is 0/1 and keeps a pixel (or uses the lowres context)."""
    masks = np.asarray(masks)
    if not np.isin(masks, (0.0, 1.0)).all():
        raise InputError("masks must hold only 0 (fill) and 1 (keep)")
    if not lowres:
        empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
        if empty.size:
            raise InputError(
                f"the mask of image {empty[0]} keeps no pixel: nothing to complete from "
                "(use a mask that keeps part of the image)"
            )


def weighted_context(masks, window=CONTEXT_WINDOW):
    """The paper's context weights: W_i = sum_{j in N(i)} (1 - M_j) / |N(i)| for known
    pixels i (0 for missing ones), N(i) the window x window neighbourhood of i clipped to
    the image, so known pixels near the hole count most and far ones not at all.

    masks: [..., H, W, C] (1 = known); returns float32 of the same shape.
    """
    masks = np.asarray(masks, np.float64)
    radius = window // 2
    missing_near = _window_sums(1.0 - masks, radius)
    neighbours = _window_sums(np.ones_like(masks), radius)
    return np.where(masks > 0.5, missing_near / neighbours, 0.0).astype(np.float32)


def _window_sums(a, radius):
    """Sum of a [..., H, W, C] over the (2r+1)^2 window around each pixel, clipped to the
    image (zero padding), by an integral image."""
    k = 2 * radius + 1
    pad = [(0, 0)] * (a.ndim - 3) + [(radius + 1, radius), (radius + 1, radius), (0, 0)]
    c = np.pad(a, pad).cumsum(-3).cumsum(-2)
    return c[..., k:, k:, :] - c[..., :-k, k:, :] - c[..., k:, :-k, :] + c[..., :-k, :-k, :]


def _to_channels(keep):
    return np.repeat(keep[:, :, None], 3, axis=2).astype(np.float32)


def _rng(seed):
    # A stream of its own, apart from the one that draws the image's starting z.
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x6D61736B])

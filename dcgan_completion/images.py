"""Image I/O: reading images as [-1, 1] floats, writing them back, grids, atomic writes."""
import contextlib
import math
import os
import secrets
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds.

    An interrupted write never leaves a truncated file under the final name.
    """
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _new_file_beside(path):
    """A new empty hidden file in `path`'s folder. Created with mode 0o666, which the
    kernel reduces by the process's umask as for any file the tools write (mkstemp's
    files are private, and reading the umask means setting it, for the whole process)."""
    while True:
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:  # another writer's name: draw again
            continue


def list_images(folder):
    """Every png/jpg/jpeg file directly in `folder` (not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder: give a folder of .png/.jpg/.jpeg images")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(f"{folder} holds no .png/.jpg/.jpeg images")
    return files


def center_crop_resize(rgb, size):
    """Cut the centre square of an HxWx3 uint8 array and resize it to size x size."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(rgb[top : top + side, left : left + side])
    if side != size:
        square = square.resize((size, size), Image.BICUBIC)
    return np.asarray(square)


def check_output_folder(folder, what="output folder"):
    """Raise InputError unless `folder` is a folder, or one that can be made, and writable.

    Checked before long work starts, so that it does not fail at its first write.
    Nothing is created.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{what} {folder} is a file: give a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{what} {folder} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what} {folder} is not writable ({existing}): give a folder you can write to")


def check_output_file(path, what="output file"):
    """Raise InputError unless a file can be written at `path` (see check_output_folder)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder: give a file name")
    check_output_folder(path.parent, f"{what} {path}: its folder")


def read_image(path, mode="RGB"):
    """Read any image as a PIL image of `mode` ("RGB", "L"), turned upright by its EXIF tag.

    The one function every image goes through: 16-bit images are scaled to 8 bits
    (PIL would clip them to white), and images larger than PIL's decompression-bomb
    limit (Image.MAX_IMAGE_PIXELS) are refused, as are unreadable files, with an
    InputError naming the file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                if im.mode.startswith("I"):  # 16-bit greyscale ("I;16", or "I" holding 0..65535)
                    im = Image.fromarray(np.rint(np.asarray(im, np.float64) / 257).clip(0, 255).astype(np.uint8))
                return im.convert(mode)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(
            f"{path}: too large (more than {Image.MAX_IMAGE_PIXELS} pixels, a possible decompression bomb): "
            "resize it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: cannot read image ({e})") from None


def read_rgb(path):
    """Read any image as an HxWx3 uint8 RGB array (grayscale and RGBA are converted).

    Photos stored sideways with an EXIF orientation tag (as phones do) are turned
    upright, as OpenCV's imread did for OpenFace: the face detector finds upright faces.
    """
    return np.asarray(read_image(path, "RGB"))


def to_float(rgb_uint8):
    """uint8 [0, 255] -> float32 [-1, 1], as the original (x / 127.5 - 1)."""
    return np.asarray(rgb_uint8, np.float32) / 127.5 - 1.0


def to_uint8(images):
    """float [-1, 1] -> uint8 [0, 255], as the original ((x + 1) / 2 * 255), rounded."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def load_image(path, image_size=None):
    """Read an image as float32 [-1, 1], HxWx3.

    With `image_size`, an image of another size is centre-cropped to a square and
    resized to image_size x image_size.
    """
    rgb = read_rgb(path)
    if image_size is not None and rgb.shape[:2] != (image_size, image_size):
        rgb = center_crop_resize(rgb, image_size)
    return to_float(rgb)


def save_image(path, image):
    """Write one float [-1, 1] HxWx3 image (or uint8) as a PNG/JPEG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = to_uint8(image)
    form = _format_of(path)
    # zlib level 1: 3.5x faster to write than Pillow's default 6, 3% larger (64x64 faces
    # and their grids); writing was most of dcgan-complete's cost beyond the search.
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=form, **({"compress_level": 1} if form == "PNG" else {}))


def _format_of(path):
    ext = Path(path).suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF"}.get(ext, "PNG")


def image_grid(images, cols=8):
    """Tile N images HxWxC row by row into ceil(N/cols) x cols, as the original (8 columns)."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, c), images.dtype)
    for i, image in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = image
    return grid


def save_grid(path, images, cols=8):
    """Write a grid of float [-1, 1] images."""
    save_image(path, image_grid(to_uint8(images), cols))


def save_gif(path, frames, delay_ms=100, loop=0):
    """Write frames (HxWx3 uint8 arrays, or float [-1, 1]) as an animated GIF, atomically.

    delay_ms: time each frame shows (GIF stores hundredths of a second); loop: how many
    times to repeat, 0 = forever (as `convert -delay 10 -loop 0`), None = play once.
    Pillow merges a frame identical to the one before it into it, adding up their delays.
    """
    if not len(frames):
        raise InputError(f"{path}: no frames to write")
    pictures = [Image.fromarray(f if np.asarray(f).dtype == np.uint8 else to_uint8(f)) for f in frames]
    sizes = {p.size for p in pictures}
    if len(sizes) > 1:
        raise InputError(f"{path}: frames differ in size ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))})")
    repeat = {} if loop is None else {"loop": loop}
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=delay_ms, **repeat)

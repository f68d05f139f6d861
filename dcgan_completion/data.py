"""The training data: a tf.data pipeline over a folder of face images.

    files = dataset_files("data/aligned", batch_size=64)
    for images in image_batches(files, image_size=64, batch_size=64, seed=1).take(10):
        ...  # float32 [64, 64, 64, 3] in [-1, 1]

The order of the images is a function of the seed and the epoch only (a fresh
shuffle per epoch; the original shuffled once), so training can resume at any batch
of any epoch and see exactly what an uninterrupted run would have seen.

Images are decoded by TensorFlow in parallel and prefetched. An image of the right
size is used as it is; another size is centre-cropped to a square and resized (see
`fit_image`). Grayscale and RGBA images become RGB.
"""
import warnings

import tensorflow as tf
from PIL import Image

from .errors import InputError
from .images import list_images

_SHUFFLE_ALG = "philox"  # the same order on every device


def dataset_files(folder, batch_size=64):
    """The decodable images of `folder` (png/jpg/jpeg directly in it), as sorted strings.

    A file TensorFlow cannot decode is skipped with one warning naming it. A missing
    or empty folder, or fewer images than one batch, is an InputError.
    """
    files = [str(f) for f in list_images(folder)]
    huge = {f for f in files if _too_large(f)}
    readable = set(_decodable([f for f in files if f not in huge]))
    for f in files:
        if f in huge:
            warnings.warn(f"skipping {f}: more than {Image.MAX_IMAGE_PIXELS} pixels (a possible "
                          "decompression bomb)", stacklevel=2)
        elif f not in readable:
            warnings.warn(f"skipping {f}: not a readable image", stacklevel=2)
    files = [f for f in files if f in readable]
    if len(files) < batch_size:
        raise InputError(
            f"{folder} holds {len(files)} readable images, fewer than one batch of {batch_size}: "
            "add images or lower --batch_size"
        )
    return files


def _too_large(path):
    # From the header alone, before TensorFlow decodes it whole: the limit the other
    # tools' reader (images.read_image) keeps, PIL's.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.width * im.height > Image.MAX_IMAGE_PIXELS
    except Image.DecompressionBombError:
        return True
    except Exception:  # unreadable: the decoding pass names it
        return False


def _decodable(files):
    # One decoding pass with the decoder training uses (in parallel; ~1.5 s for 9000
    # faces on 2 cores), so that a broken file is named now instead of crashing later.
    def probe(path):
        return path, tf.shape(_decode(path))

    checked = (
        tf.data.Dataset.from_tensor_slices(files)
        .map(probe, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(1024)
    )
    return [p.decode() for paths, _ in checked.as_numpy_iterator() for p in paths]


def _decode(path):
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    # Decoders return an empty image for some broken files instead of failing.
    tf.debugging.assert_positive(tf.size(image), message="empty image")
    return image


def fit_image(image, image_size, is_crop=False):
    """uint8 HxWx3 -> float32 image_size x image_size x 3 in [-1, 1].

    An image already image_size square is used as it is. Otherwise the centre square
    of side min(H, W) is cut and resized (bicubic, antialiased) to image_size; with
    `is_crop` (the original's flag) the centre image_size x image_size square is cut
    at full resolution instead, when the image is large enough.
    """
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    side = tf.minimum(h, w)
    if is_crop:
        side = tf.minimum(side, image_size)
    top, left = (h - side) // 2, (w - side) // 2
    square = tf.cast(image[top : top + side, left : left + side], tf.float32)
    square = tf.cond(
        tf.equal(side, image_size),
        lambda: square,
        lambda: tf.clip_by_value(
            tf.image.resize(square, [image_size, image_size], method="bicubic", antialias=True), 0.0, 255.0
        ),
    )
    square = tf.ensure_shape(square, [image_size, image_size, 3])
    return square / 127.5 - 1.0


def steps_per_epoch(num_files, batch_size, train_size=None):
    """Full batches per epoch: min(num_files, train_size) // batch_size, as the original."""
    images = num_files if train_size is None else min(num_files, int(train_size))
    return images // batch_size


def epoch_order(num_files, seed, epoch):
    """The permutation of the files used in `epoch` (a function of seed and epoch only)."""
    return tf.random.experimental.stateless_shuffle(
        tf.range(num_files), seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]), alg=_SHUFFLE_ALG
    )


def image_batches(
    files,
    image_size=64,
    batch_size=64,
    seed=0,
    train_size=None,
    first_epoch=0,
    first_batch=0,
    epochs=None,
    is_crop=False,
):
    """A tf.data.Dataset of image batches, float32 [batch_size, size, size, 3] in [-1, 1].

    Epoch after epoch (up to `epochs`, or forever), each a fresh seeded shuffle of
    `files` cut to `steps_per_epoch` full batches, starting at batch `first_batch`
    of epoch `first_epoch`.
    """
    n = len(files)
    per_epoch = steps_per_epoch(n, batch_size, train_size) * batch_size
    if per_epoch == 0:
        raise InputError(f"{n} images make no full batch of {batch_size}: add images or lower --batch_size")
    paths = tf.constant(files)

    def epoch_paths(epoch):
        order = epoch_order(n, seed, epoch)[:per_epoch]
        return tf.data.Dataset.from_tensor_slices(tf.gather(paths, order))

    last = tf.int64.max if epochs is None else epochs
    return (
        tf.data.Dataset.range(first_epoch, last)
        .flat_map(epoch_paths)
        .skip(first_batch * batch_size)  # epochs are whole batches, so this stays in first_epoch
        .map(lambda p: fit_image(_decode(p), image_size, is_crop), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
    )

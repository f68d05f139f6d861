"""A learned start for the search: an encoder E(masked image, mask) -> z.

The search of `complete` climbs from its starting z towards the z whose G(z) fits the
known pixels. From a random z it needs hundreds of iterations; from E's guess it needs
tens (docs/performance.md, "Time to quality"). E has the discriminator's architecture
(stride-2 5x5 convolutions, batch norm, leaky ReLU) with a dense layer to z and tanh, so
that its z lies in the generator's [-1, 1] box. It sees only the known pixels and the
mask, never the hole.

It is trained on the generator's own samples, so no data set is needed: z ~ U(-1, 1),
x = G(z), a random mask of a type the tools offer, and the loss |E(x * m, m) - z|^2.

    encoder = train_encoder(generator, steps=10000)
    save_encoder(encoder, "checkpoint")          # next to the model it belongs to
    encoder = load_encoder("checkpoint")         # None where the model has none

Where an encoder is kept: inside a weights file (`face64.npz`, keys `encoder/...`), or
beside a checkpoint as `<prefix>.encoder.npz` (`checkpoint/DCGAN.model-500.encoder.npz`).
An encoder belongs to one generator: training the generator further leaves the new
checkpoint without one until `train-encoder` is run again.
"""
import functools
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .errors import InputError
from .images import atomic_path
from .masks import make_mask
from .networks import DF_DIM, image_size_of, num_upsamplings, z_dim_of

ENCODER_PREFIX = "encoder/"
_STEP_KEY = ENCODER_PREFIX + "step"
# Every mask type the tools offer but `file` and `lowres`; painted holes and mask files
# are stood in for by random boxes.
TRAINING_MASK_TYPES = ("center", "left", "right", "top", "bottom", "half", "random", "random80", "grid", "full", "box")
_MASK_POOL = 4096  # masks drawn once; each step picks from them


def build_encoder(image_size=64, z_dim=100, df_dim=DF_DIM, dtype=None):
    """E(images, masks) -> z [batch, z_dim] in [-1, 1], float32. `images` [batch, size,
    size, 3] in [-1, 1]; `masks` of the same shape, 1 = known. Pixels where the mask is 0
    are not seen."""
    n = num_upsamplings(image_size)
    images = keras.Input(shape=(image_size, image_size, 3), name="images")
    masks = keras.Input(shape=(image_size, image_size, 3), name="masks")
    h = layers.Concatenate(dtype=dtype)([layers.Multiply(dtype=dtype)([images, masks]), masks[..., :1]])
    for i in range(n):
        h = layers.Conv2D(df_dim * 2**i, 5, strides=2, padding="same", name=f"e_h{i}_conv", dtype=dtype,
                          kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02))(h)
        if i > 0:
            h = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"e_bn{i}", dtype=dtype)(h)
        h = layers.LeakyReLU(negative_slope=0.2, dtype=dtype)(h)
    h = layers.Flatten(dtype=dtype)(h)
    h = layers.Dense(z_dim, name=f"e_h{n}_lin", dtype=dtype,
                     kernel_initializer=keras.initializers.RandomNormal(stddev=0.02))(h)
    z = layers.Activation("tanh", dtype="float32", name="e_tanh")(h)
    return keras.Model([images, masks], z, name="encoder")


def start_z(encoder, images, masks):
    """E's starting z for a batch (tensors or arrays), float32 [batch, z_dim]."""
    return _compiled_start(encoder)(tf.cast(images, tf.float32), tf.cast(masks, tf.float32))


@functools.lru_cache(maxsize=8)
def _compiled_start(encoder):
    # Compiled once for every batch size: called eagerly, E takes 1.44x as long (a batch
    # of 64 in bfloat16: 73 ms against 50 ms, scripts/bench_batch_passes.py).
    spec = tf.TensorSpec([None, *encoder.input_shape[0][1:]], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def start(images, masks):
        return tf.cast(encoder([images, masks], training=False), tf.float32)

    return start


# ---------------------------------------------------------------- training


def training_masks(image_size, count=_MASK_POOL, seed=0):
    """`count` masks [count, size, size, 1] uint8, cycling through TRAINING_MASK_TYPES
    (a random centre scale for `center`), each from its own seed."""
    rng = np.random.default_rng(seed)
    pool = np.empty((count, image_size, image_size, 1), np.uint8)
    for i in range(count):
        kind = TRAINING_MASK_TYPES[i % len(TRAINING_MASK_TYPES)]
        if kind == "box":
            pool[i, :, :, 0] = _boxes(rng, image_size)
        else:
            scale = rng.uniform(0.15, 0.4) if kind == "center" else 0.25
            pool[i] = make_mask(kind, image_size, center_scale=scale, seed=seed * count + i)[:, :, :1]
    return pool


def _boxes(rng, size):
    keep = np.ones((size, size), np.uint8)
    for _ in range(rng.integers(1, 4)):
        h, w = rng.integers(size // 8, size * 3 // 4, 2)
        top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        keep[top : top + h, left : left + w] = 0
    return keep


def train_encoder(generator, *, steps=10000, batch_size=64, learning_rate=5e-4, seed=0, encoder=None,
                  first_step=1, precision=None, progress=False, on_step=None):
    """Train an encoder (a new one, or `encoder` further) on the generator's samples
    under random masks, steps `first_step` to `steps`. Step s draws its z and masks from
    (seed, s) alone, so a run resumed at step s goes on as the run that did not stop
    would (but for Adam's moments, which start again). `on_step(step, loss)` is called
    after each step. Returns the encoder."""
    size, z_dim = image_size_of(generator), z_dim_of(generator)
    if encoder is None:
        encoder = build_encoder(size, z_dim, dtype=precision)
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(encoder.trainable_variables)
    pool = tf.constant(training_masks(size, seed=seed))

    @tf.function(jit_compile=False)
    def train_step(step):
        key = tf.stack([tf.constant(seed, tf.int64), step])
        z = tf.random.stateless_uniform([batch_size, z_dim], key, -1.0, 1.0)
        pick = tf.random.stateless_uniform([batch_size], key + [0, 1 << 40], 0, len(pool), dtype=tf.int32)
        masks = tf.cast(tf.repeat(tf.gather(pool, pick), 3, axis=-1), tf.float32)
        images = tf.cast(generator(z, training=False), tf.float32)
        with tf.GradientTape() as tape:
            guess = encoder([images, masks], training=True)
            loss = tf.reduce_mean(tf.square(guess - z))
        optimizer.apply_gradients(zip(tape.gradient(loss, encoder.trainable_variables), encoder.trainable_variables))
        return loss

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=first_step - 1, unit="step", desc="training the encoder")
    try:
        for step in range(first_step, steps + 1):
            loss = float(train_step(tf.constant(step, tf.int64)))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if on_step is not None:
                on_step(step, loss)
    finally:
        if bar is not None:
            bar.close()
    return encoder


# ---------------------------------------------------------------- where it is kept


def encoder_file(checkpoint=None):
    """(path, inside): the file that holds the encoder of the model `checkpoint` (None:
    the shipped model); `inside` says it is the model's own weights file."""
    from .checkpoints import SHIPPED_WEIGHTS, find_checkpoint
    from .tf1_checkpoint import find_tf1_checkpoint

    if checkpoint is None:
        return SHIPPED_WEIGHTS, True
    if Path(checkpoint).suffix == ".npz":
        return Path(checkpoint), True
    prefix = find_tf1_checkpoint(checkpoint) or find_checkpoint(checkpoint)
    return Path(f"{prefix}.encoder.npz"), False


def save_encoder(encoder, checkpoint=None, step=None):
    """Keep `encoder` with the model `checkpoint` (see the module's docstring), atomically,
    with the training step it has reached. Returns the file written."""
    path, inside = encoder_file(checkpoint)
    arrays = {}
    if inside:
        arrays = {k: v for k, v in _read_npz(path).items() if not k.startswith(ENCODER_PREFIX)}
    dtype = np.float16 if inside and any(v.dtype == np.float16 for v in arrays.values()) else np.float32
    for layer in encoder.layers:
        for weight in layer.weights:
            arrays[f"{ENCODER_PREFIX}{layer.name}/{weight.name}"] = np.asarray(weight.numpy(), dtype)
    if step is not None:
        arrays[_STEP_KEY] = np.asarray(step, np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path


def encoder_step(checkpoint=None):
    """The training step the encoder kept with the model has reached (0: none kept)."""
    path, _ = encoder_file(checkpoint)
    return int(_read_npz(path, _STEP_KEY).get(_STEP_KEY, 0)) if path.is_file() else 0


def load_encoder(checkpoint=None, dtype=None):
    """The encoder kept with the model `checkpoint` (None: the shipped model), or None
    where it has none. `dtype` is a Keras dtype policy name, as for load_models."""
    path, inside = encoder_file(checkpoint)
    if not path.is_file():
        return None
    arrays = {k[len(ENCODER_PREFIX):]: v for k, v in _read_npz(path, ENCODER_PREFIX).items() if k != _STEP_KEY}
    if not arrays:
        return None
    first, last = arrays.get("e_h0_conv/kernel"), [v for k, v in arrays.items() if k.endswith("_lin/kernel")]
    if first is None or len(last) != 1:
        raise InputError(f"{path}: its encoder weights are incomplete; train it again with train-encoder")
    n = sum(k.endswith("_conv/kernel") for k in arrays)
    encoder = build_encoder(4 * 2**n, last[0].shape[1], first.shape[-1], dtype=dtype)
    for layer in encoder.layers:
        for weight in layer.weights:
            key = f"{layer.name}/{weight.name}"
            if key not in arrays or arrays[key].shape != tuple(weight.shape):
                raise InputError(f"{path}: encoder weight {key} is missing or has another shape; "
                                 "train it again with train-encoder")
            weight.assign(arrays[key].astype(np.float32))
    return encoder


def copy_weights_file(source, out):
    """Copy the weights file `source` to `out` without any encoder it holds, atomically."""
    arrays = {k: v for k, v in _read_npz(source).items() if not k.startswith(ENCODER_PREFIX)}
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def _read_npz(path, prefix=""):
    """The arrays of a .npz file whose names start with `prefix` (the others are not
    decompressed: the shipped file's networks are most of its 17 MB)."""
    try:
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files if name.startswith(prefix)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: cannot read weights file ({e})") from None

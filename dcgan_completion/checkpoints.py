"""Checkpoints: save and resume training; load the trained networks, whatever holds them
(the shipped weights file, this project's checkpoints, the original's TF1 ones, read by
tf1_checkpoint), and convert a TF1 checkpoint into this project's format.

Files are named as the original's (`checkpoint/DCGAN.model-500`), and only the newest
is kept. Inside, every weight is stored under its layer's name, so a checkpoint is
readable with `tf.train.list_variables` and independent of Keras internals:

    generator/g_h0_lin/kernel, generator/g_bn0/moving_mean, ...
    discriminator/d_h0_conv/kernel, ..., discriminator/d_h3_lin/bias
    optimizers/{discriminator,generator}/...   Adam's moments and iteration counts
    step, epoch, position, seed, sample_z      where training stands

Writes are safe against interruption: TensorFlow writes the data files under a
temporary name, then the index, and only then points the `checkpoint` state file
at the new checkpoint (atomically) before deleting the older one.
"""
import os
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from .errors import InputError, damaged, quiet_tf_logging
from .images import atomic_path, check_output_folder
from .networks import build_discriminator, build_generator
from .tf1_checkpoint import find_tf1_checkpoint, load_tf1_models, tf1_checkpoint_step, why_not_tf1

CHECKPOINT_NAME = "DCGAN.model"
# The face model that ships with the package (see weights/README.md): what `dcgan-complete`
# and load_models() use when no checkpoint is given.
SHIPPED_WEIGHTS = Path(__file__).parent / "weights" / "face64.npz"
_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def named_weights(model):
    """{layer name: {weight name: variable}}, the layout the checkpoints use."""
    return {layer.name: {w.name: w for w in layer.weights} for layer in model.layers if layer.weights}


def _inner(optimizer):
    # A LossScaleOptimizer (mixed_float16) keeps Adam's state in its inner optimizer;
    # storing only that keeps checkpoints interchangeable between precisions.
    return getattr(optimizer, "inner_optimizer", optimizer)


def training_checkpoint(generator, discriminator, d_optimizer, g_optimizer, **state):
    """A tf.train.Checkpoint of everything training needs to go on where it stopped.

    `state` holds tf.Variables such as step, epoch, position, seed and sample_z.
    The optimizers must be built (their variables created) before a restore.
    """
    return tf.train.Checkpoint(
        generator=named_weights(generator),
        discriminator=named_weights(discriminator),
        optimizers=tf.train.Checkpoint(discriminator=_inner(d_optimizer), generator=_inner(g_optimizer)),
        **state,
    )


def checkpoint_manager(checkpoint, directory):
    """Writes `directory/DCGAN.model-{step}`, keeping only the newest."""
    with quiet_tf_logging():
        return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=1, checkpoint_name=CHECKPOINT_NAME)


def latest_checkpoint(directory):
    """The prefix of the newest checkpoint in `directory`, or None if there is none."""
    directory = Path(directory)
    with quiet_tf_logging():
        prefix = tf.train.latest_checkpoint(str(directory))
    if prefix is None and directory.is_dir():
        # No usable `checkpoint` state file (deleted, or pointing elsewhere): take the
        # newest index file present.
        indexes = sorted(directory.glob("*.index"), key=lambda p: p.stat().st_mtime)
        if indexes:
            prefix = str(indexes[-1])[: -len(".index")]
    return prefix


def find_checkpoint(checkpoint):
    """Resolve a checkpoint directory (its newest checkpoint) or prefix to a prefix."""
    path = Path(checkpoint)
    if path.is_dir():
        prefix = latest_checkpoint(path)
        if prefix is None:
            raise InputError(
                f"{path} holds no checkpoint: train one with `train-dcgan --checkpoint_dir {path}` "
                "or give the folder that holds DCGAN.model-* files"
            )
        return prefix
    if Path(f"{path}.index").is_file():
        return str(path)
    raise InputError(
        f"{path}: no such checkpoint folder or prefix: give the folder train-dcgan wrote "
        "(--checkpoint_dir, default `checkpoint`) or a prefix such as checkpoint/DCGAN.model-500"
    )


def stored_shapes(prefix):
    """{variable name: shape} of a checkpoint, names without TF's attribute suffix."""
    try:
        return {name.removesuffix(_SUFFIX): shape for name, shape in tf.train.list_variables(prefix)}
    except (tf.errors.OpError, ValueError) as e:
        raise InputError(f"{prefix}: cannot read checkpoint ({e.__class__.__name__}); is it complete?") from None


def model_config(prefix):
    """image_size, z_dim, gf_dim and df_dim of the networks stored in a checkpoint."""
    return config_from_shapes(stored_shapes(prefix), prefix)


def config_from_shapes(shapes, source):
    """The networks' sizes from {"generator/g_h0_lin/kernel": shape, ...}."""
    dense = shapes.get("generator/g_h0_lin/kernel")
    first_conv = shapes.get("discriminator/d_h0_conv/kernel")
    if dense is None or first_conv is None:
        raise InputError(
            f"{source} holds no DCGAN generator/discriminator written by train-dcgan "
            "(missing generator/g_h0_lin and discriminator/d_h0_conv)"
        )
    upsamplings = 0
    while f"generator/g_h{upsamplings + 1}/kernel" in shapes:
        upsamplings += 1
    last = shapes[f"generator/g_h{upsamplings}/kernel"]  # [5, 5, 3, gf_dim]
    return {
        "image_size": 4 * 2**upsamplings,
        "z_dim": int(dense[0]),
        "gf_dim": int(last[-1]),
        "df_dim": int(first_conv[-1]),
    }


def restore(checkpoint, prefix):
    """Restore a tf.train.Checkpoint from `prefix`; every object of ours must be found.

    Values the checkpoint holds but `checkpoint` does not ask for (an optimizer's state
    when only the networks are loaded) are ignored.
    """
    try:
        status = checkpoint.read(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (IndexError, tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
        # A truncated or damaged data file ("Read less bytes than requested").
        raise InputError(damaged(prefix, e)) from None
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise InputError(
            f"{prefix} does not match the networks ({first_line}); "
            "give a checkpoint written by train-dcgan with the same settings"
        ) from None


def _build(config, dtype):
    generator = build_generator(config["image_size"], config["z_dim"], config["gf_dim"], dtype=dtype)
    discriminator = build_discriminator(config["image_size"], config["df_dim"], dtype=dtype)
    return generator, discriminator


def load_models(checkpoint=None, dtype=None):
    """(generator, discriminator) restored from a checkpoint directory or prefix.

    `checkpoint` is what train-dcgan wrote, a checkpoint of the original TF1 toolkit, or
    None for the face model shipped with the package. The networks' sizes are read from
    the checkpoint itself. `dtype` is a Keras dtype policy name (e.g. "mixed_bfloat16").
    """
    if checkpoint is None:
        return load_weights_file(SHIPPED_WEIGHTS, dtype)
    if Path(checkpoint).suffix == ".npz":
        return load_weights_file(checkpoint, dtype)
    tf1_prefix = find_tf1_checkpoint(checkpoint)
    if tf1_prefix is not None:
        return load_tf1_models(tf1_prefix, dtype)
    prefix = find_checkpoint(checkpoint)
    generator, discriminator = _build(model_config(prefix), dtype)
    restore(tf.train.Checkpoint(generator=named_weights(generator), discriminator=named_weights(discriminator)), prefix)
    return generator, discriminator


def save_weights_file(generator, discriminator, path, dtype=np.float16, reference_z=None):
    """Write both networks' weights to one .npz file (keys as in checkpoints), atomically.

    float16 halves the size of the shipped model; load_weights_file restores float32.
    With `reference_z`, G(reference_z) as computed now is stored beside the weights
    (`reference/z`, `reference/images`), so that a loaded copy can be checked against
    the network it came from.
    """
    arrays = {
        f"{model.name}/{layer}/{weight}": np.asarray(variable.numpy(), dtype)
        for model in (generator, discriminator)
        for layer, weights in named_weights(model).items()
        for weight, variable in weights.items()
    }
    if reference_z is not None:
        arrays["reference/z"] = np.asarray(reference_z, np.float32)
        arrays["reference/images"] = generator(arrays["reference/z"], training=False).numpy()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_weights_file(path, dtype=None):
    """(generator, discriminator) from a file written by save_weights_file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: no such weights file"
            + (" (this installation lacks the shipped face model: pass --checkpointDir)" if path == SHIPPED_WEIGHTS else "")
        )
    try:
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(f"{path}: cannot read weights file ({e})") from None
    generator, discriminator = _build(config_from_shapes({k: v.shape for k, v in arrays.items()}, path), dtype)
    for model in (generator, discriminator):
        for layer, weights in named_weights(model).items():
            for weight, variable in weights.items():
                key = f"{model.name}/{layer}/{weight}"
                if key not in arrays or arrays[key].shape != tuple(variable.shape):
                    raise InputError(f"{path} does not fit the networks: {key} is missing or has another shape")
                variable.assign(arrays[key].astype(np.float32))
    return generator, discriminator


def convert_tf1_checkpoint(source, out):
    """Write the TF1 checkpoint at `source` into folder `out` in this project's format.

    The result, `out/DCGAN.model-N` (N from the TF1 name), holds the two networks and
    is what `load_models(out)` reads. Returns its prefix.
    """
    prefix = find_tf1_checkpoint(source)
    if prefix is None:
        raise InputError(why_not_tf1(source))
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"{out} is a file: give a new or empty folder to convert into")
    check_output_folder(out, "output folder")
    if os.path.exists(os.path.join(out, "checkpoint")):
        raise InputError(f"{out} already holds a checkpoint: give a new or empty folder to convert into")
    generator, discriminator = load_tf1_models(prefix)
    checkpoint = tf.train.Checkpoint(generator=named_weights(generator), discriminator=named_weights(discriminator))
    return checkpoint_manager(checkpoint, out).save(checkpoint_number=tf1_checkpoint_step(prefix))

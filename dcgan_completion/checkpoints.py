"""Checkpoints: save and resume training, load the trained networks.

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
from pathlib import Path

import tensorflow as tf

from .errors import InputError

CHECKPOINT_NAME = "DCGAN.model"
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
    return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=1, checkpoint_name=CHECKPOINT_NAME)


def latest_checkpoint(directory):
    """The prefix of the newest checkpoint in `directory`, or None if there is none."""
    directory = Path(directory)
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
    shapes = stored_shapes(prefix)
    dense = shapes.get("generator/g_h0_lin/kernel")
    first_conv = shapes.get("discriminator/d_h0_conv/kernel")
    if dense is None or first_conv is None:
        raise InputError(
            f"{prefix} holds no DCGAN generator/discriminator written by train-dcgan "
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
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise InputError(
            f"{prefix} does not match the networks ({first_line}); "
            "give a checkpoint written by train-dcgan with the same settings"
        ) from None


def load_models(checkpoint=None, dtype=None):
    """(generator, discriminator) restored from a checkpoint directory or prefix.

    The networks' sizes are read from the checkpoint itself. `dtype` is a Keras dtype
    policy name (e.g. "mixed_bfloat16") for the rebuilt networks.
    """
    from .networks import build_discriminator, build_generator

    if checkpoint is None:
        raise InputError("no checkpoint given: pass the checkpoint folder train-dcgan wrote (e.g. `checkpoint`)")
    prefix = find_checkpoint(checkpoint)
    config = model_config(prefix)
    generator = build_generator(config["image_size"], config["z_dim"], config["gf_dim"], dtype=dtype)
    discriminator = build_discriminator(config["image_size"], config["df_dim"], dtype=dtype)
    restore(tf.train.Checkpoint(generator=named_weights(generator), discriminator=named_weights(discriminator)), prefix)
    return generator, discriminator

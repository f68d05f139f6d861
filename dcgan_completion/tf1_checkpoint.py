"""Reading the original's TF1 checkpoints (`checkpoint/DCGAN.model-N`) into the Keras models.

The original saved its variables by name with `tf.train.Saver`: `generator/g_h0_lin/Matrix`,
`generator/g_h1/w` ([5, 5, out, in], as Keras' Conv2DTranspose), `generator/g_bn0/gamma`,
..., `discriminator/d_h0_conv/w`, `discriminator/d_bn1/beta`, `discriminator/d_h3_lin/bias`.
A later revision named the discriminator's batch norms one lower (`d_bn0..2`) and its dense
layer `d_h4_lin`. The layers of `networks` carry the first naming, so every TF1 variable
lands on one Keras weight by name.

    prefix = find_tf1_checkpoint("checkpoint")       # None unless it is a TF1 checkpoint
    generator, discriminator = load_tf1_models(prefix)

Only reading: checkpoints.load_models picks this reader for a TF1 checkpoint, and
checkpoints.convert_tf1_checkpoint writes one in this project's format.
"""
import os
import re

import tensorflow as tf

from . import networks
from .errors import InputError, damaged, quiet_tf_logging

_BATCH_NORM_WEIGHTS = ("beta", "gamma", "moving_mean", "moving_variance")
_SUFFIX = re.compile(r"\.(index|meta|data-\d+-of-\d+)$")


def _variable_shapes(prefix):
    try:
        return dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError):
        return None


def find_tf1_checkpoint(path):
    """The prefix of the TF1 checkpoint at `path`, or None if there is none.

    `path` is a folder holding a `checkpoint` state file (its `model_checkpoint_path`,
    relative to the folder, names the checkpoint, as in TF1) or a checkpoint prefix such
    as `checkpoint/DCGAN.model-60502` (a `.index` or `.meta` file name works too). This
    project's own checkpoints (object-based, TF2) give None.
    """
    path = os.fspath(path)
    with quiet_tf_logging():
        prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else _SUFFIX.sub("", path)
    shapes = _variable_shapes(prefix) if prefix else None
    # TF2's object-based checkpoints record their object graph under this key; TF1's never do.
    if not shapes or "_CHECKPOINTABLE_OBJECT_GRAPH" in shapes:
        return None
    return prefix


def tf1_checkpoint_step(prefix):
    """The training step in a checkpoint's name (`DCGAN.model-60502` -> 60502), 0 if none."""
    match = re.search(r"-(\d+)$", os.fspath(prefix))
    return int(match.group(1)) if match else 0


def tf1_model_config(prefix):
    """image_size, z_dim, gf_dim and df_dim of the networks in a TF1 checkpoint, from its shapes.

    The same keys as `checkpoints.model_config` gives for this project's checkpoints.
    """
    shapes = _variable_shapes(prefix)
    if shapes is None:
        raise InputError(f"no TF1 checkpoint at {prefix} ({prefix}.index is missing or unreadable)")
    matrix = shapes.get("generator/g_h0_lin/Matrix")
    if matrix is None or len(matrix) != 2 or "generator/g_h1/w" not in shapes:
        raise InputError(
            f"TF1 checkpoint {prefix} lacks generator/g_h0_lin/Matrix or generator/g_h1/w: "
            "it is not a checkpoint of the original's DCGAN"
        )
    upsamplings = 1
    while f"generator/g_h{upsamplings + 1}/w" in shapes:
        upsamplings += 1
    return {
        "image_size": 4 * 2**upsamplings,
        "z_dim": int(matrix[0]),
        "gf_dim": int(shapes[f"generator/g_h{upsamplings}/w"][-1]),  # [5, 5, 3, gf_dim]
        "df_dim": int(shapes.get("discriminator/d_h0_conv/w", [networks.DF_DIM])[-1]),  # [5, 5, 3, df_dim]
    }


def _uses_later_naming(shapes):
    return any(name.startswith("discriminator/d_bn0/") for name in shapes)


def _tf1_to_keras(generator, discriminator, later_naming):
    """{TF1 variable name: Keras variable} for every weight of the two models."""
    targets = {}

    def dense(scope, layer):
        targets[f"{scope}/Matrix"], targets[f"{scope}/bias"] = layer.kernel, layer.bias

    def conv(scope, layer):
        targets[f"{scope}/w"], targets[f"{scope}/biases"] = layer.kernel, layer.bias

    def batch_norm(scope, layer):
        for weight in _BATCH_NORM_WEIGHTS:
            targets[f"{scope}/{weight}"] = getattr(layer, weight)

    g, d = generator.get_layer, discriminator.get_layer
    n = networks.num_upsamplings(networks.image_size_of(generator))  # D's images are G's
    dense("generator/g_h0_lin", g("g_h0_lin"))
    for i in range(n):
        batch_norm(f"generator/g_bn{i}", g(f"g_bn{i}"))
        conv(f"generator/g_h{i + 1}", g(f"g_h{i + 1}"))

    shift = 1 if later_naming else 0
    for i in range(n):
        conv(f"discriminator/d_h{i}_conv", d(f"d_h{i}_conv"))
        if i > 0:
            batch_norm(f"discriminator/d_bn{i - shift}", d(f"d_bn{i}"))
    dense(f"discriminator/d_h{n - 1 + shift}_lin", d(f"d_h{n - 1}_lin"))
    return targets


def _describe(generator, discriminator):
    size = networks.image_size_of(generator)
    gf_dim = generator.get_layer(f"g_h{networks.num_upsamplings(size)}").kernel.shape[-1]
    df_dim = discriminator.get_layer("d_h0_conv").kernel.shape[-1]
    return f"the {size}x{size} DCGAN (z_dim {networks.z_dim_of(generator)}, gf_dim {gf_dim}, df_dim {df_dim})"


def _listing(items, limit=4):
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _read_error(prefix, error):
    # TF names the file it could not open; say plainly that it is a missing data file.
    missing = re.search(r"(\S+\.data-\d+-of-\d+); No such file", error.message)
    if missing:
        return (
            f"TF1 checkpoint {prefix}: its data file {os.path.basename(missing.group(1))} is missing "
            "(the .index and .meta files alone hold no weights; put the .data-* file(s) beside them)"
        )
    return f"TF1 checkpoint {prefix}: cannot read its weights: {error.message.splitlines()[0]}"


def load_tf1_weights(prefix, generator, discriminator):
    """Copy the TF1 checkpoint's weights onto `generator` and `discriminator` (networks' models).

    Either discriminator naming is accepted. Extra variables (such as Adam's slots) are
    ignored. Missing variables, shapes other than the models', or an unreadable data file
    raise InputError before any weight is changed.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError):
        raise InputError(f"no TF1 checkpoint at {prefix} ({prefix}.index is missing or unreadable)") from None
    shapes = reader.get_variable_to_shape_map()
    targets = _tf1_to_keras(generator, discriminator, _uses_later_naming(shapes))
    layout = _describe(generator, discriminator)

    missing = [name for name in targets if name not in shapes]
    if missing:
        raise InputError(
            f"TF1 checkpoint {prefix} lacks {len(missing)} of the {len(targets)} variables of "
            f"{layout}: {_listing(missing)}"
        )
    wrong = [
        f"{name} is {list(shapes[name])}, expected {list(variable.shape)}"
        for name, variable in targets.items()
        if tuple(shapes[name]) != tuple(variable.shape)
    ]
    if wrong:
        raise InputError(f"TF1 checkpoint {prefix} does not fit {layout}: {_listing(wrong, 2)}")
    try:
        values = {name: reader.get_tensor(name) for name in targets}
    except (IndexError, tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
        raise InputError(damaged(f"TF1 checkpoint {prefix}", e)) from None
    except tf.errors.OpError as e:
        raise InputError(_read_error(prefix, e)) from None
    for name, variable in targets.items():
        variable.assign(values[name])


def load_tf1_models(prefix, dtype=None):
    """(generator, discriminator) built to the TF1 checkpoint's shapes, holding its weights.

    `dtype` is a Keras dtype policy name, as for `networks.build_generator`.
    """
    config = tf1_model_config(prefix)
    generator = networks.build_generator(config["image_size"], config["z_dim"], config["gf_dim"], dtype=dtype)
    discriminator = networks.build_discriminator(config["image_size"], config["df_dim"], dtype=dtype)
    load_tf1_weights(prefix, generator, discriminator)
    return generator, discriminator


def why_not_tf1(path):
    """Why `path` holds no TF1 checkpoint, in words that say what to give instead."""
    path = os.fspath(path)
    expected = "a folder holding the original's `checkpoint` file, or a prefix such as checkpoint/DCGAN.model-60502"
    if os.path.isdir(path):
        with quiet_tf_logging():
            state = tf.train.get_checkpoint_state(path)
        if state is None or not state.model_checkpoint_path:
            return f"{path} holds no `checkpoint` file naming a checkpoint: give {expected}"
        prefix = state.model_checkpoint_path
    else:
        prefix = _SUFFIX.sub("", path)
    shapes = _variable_shapes(prefix)
    if shapes is None:
        return f"no checkpoint at {prefix} ({prefix}.index is missing or unreadable): give {expected}"
    return f"{prefix} is already in this project's format (a TF2 checkpoint), not a TF1 one"

"""TF1 checkpoints of the original, saved by a real tf.compat.v1 graph, read into the Keras models."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from dcgan_completion.errors import InputError
from dcgan_completion.tf1_checkpoint import (
    find_tf1_checkpoint,
    load_tf1_models,
    load_tf1_weights,
    tf1_checkpoint_step,
    tf1_model_config,
)

v1 = tf.compat.v1
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "bamos-tf1-checkpoint"
BATCH_NORM = ("beta", "gamma", "moving_mean", "moving_variance")


@pytest.fixture
def reference():
    """../shared/reference/bamos-tf1-checkpoint: the released checkpoint's index and graph."""
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is absent (reference files live beside the checkout)")
    return REFERENCE


def tf1_variable_shapes(image_size=64, z_dim=100, naming="original", gf_dim=64, df_dim=64):
    """{TF1 variable name: shape} of the original's DCGAN.

    "later" is the later revision's discriminator naming: d_bn0..2 and d_h4_lin.
    """
    n = int(np.log2(image_size)) - 2
    g_channels = [gf_dim * 2 ** (n - 1 - i) for i in range(n)] + [3]  # the 4x4 map, then each g_h{i}
    shapes = {
        "generator/g_h0_lin/Matrix": [z_dim, 16 * g_channels[0]],
        "generator/g_h0_lin/bias": [16 * g_channels[0]],
    }
    for i in range(n):
        shapes.update({f"generator/g_bn{i}/{w}": [g_channels[i]] for w in BATCH_NORM})
        shapes[f"generator/g_h{i + 1}/w"] = [5, 5, g_channels[i + 1], g_channels[i]]
        shapes[f"generator/g_h{i + 1}/biases"] = [g_channels[i + 1]]
    d_channels = [3] + [df_dim * 2**i for i in range(n)]
    shift = 1 if naming == "later" else 0
    for i in range(n):
        shapes[f"discriminator/d_h{i}_conv/w"] = [5, 5, d_channels[i], d_channels[i + 1]]
        shapes[f"discriminator/d_h{i}_conv/biases"] = [d_channels[i + 1]]
        if i > 0:
            shapes.update({f"discriminator/d_bn{i - shift}/{w}": [d_channels[i + 1]] for w in BATCH_NORM})
    shapes[f"discriminator/d_h{n - 1 + shift}_lin/Matrix"] = [16 * d_channels[n], 1]
    shapes[f"discriminator/d_h{n - 1 + shift}_lin/bias"] = [1]
    return shapes


def random_values(shapes, seed=0):
    """Random weights with non-trivial batch-norm statistics, scaled to keep activations O(1)."""
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in shapes.items():
        leaf = name.rsplit("/", 1)[1]
        if leaf == "Matrix":
            value = rng.normal(0, 1 / np.sqrt(shape[0]), shape)
        elif leaf == "w" and name.startswith("generator/"):  # [5, 5, out, in]; ~25/4 taps per output
            value = rng.normal(0, 1 / np.sqrt(25 / 4 * shape[3]), shape)
        elif leaf == "w":
            value = rng.normal(0, 1 / np.sqrt(25 * shape[2]), shape)
        elif leaf == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif leaf == "moving_mean":
            value = rng.normal(0, 0.2, shape)
        else:  # biases, beta
            value = rng.normal(0, 0.1, shape)
        values[name] = value.astype(np.float32)
    return values


def _batch_norm(h, v, scope):
    # tf.contrib.layers.batch_norm(is_training=False, epsilon=1e-5) of the original.
    return tf.nn.batch_normalization(
        h, v[f"{scope}/moving_mean"], v[f"{scope}/moving_variance"], v[f"{scope}/beta"], v[f"{scope}/gamma"], 1e-5
    )


def _tf1_generator(z, v, n):
    h = tf.matmul(z, v["generator/g_h0_lin/Matrix"]) + v["generator/g_h0_lin/bias"]
    h = tf.reshape(h, [-1, 4, 4, int(v["generator/g_h1/w"].shape[3])])
    h = tf.nn.relu(_batch_norm(h, v, "generator/g_bn0"))
    for i in range(1, n + 1):
        w = v[f"generator/g_h{i}/w"]
        output_shape = tf.stack([tf.shape(h)[0], 4 * 2**i, 4 * 2**i, int(w.shape[2])])
        h = v1.nn.conv2d_transpose(h, w, output_shape=output_shape, strides=[1, 2, 2, 1], padding="SAME")
        h = tf.nn.bias_add(h, v[f"generator/g_h{i}/biases"])
        if i < n:
            h = tf.nn.relu(_batch_norm(h, v, f"generator/g_bn{i}"))
    return tf.nn.tanh(h)


def _tf1_discriminator(x, v, n, naming):
    shift = 1 if naming == "later" else 0
    h = x
    for i in range(n):
        h = v1.nn.conv2d(h, v[f"discriminator/d_h{i}_conv/w"], strides=[1, 2, 2, 1], padding="SAME")
        h = tf.nn.bias_add(h, v[f"discriminator/d_h{i}_conv/biases"])
        if i > 0:
            h = _batch_norm(h, v, f"discriminator/d_bn{i - shift}")
        h = tf.maximum(h, 0.2 * h)
    h = tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])
    lin = f"discriminator/d_h{n - 1 + shift}_lin"
    logits = tf.matmul(h, v[f"{lin}/Matrix"]) + v[f"{lin}/bias"]
    return tf.nn.sigmoid(logits), logits


def save_tf1_checkpoint(values, directory, step, forward=None):
    """Save `values` with a TF1 Saver as `directory/DCGAN.model-step`, the way the original did.

    forward = (image_size, naming, z, x) also builds the original's G and D in the graph
    and returns their outputs (G(z), D(x), D_logits(x)) in inference mode.
    """
    graph = tf.Graph()
    with graph.as_default():
        v = {}
        for name, value in values.items():
            scope, leaf = name.rsplit("/", 1)
            with v1.variable_scope(scope):
                v[name] = v1.get_variable(leaf, initializer=value)
        # A training checkpoint also holds optimizer state, which the loader ignores.
        with v1.variable_scope("discriminator/d_h0_conv/w"):
            v1.get_variable("Adam", initializer=np.zeros_like(values.get("discriminator/d_h0_conv/w", 0.0)))
        v1.get_variable("beta1_power", initializer=np.float32(0.5))
        fetches = []
        if forward:
            image_size, naming, z, x = forward
            n = int(np.log2(image_size)) - 2
            z_in = v1.placeholder(tf.float32, [None, z.shape[1]])
            x_in = v1.placeholder(tf.float32, [None, image_size, image_size, 3])
            fetches = [_tf1_generator(z_in, v, n), *_tf1_discriminator(x_in, v, n, naming)]
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            outputs = sess.run(fetches, {z_in: z, x_in: x}) if forward else None
            v1.train.Saver(save_relative_paths=True).save(sess, str(Path(directory) / "DCGAN.model"), global_step=step)
    return outputs


CASES = [  # image_size, z_dim, naming, gf_dim, df_dim
    (64, 100, "original", 64, 64),
    (64, 100, "later", 64, 64),
    (16, 20, "later", 32, 16),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}px-{c[2]}")
def tf1_run(request, tmp_path_factory):
    """A TF1 checkpoint of random weights, moved after saving, and its graph's outputs."""
    image_size, z_dim, naming, gf_dim, df_dim = request.param
    rng = np.random.default_rng(1)
    z = rng.uniform(-1, 1, (4, z_dim)).astype(np.float32)
    x = rng.uniform(-1, 1, (4, image_size, image_size, 3)).astype(np.float32)
    saved = tmp_path_factory.mktemp("saved") / "checkpoint"
    values = random_values(tf1_variable_shapes(image_size, z_dim, naming, gf_dim, df_dim))
    g, d, logits = save_tf1_checkpoint(values, saved, 60502, forward=(image_size, naming, z, x))
    # Moved like a downloaded checkpoint: its `checkpoint` file holds relative paths.
    moved = tmp_path_factory.mktemp("moved") / "checkpoint"
    shutil.move(saved, moved)
    config = dict(image_size=image_size, z_dim=z_dim, gf_dim=gf_dim, df_dim=df_dim)
    return dict(dir=moved, config=config, z=z, x=x, g=g, d=d, logits=logits)


def test_variable_names_and_shapes_are_the_released_checkpoints(reference):
    listed = {}
    for line in (reference / "variables.txt").read_text().splitlines():
        name, rest = line.split(" ", 1)
        shape, dtype = rest.rsplit(" ", 1)
        listed[name] = [int(s) for s in shape.strip("[]").split(",")]
        assert dtype == "float32"
    assert listed == tf1_variable_shapes(64)
    assert dict(tf.train.list_variables(str(reference / "DCGAN.model-60502"))) == listed


def test_keras_models_reproduce_the_tf1_graph(tf1_run):
    prefix = find_tf1_checkpoint(tf1_run["dir"])
    assert prefix == str(tf1_run["dir"] / "DCGAN.model-60502")
    assert tf1_checkpoint_step(prefix) == 60502
    assert tf1_model_config(prefix) == tf1_run["config"]
    # The random weights give outputs that are far from trivial, so a wrong mapping shows.
    assert np.std(tf1_run["g"]) > 0.2 and np.mean(np.abs(tf1_run["g"]) < 0.9) > 0.3
    assert np.std(tf1_run["logits"]) > 0.03

    generator, discriminator = load_tf1_models(prefix)
    g = np.asarray(generator(tf1_run["z"], training=False))
    probs, logits = (np.asarray(t) for t in discriminator(tf1_run["x"], training=False))
    assert g.shape == tf1_run["g"].shape
    assert np.max(np.abs(g - tf1_run["g"])) < 1e-4
    assert np.max(np.abs(logits - tf1_run["logits"])) < 1e-4
    assert np.max(np.abs(probs - tf1_run["d"])) < 1e-4


def test_prefix_and_its_file_names_are_accepted(tf1_run):
    prefix = str(tf1_run["dir"] / "DCGAN.model-60502")
    assert find_tf1_checkpoint(prefix) == prefix
    assert find_tf1_checkpoint(prefix + ".index") == prefix
    assert find_tf1_checkpoint(Path(prefix + ".meta")) == prefix


def test_what_is_not_a_tf1_checkpoint_gives_none(tmp_path):
    assert find_tf1_checkpoint(tmp_path) is None  # no `checkpoint` file
    assert find_tf1_checkpoint(tmp_path / "absent") is None
    assert find_tf1_checkpoint(tmp_path / "DCGAN.model-5") is None
    # This project's own (object-based) checkpoints are not TF1 ones.
    own = tf.train.Checkpoint(w=tf.Variable([1.0]))
    tf.train.CheckpointManager(own, tmp_path / "own", max_to_keep=1, checkpoint_name="DCGAN.model").save(7)
    assert tf.train.latest_checkpoint(tmp_path / "own") is not None
    assert find_tf1_checkpoint(tmp_path / "own") is None


def small_checkpoint(directory, step=7, change=None, drop=()):
    """A 16x16 TF1 checkpoint; `change` replaces values, `drop` leaves variables out."""
    values = random_values(tf1_variable_shapes(16))
    values.update(change or {})
    for name in drop:
        del values[name]
    save_tf1_checkpoint(values, directory, step)
    return str(Path(directory) / f"DCGAN.model-{step}")


def test_missing_variables_are_named(tmp_path):
    prefix = small_checkpoint(tmp_path, drop=["generator/g_bn1/moving_variance", "discriminator/d_h1_lin/bias"])
    with pytest.raises(InputError, match=r"lacks 2 of the 24 variables of the 16x16 DCGAN \(.*\): "
                       r"generator/g_bn1/moving_variance, discriminator/d_h1_lin/bias$"):
        load_tf1_models(prefix)


def test_other_shapes_are_named(tmp_path):
    prefix = small_checkpoint(tmp_path, change={"generator/g_bn1/beta": np.zeros(32, np.float32)})
    with pytest.raises(InputError, match=r"does not fit the 16x16 DCGAN \(z_dim 100, gf_dim 64, df_dim 64\): "
                       r"generator/g_bn1/beta is \[32\], expected \[64\]$"):
        load_tf1_models(prefix)


def test_models_of_another_size_do_not_fit(tf1_run):
    from dcgan_completion.networks import build_discriminator, build_generator

    prefix = find_tf1_checkpoint(tf1_run["dir"])
    config = tf1_run["config"]
    other = 32 if config["image_size"] != 32 else 16
    generator = build_generator(other, config["z_dim"], config["gf_dim"])
    with pytest.raises(InputError, match=f"(lacks .* variables of|does not fit) the {other}x{other} DCGAN"):
        load_tf1_weights(prefix, generator, build_discriminator(other, config["df_dim"]))


def test_not_a_dcgan_checkpoint(tmp_path):
    save_tf1_checkpoint({"net/w": np.ones(3, np.float32)}, tmp_path, 1)
    prefix = find_tf1_checkpoint(tmp_path)
    assert prefix == str(tmp_path / "DCGAN.model-1")
    with pytest.raises(InputError, match="lacks generator/g_h0_lin/Matrix or generator/g_h1/w"):
        tf1_model_config(prefix)


def test_missing_data_file_is_named_and_leaves_the_models_alone(tmp_path):
    from dcgan_completion.networks import build_discriminator, build_generator

    prefix = small_checkpoint(tmp_path, step=9)
    Path(prefix + ".data-00000-of-00001").unlink()
    assert find_tf1_checkpoint(tmp_path) == prefix  # the index alone still names its variables
    generator, discriminator = build_generator(16), build_discriminator(16)
    before = [w.copy() for w in generator.get_weights()]
    with pytest.raises(InputError, match=r"its data file DCGAN\.model-9\.data-00000-of-00001 is missing"):
        load_tf1_weights(prefix, generator, discriminator)
    assert all(np.array_equal(a, b) for a, b in zip(before, generator.get_weights()))


def test_released_checkpoint_lacks_its_data_file(reference):
    prefix = find_tf1_checkpoint(reference)
    assert prefix == str(reference / "DCGAN.model-60502")
    assert tf1_model_config(prefix) == dict(image_size=64, z_dim=100, gf_dim=64, df_dim=64)
    assert tf1_checkpoint_step(prefix) == 60502
    with pytest.raises(InputError, match=r"DCGAN\.model-60502: its data file DCGAN\.model-60502\.data-00000-of-00001 is missing"):
        load_tf1_models(prefix)


def test_own_checkpoint_saved_beside_a_tf1_one_keeps_it(tmp_path):
    # What train-dcgan does when it goes on from a TF1 checkpoint in its --checkpoint_dir.
    from dcgan_completion.checkpoints import checkpoint_manager, load_models, named_weights

    prefix = small_checkpoint(tmp_path, step=7)
    generator, discriminator = load_tf1_models(prefix)
    manager = checkpoint_manager(
        tf.train.Checkpoint(generator=named_weights(generator), discriminator=named_weights(discriminator)), tmp_path
    )
    manager.save(checkpoint_number=8)
    manager.save(checkpoint_number=9)
    assert Path(prefix + ".index").is_file() and Path(prefix + ".data-00000-of-00001").is_file()
    assert not Path(tmp_path / "DCGAN.model-8.index").exists()  # only the newest of ours is kept
    assert find_tf1_checkpoint(tmp_path) is None  # the `checkpoint` file now names ours
    reloaded, _ = load_models(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(generator.get_weights(), reloaded.get_weights()))


def test_convert_cli_writes_what_load_models_reads(tf1_run, tmp_path, capsys):
    from dcgan_completion.checkpoints import load_models
    from dcgan_completion.cli.convert import main

    out = tmp_path / "converted"
    main([str(tf1_run["dir"]), str(out)])
    assert capsys.readouterr().out.strip() == f"wrote {out / 'DCGAN.model-60502'}"
    assert (out / "DCGAN.model-60502.index").is_file()
    assert find_tf1_checkpoint(out) is None  # this project's format now
    generator, discriminator = load_models(out)
    assert np.max(np.abs(np.asarray(generator(tf1_run["z"], training=False)) - tf1_run["g"])) < 1e-4
    assert np.max(np.abs(np.asarray(discriminator(tf1_run["x"], training=False)[1]) - tf1_run["logits"])) < 1e-4


def test_convert_cli_errors(tmp_path, capsys):
    from dcgan_completion.cli.convert import main

    def error(*argv):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dcgan-convert: error: ")
        return lines[0]

    assert "holds no `checkpoint` file" in error(tmp_path, tmp_path / "out")
    assert "no checkpoint at" in error(tmp_path / "DCGAN.model-3", tmp_path / "out")

    prefix = small_checkpoint(tmp_path / "tf1", step=3)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "checkpoint").write_text('model_checkpoint_path: "DCGAN.model-1"\n')
    assert "full already holds a checkpoint" in error(prefix, tmp_path / "full")
    (tmp_path / "file").write_text("")
    assert "file is a file" in error(prefix, tmp_path / "file")

    main([prefix + ".index", str(tmp_path / "ours")])
    assert "already in this project's format" in error(tmp_path / "ours", tmp_path / "out")

    Path(prefix + ".data-00000-of-00001").unlink()
    assert "its data file DCGAN.model-3.data-00000-of-00001 is missing" in error(tmp_path / "tf1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_convert_command_on_the_released_checkpoint(reference, tmp_path):
    script = Path(sys.executable).with_name("dcgan-convert")
    if not script.is_file():
        pytest.skip("the dcgan-convert console script is not installed")
    result = subprocess.run([script, reference, tmp_path / "out"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"dcgan-convert: error: TF1 checkpoint {reference / 'DCGAN.model-60502'}: its data file "
        "DCGAN.model-60502.data-00000-of-00001 is missing (the .index and .meta files alone hold no "
        "weights; put the .data-* file(s) beside them)"
    )
    assert not (tmp_path / "out").exists()

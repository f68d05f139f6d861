import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from helpers import run_and_interrupt

from dcgan_completion import checkpoints, training, training_hooks
from dcgan_completion.cli.train import main
from dcgan_completion.errors import InputError

TINY = dict(image_size=8, batch_size=4, gf_dim=8, df_dim=8, progress=False)


def noise_folder(folder, count=12, size=8, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def run(workdir, data, **kwargs):
    return training.train(
        str(data), checkpoint_dir=workdir / "checkpoint", sample_dir=workdir / "samples", log_dir=workdir / "logs",
        **{**TINY, **kwargs},
    )


def stored_values(checkpoint_dir):
    prefix = checkpoints.latest_checkpoint(checkpoint_dir)
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)
            if name.startswith(("generator", "discriminator", "optimizers", "sample_z", "step", "epoch", "position"))}


def bce(logits, label):
    logits = np.asarray(logits, np.float64)
    return np.mean(np.log1p(np.exp(-logits)) if label == 1 else np.log1p(np.exp(logits)))


def test_one_step_updates_both_networks_and_batch_norm_statistics():
    keras.utils.set_random_seed(0)
    model = training.build_dcgan(16, z_dim=10, gf_dim=8, df_dim=8)
    images = tf.random.stateless_uniform([4, 16, 16, 3], [1, 2], -1, 1)
    z = tf.random.stateless_uniform([4, 10], [3, 4], -1, 1)
    # The D losses the step reports, computed independently before the update.
    real_logits = model.discriminator(images, training=True)[1].numpy()
    fake_logits = model.discriminator(model.generator(z, training=True), training=True)[1].numpy()
    before = {v.path: v.numpy() for v in model.generator.weights + model.discriminator.weights}

    losses = {k: float(v) for k, v in model.train_step((images, z)).items()}

    assert losses["d_loss_real"] == pytest.approx(bce(real_logits, 1), rel=1e-4)
    assert losses["d_loss_fake"] == pytest.approx(bce(fake_logits, 0), rel=1e-4)
    assert losses["d_loss"] == pytest.approx(losses["d_loss_real"] + losses["d_loss_fake"], rel=1e-6)
    assert np.isfinite(losses["g_loss"]) and losses["g_loss"] > 0
    for v in model.generator.weights + model.discriminator.weights:
        assert not np.array_equal(v.numpy(), before[v.path]), f"{v.path} did not change"
    assert any("moving_mean" in p for p in before) and any("d_bn1/moving_variance" in p for p in before)  # 16x16: D has one batch norm
    # One D update, then two G updates.
    assert int(model.d_optimizer.iterations) == 1
    assert int(model.g_optimizer.iterations) == 2

    # The same step under Keras' own fit loop (in a tf.function).
    model.fit(tf.data.Dataset.from_tensors((images, z)).repeat(2), epochs=1, verbose=0, shuffle=False)
    assert int(model.d_optimizer.iterations) == 3 and int(model.g_optimizer.iterations) == 6


def test_the_two_generator_updates_use_the_same_z():
    keras.utils.set_random_seed(0)
    model = training.build_dcgan(16, z_dim=10, gf_dim=8, df_dim=8)
    images = tf.random.stateless_uniform([4, 16, 16, 3], [1, 2], -1, 1)
    z = tf.random.stateless_uniform([4, 10], [3, 4], -1, 1)
    keras.utils.set_random_seed(0)
    twin = training.build_dcgan(16, z_dim=10, gf_dim=8, df_dim=8)
    model.train_step((images, z))
    # By hand: one D update, two G updates with the same z.
    fake = twin.generator(z, training=True)
    with tf.GradientTape() as tape:
        d_loss = (training._cross_entropy(twin.discriminator(images, training=True)[1], 1.0)
                  + training._cross_entropy(twin.discriminator(fake, training=True)[1], 0.0))
        d_loss = tf.reduce_mean(d_loss)
    variables = twin.discriminator.trainable_variables
    twin.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables))
    for _ in range(2):
        with tf.GradientTape() as tape:
            g_loss = tf.reduce_mean(training._cross_entropy(
                twin.discriminator(twin.generator(z, training=True), training=True)[1], 1.0))
        variables = twin.generator.trainable_variables
        twin.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables))
    for ours, theirs in zip(model.generator.weights + model.discriminator.weights,
                            twin.generator.weights + twin.discriminator.weights):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6, err_msg=ours.path)


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    data = noise_folder(tmp_path / "data")  # 12 images: 3 batches of 4 per epoch
    whole = run(tmp_path / "whole", data, epochs=2, seed=3, sample_every=2, summary_every=2)
    assert whole["step"] == 6 and whole["steps_run"] == 6
    assert sorted(os.listdir(tmp_path / "whole" / "checkpoint")) == [
        "DCGAN.model-6.data-00000-of-00001", "DCGAN.model-6.index", "checkpoint"]
    # Samples at the first step and every 2 steps, named by (epoch, batch) of the step: 1, 2, 4, 6.
    assert sorted(os.listdir(tmp_path / "whole" / "samples")) == [
        "train_00_0000.png", "train_00_0001.png", "train_01_0000.png", "train_01_0002.png"]
    grid = np.asarray(Image.open(tmp_path / "whole" / "samples" / "train_00_0001.png"))
    assert grid.shape == (8 * 8, 8 * 8, 3)
    expected = stored_values(tmp_path / "whole" / "checkpoint")

    # Stopped inside the second epoch, then resumed without --seed.
    stopped = run(tmp_path / "stopped", data, epochs=2, seed=3, max_steps=4)
    assert stopped["step"] == 4
    assert int(stored_values(tmp_path / "stopped" / "checkpoint")["position/.ATTRIBUTES/VARIABLE_VALUE"]) == 1
    resumed = run(tmp_path / "stopped", data, epochs=2)
    assert resumed["step"] == 6 and resumed["steps_run"] == 2

    # Interrupted by Ctrl-C (while writing the sample of step 1, the run's first), then resumed.
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_hooks, "save_grid", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "interrupted", data, epochs=2, seed=3, sample_every=2)
    assert checkpoints.latest_checkpoint(tmp_path / "interrupted" / "checkpoint").endswith("DCGAN.model-1")
    monkeypatch.undo()
    run(tmp_path / "interrupted", data, epochs=2, seed=3)

    for name in ("stopped", "interrupted"):
        got = stored_values(tmp_path / name / "checkpoint")
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-7, err_msg=f"{name}: {key}")
    assert int(expected["optimizers/discriminator/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == 6
    assert int(expected["optimizers/generator/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == 12

    # Nothing left to do: the step counter stays.
    assert run(tmp_path / "whole", data, epochs=2)["steps_run"] == 0
    generator, discriminator = checkpoints.load_models(tmp_path / "whole" / "checkpoint")
    assert generator.output_shape == (None, 8, 8, 3)


def test_training_goes_on_from_the_originals_tf1_checkpoint(tmp_path):
    from test_tf1_checkpoint import small_checkpoint

    tf1_prefix = small_checkpoint(tmp_path / "checkpoint", step=7)  # 16x16, gf_dim = df_dim = 64
    data = noise_folder(tmp_path / "data", count=4, size=16)
    summary = run(tmp_path, data, epochs=1, seed=1, image_size=16, gf_dim=64, df_dim=64)
    assert summary["step"] == 8 and summary["steps_run"] == 1
    assert summary["checkpoint"].endswith("DCGAN.model-8")
    assert Path(f"{tf1_prefix}.index").exists()  # the original's checkpoint is kept
    # Training started from its weights: one Adam step moves a weight by about 0.0002.
    theirs = tf.train.load_checkpoint(tf1_prefix).get_tensor("generator/g_h1/w")
    ours = stored_values(tmp_path / "checkpoint")["generator/g_h1/kernel/.ATTRIBUTES/VARIABLE_VALUE"]
    assert np.abs(ours - theirs).max() < 5e-4 < np.abs(theirs).mean()
    # The next run resumes from ours.
    again = run(tmp_path, data, epochs=2, image_size=16, gf_dim=64, df_dim=64)
    assert again["step"] == 9 and Path(f"{tf1_prefix}.index").exists()


def summary_steps(log_dir):
    """{(tag, kind of value): [steps]} of the TensorBoard event files in log_dir."""
    seen = {}
    for f in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(f)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for v in event.summary.value:
                seen.setdefault((v.tag, v.WhichOneof("value")), []).append(event.step)
    return seen


def test_tensorboard_summaries(tmp_path):
    data = noise_folder(tmp_path / "data", count=8)
    run(tmp_path, data, epochs=2, seed=1, sample_every=3, summary_every=2)  # 4 steps
    seen = summary_steps(tmp_path / "logs")
    for tag in ("d_loss_real", "d_loss_fake", "d_loss", "g_loss"):
        assert seen[(tag, "simple_value")] == [2, 4]
    for tag in ("z", "d", "d_"):
        assert seen[(tag, "histo")] == [2, 4]
    assert seen[("G", "image")] == [1, 3, 4]  # the first step, every 3rd, the last


@pytest.mark.parametrize("flag, steps", [
    ([], [10]),  # the default: every 10 steps
    (["--summary_every", 3], [3, 6, 9]),
    (["--summary_every", 1], list(range(1, 11))),  # the original's: every step
])
def test_cli_summary_every(tmp_path, capsys, flag, steps):
    data = noise_folder(tmp_path / "data", count=8)  # 2 batches of 4 an epoch: 10 steps in 5 epochs
    main([str(a) for a in ["--dataset", data, "--batch_size", 4, "--image_size", 8, "--epoch", 5, "--seed", 1,
                           "--precision", "float32", "--checkpoint_dir", tmp_path / "checkpoint",
                           "--sample_dir", tmp_path / "samples", "--log_dir", tmp_path / "logs", *flag]])
    assert capsys.readouterr().out.splitlines()[-1] == f"step 10: {tmp_path / 'checkpoint' / 'DCGAN.model-10'}"
    seen = summary_steps(tmp_path / "logs")
    for tag in ("d_loss", "g_loss"):
        assert seen[(tag, "simple_value")] == steps
    assert seen[("z", "histo")] == steps


def test_bfloat16_step(tmp_path, monkeypatch):
    data = noise_folder(tmp_path / "data", count=4)
    policy = keras.config.dtype_policy().name
    built, build_dcgan = [], training.build_dcgan
    monkeypatch.setattr(training, "build_dcgan", lambda *a, **k: built.append(build_dcgan(*a, **k)) or built[-1])
    summary = run(tmp_path / "bf16", data, epochs=1, seed=1, precision="mixed_bfloat16")
    assert summary["step"] == 1
    assert keras.config.dtype_policy().name == policy  # each layer is given the precision, not the process
    run(tmp_path / "f32", data, epochs=1, seed=1, precision="float32")  # the same step in float32
    # The networks that trained computed in bfloat16 ...
    assert [m.generator.get_layer("g_h1").compute_dtype for m in built] == ["bfloat16", "float32"]
    assert [m.discriminator.get_layer("d_h0_conv").compute_dtype for m in built] == ["bfloat16", "float32"]
    # ... so the step ended elsewhere than float32's, nearby; the stored weights are float32.
    bf16, f32 = stored_values(tmp_path / "bf16" / "checkpoint"), stored_values(tmp_path / "f32" / "checkpoint")
    networks = [name for name in f32 if name.startswith(("generator/", "discriminator/"))]
    assert all(bf16[name].dtype == np.float32 for name in networks)
    means = [name for name in networks if "moving_mean" in name]  # the batch statistics of the step
    assert max(np.abs(bf16[name] - f32[name]).max() for name in means) > 1e-6
    for name in networks:
        np.testing.assert_allclose(bf16[name], f32[name], rtol=0.05, atol=2e-3, err_msg=name)
    generator, _ = checkpoints.load_models(tmp_path / "bf16" / "checkpoint")
    assert generator.get_layer("g_h0_lin").kernel.dtype == "float32"


def cli(capsys, *argv):
    showwarning = warnings.showwarning
    with pytest.raises(SystemExit) as exit:
        main([str(a) for a in argv])
    assert warnings.showwarning is showwarning  # the tool's one-line warnings end with it
    err = capsys.readouterr().err.strip()
    return exit.value.code, err


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "is not a folder"),
        ("empty", "holds no .png/.jpg/.jpeg images"),
        ("few", "fewer than one batch of 4"),
        ("size", "image_size must be a power of two"),
        ("train_size", "--train_size 2 is smaller than one batch of 4"),
        ("epoch", "argument --epoch: must be >= 1, got 0"),
        ("precision", "argument --precision: invalid choice: 'half'"),
        ("summary_every", "argument --summary_every/--summary-every: must be >= 1, got 0"),
    ],
)
def test_cli_errors(tmp_path, capsys, case, expected):
    noise_folder(tmp_path / "few", count=3)
    noise_folder(tmp_path / "ok", count=4)
    (tmp_path / "empty").mkdir()
    folder = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "few": tmp_path / "few"}.get(case, tmp_path / "ok")
    extra = {"size": ["--image_size", 12], "train_size": ["--train_size", 2], "epoch": ["--epoch", 0],
             "precision": ["--precision", "half"], "summary_every": ["--summary_every", 0]}.get(case, [])
    code, err = cli(capsys, "--dataset", folder, "--batch_size", 4, "--image_size", 8,
                    "--checkpoint_dir", tmp_path / "ck", *extra)
    assert code == 2
    assert expected in err
    assert err.startswith("train-dcgan: error:") or "usage:" in err
    if not err.startswith("usage:"):
        assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "ck").exists()


def test_cli_warnings_are_one_line_each(tmp_path, capsys):
    data = noise_folder(tmp_path / "data", count=3)
    (data / "broken.png").write_bytes(b"not an image")
    code, err = cli(capsys, "--dataset", data, "--batch_size", 4, "--image_size", 8, "--checkpoint_dir", tmp_path / "ck")
    assert code == 2
    assert err.splitlines() == [
        f"train-dcgan: warning: skipping {data / 'broken.png'}: not a readable image",
        f"train-dcgan: error: {data} holds 3 readable images, fewer than one batch of 4: add images or lower --batch_size",
    ]


def test_cli_refuses_a_checkpoint_of_other_networks(tmp_path, capsys):
    data = noise_folder(tmp_path / "data", count=4, size=16)
    run(tmp_path, data, epochs=1, seed=1, image_size=16)
    code, err = cli(capsys, "--dataset", data, "--batch_size", 4, "--image_size", 8, "--checkpoint_dir", tmp_path / "checkpoint")
    assert code == 2 and len(err.splitlines()) == 1
    assert "'image_size': 16" in err and "another --checkpoint_dir" in err


def test_cli_trains_and_ctrl_c_saves_a_checkpoint(tmp_path):
    data = noise_folder(tmp_path / "data", count=8)
    command = [sys.executable, "-m", "dcgan_completion.cli.train", "--dataset", str(data), "--image_size", "8",
               "--batch_size", "4", "--epoch", "100000", "--seed", "1", "--precision", "float32"]
    code, output = run_and_interrupt(command, tmp_path, "d_loss=")  # losses on the progress bar: training runs
    assert code == 130, output
    assert "interrupted: saved checkpoint/DCGAN.model-" in output
    assert output.rstrip().endswith("train-dcgan: interrupted")
    prefix = checkpoints.latest_checkpoint(tmp_path / "checkpoint")
    step = int(prefix.rsplit("-", 1)[1])
    assert step >= 1
    assert int(tf.train.load_checkpoint(prefix).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == step
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from dcgan_completion import checkpoints, training, training_hooks

    strategy = training.make_strategy("mirrored")
    out = {"replicas": strategy.num_replicas_in_sync}
    # Two replicas fed identical halves must take the step one device takes on one half.
    keras.utils.set_random_seed(5)
    with strategy.scope():
        mirrored = training.build_dcgan(16, z_dim=10, gf_dim=8, df_dim=8)
    keras.utils.set_random_seed(5)
    single = training.build_dcgan(16, z_dim=10, gf_dim=8, df_dim=8)
    images = tf.random.stateless_uniform([4, 16, 16, 3], [1, 2], -1, 1)
    z = tf.random.stateless_uniform([4, 10], [3, 4], -1, 1)
    both = tf.data.Dataset.from_tensors((tf.concat([images, images], 0), tf.concat([z, z], 0)))
    batch = next(iter(strategy.experimental_distribute_dataset(both)))
    losses = tf.function(lambda b: strategy.run(mirrored.train_step, args=(b,)))(batch)
    tf.function(single.train_step)((images, z))
    pairs = zip(mirrored.generator.weights + mirrored.discriminator.weights,
                single.generator.weights + single.discriminator.weights)
    out["max_difference"] = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in pairs)
    out["iterations"] = [int(mirrored.d_optimizer.iterations.numpy()), int(mirrored.g_optimizer.iterations.numpy())]
    out["weights_on"] = sorted({v.device.rsplit(":", 1)[-1] for v in mirrored.generator.weights[0].value.values})

    # One strategy per process (a second MirroredStrategy's collectives would clash).
    summary = training.train(sys.argv[1], epochs=1, image_size=8, batch_size=4, gf_dim=8, df_dim=8, seed=1,
                             strategy=strategy, checkpoint_dir=sys.argv[2], progress=False)
    out["step"] = summary["step"]
    g, d = checkpoints.load_models(sys.argv[2])
    out["loaded"] = g.output_shape[1]
    print(json.dumps(out))
    """
)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    data = noise_folder(tmp_path / "data", count=8)
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    done = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "checkpoint")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["weights_on"] == ["0", "1"]
    assert out["max_difference"] < 1e-5
    assert out["iterations"] == [1, 2]
    assert out["step"] == 2 and out["loaded"] == 8


def test_bad_arguments_of_the_library(tmp_path):
    data = noise_folder(tmp_path / "data", count=4)
    with pytest.raises(InputError, match="unknown precision"):
        run(tmp_path, data, precision="float8")
    with pytest.raises(InputError, match="unknown strategy"):
        run(tmp_path, data, strategy="tpu")
    with pytest.raises(InputError, match="learning_rate"):
        run(tmp_path, data, learning_rate=0)

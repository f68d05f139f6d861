"""Issue 12: every bad input a one-line error naming the user's path, and Ctrl-C keeps what was done.

Each test is one case of scripts/try_bad_inputs.py's catalogue, small enough to run here
(8x8 and 16x16 networks, a few iterations).
"""
import importlib.metadata
import os
import pydoc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from helpers import run_and_interrupt, run_main

import dcgan_completion
from dcgan_completion import alignment, checkpoints, data, training
from dcgan_completion.checkpoints import load_models, named_weights
from dcgan_completion.cli import align, complete, convert, gif, serve, train
from dcgan_completion.errors import InputError
from dcgan_completion.images import read_rgb, save_image
from dcgan_completion.masks import load_mask
from dcgan_completion.networks import build_discriminator, build_generator

TINY = dict(image_size=8, batch_size=2, gf_dim=8, df_dim=8, progress=False, precision="float32")


def noise(path, size=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def folder_of_noise(folder, count=4, size=8):
    for k in range(count):
        noise(folder / f"{k}.png", size, seed=k)
    return folder


def grey16(path, values):
    """A 16-bit greyscale PNG of `values` (uint16)."""
    Image.fromarray(np.asarray(values, np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    return path


def cli(main, capsys, *argv):
    """Run a tool's main in-process: (exit code, stdout, stderr lines)."""
    code, out, err = run_main(main, capsys, *argv)
    return code, out, err.strip().splitlines()


def one_error(main, capsys, prog, *argv):
    """The error line of a run that must fail with exit 2 and print that one line."""
    code, _, err = cli(main, capsys, *argv)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith(f"{prog}: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def checkpoint16(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint")
    g, d = build_generator(16, gf_dim=8), build_discriminator(16, df_dim=8)
    tf.train.Checkpoint(generator=named_weights(g), discriminator=named_weights(d)).write(str(folder / "DCGAN.model-1"))
    return folder


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


# ---------------------------------------------------------------- the tool's name


def test_dcgan_complete_is_the_tool_and_complete_its_alias(capsys):
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")
               if e.value.startswith("dcgan_completion.")}
    assert scripts["dcgan-complete"] == scripts["complete"] == "dcgan_completion.cli.complete:main"
    code, out, _ = cli(complete.main, capsys, "--help")
    assert code == 0 and out.startswith("usage: dcgan-complete ")


# ---------------------------------------------------------------- 1: 16-bit images


def test_16_bit_images_are_scaled_to_8_bits_everywhere(tmp_path, checkpoint16, capsys):
    values = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257  # every 8-bit level, as 16 bits
    values[0, :4] = [0, 128, 20000, 65535]  # and some between the levels
    path = grey16(tmp_path / "grey.png", values)
    expected = np.rint(values / 257).astype(np.uint8)
    np.testing.assert_array_equal(read_rgb(path), np.repeat(expected[:, :, None], 3, axis=2))

    # A mask: grey 20000 of 65535 (31%) is below half, so it is a pixel to fill.
    keep = np.full((8, 8), 65535, np.uint16)
    keep[2:5, 2:5] = 20000
    (tmp_path / "masks").mkdir()
    mask = load_mask(grey16(tmp_path / "masks" / "mask.png", keep), 8)
    assert mask[:, :, 0].sum() == 64 - 9 and mask[3, 3, 0] == 0

    # The training data (decoded by TensorFlow): the same pixels, to a grey level.
    files = data.dataset_files(tmp_path, batch_size=1)
    batch = next(iter(data.image_batches([str(path)], 16, 1, seed=0)))
    assert files == [str(path)]
    assert np.abs((batch[0].numpy() + 1) * 127.5 - expected[:, :, None]).max() <= 1.01

    # dcgan-complete: the known pixels of the result are the input's 8-bit ones, not white.
    code, _, err = cli(complete.main, capsys, path, "--checkpointDir", checkpoint16, "--imgSize", 16, "--nIter", 1,
                       "--outDir", tmp_path / "out")
    assert code == 0, err
    final = read_rgb(tmp_path / "out" / "final" / "grey.png")
    known = np.ones((16, 16), bool)
    known[4:12, 4:12] = False  # the centre mask
    np.testing.assert_array_equal(final[known][:, 0], expected[known])


def test_alignment_reads_16_bit_photos(shared_data, tmp_path):
    rgb = read_rgb(shared_data / "photos" / "clapton-2.jpg")
    grey = rgb.mean(axis=2).round().astype(np.uint16) * 257
    for folder in ("photos", "photos8"):
        (tmp_path / folder).mkdir()
    grey16(tmp_path / "photos" / "grey.png", grey)
    Image.fromarray((grey // 257).astype(np.uint8)).save(tmp_path / "photos8" / "grey.png")
    [sixteen] = alignment.align_folder(tmp_path / "photos", tmp_path / "out16", jobs=1, progress=False)
    [eight] = alignment.align_folder(tmp_path / "photos8", tmp_path / "out8", jobs=1, progress=False)
    assert sixteen.outcome == eight.outcome == "aligned"
    np.testing.assert_array_equal(read_rgb(sixteen.output), read_rgb(eight.output))


# ---------------------------------------------------------------- 2: decompression bombs


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("L", (14000, 14000)).save(path)  # 196 M pixels in 190 kB
    return path


def test_a_decompression_bomb_is_refused_or_skipped(bomb, tmp_path, capsys):
    with pytest.raises(InputError, match=r"bomb\.png: too large \(more than \d+ pixels"):
        read_rgb(bomb)
    line = one_error(complete.main, capsys, "dcgan-complete", bomb, "--nIter", 1)
    assert str(bomb) in line and "resize it first" in line
    # In a training set it is skipped, with a warning naming it.
    folder_of_noise(tmp_path / "data", 2)
    os.link(bomb, tmp_path / "data" / "bomb.png")
    with pytest.warns(UserWarning, match=r"skipping .*bomb\.png: more than \d+ pixels"):
        files = data.dataset_files(tmp_path / "data", batch_size=2)
    assert [Path(f).name for f in files] == ["0.png", "1.png"]


# ---------------------------------------------------------------- 3: truncated checkpoints


def test_truncated_checkpoints_are_one_line_errors(tmp_path, checkpoint16, capsys):
    from test_tf1_checkpoint import small_checkpoint

    ours = tmp_path / "ours"
    ours.mkdir()
    for f in checkpoint16.iterdir():
        (ours / f.name).write_bytes(f.read_bytes())
    truncate(next(ours.glob("*.data-*")))
    with pytest.raises(InputError, match="its data file is damaged or incomplete"):
        load_models(ours)
    tf1 = small_checkpoint(tmp_path / "tf1", step=7)
    truncate(f"{tf1}.data-00000-of-00001")
    with pytest.raises(InputError, match="TF1 checkpoint .*DCGAN.model-7: its data file is damaged"):
        load_models(tmp_path / "tf1")

    faces = folder_of_noise(tmp_path / "faces", 2, size=16)
    for where in (ours, tmp_path / "tf1"):
        line = one_error(complete.main, capsys, "dcgan-complete", faces, "--checkpointDir", where, "--imgSize", 16)
        assert str(where) in line and "damaged" in line
    line = one_error(convert.main, capsys, "dcgan-convert", tmp_path / "tf1", tmp_path / "converted")
    assert "DCGAN.model-7: its data file is damaged" in line
    line = one_error(train.main, capsys, "train-dcgan", "--dataset", faces, "--image_size", 16, "--batch_size", 2,
                     "--checkpoint_dir", tmp_path / "tf1", "--precision", "float32")
    assert "DCGAN.model-7: its data file is damaged" in line


# ---------------------------------------------------------------- 4, 5, 6: train-dcgan


@pytest.mark.parametrize("flag, target, message", [
    ("--checkpoint_dir", "a-file", "--checkpoint_dir {t}/a-file is a file: give a folder"),
    ("--log_dir", "a-file", "--log_dir {t}/a-file is a file: give a folder"),
    ("--sample_dir", "a-file/samples", "--sample_dir {t}/a-file/samples cannot be made: {t}/a-file is a file"),
])
def test_train_checks_its_output_folders_before_training(tmp_path, capsys, flag, target, message):
    folder_of_noise(tmp_path / "data")
    (tmp_path / "a-file").write_text("a file")
    argv = {"--checkpoint_dir": tmp_path / "ck", "--log_dir": tmp_path / "logs", "--sample_dir": tmp_path / "s"}
    argv[flag] = tmp_path / target
    line = one_error(train.main, capsys, "train-dcgan", "--dataset", tmp_path / "data", "--image_size", 8,
                     "--batch_size", 2, *[str(x) for kv in argv.items() for x in kv])
    assert line == "train-dcgan: error: " + message.format(t=tmp_path)
    assert not (tmp_path / "ck").exists()  # nothing trained


def test_not_writable_output_folder_is_refused(tmp_path, monkeypatch):
    # Root writes anywhere, so os.access stands in for a folder the user cannot write to.
    folder_of_noise(tmp_path / "data")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path / "locked" else real_access(p, mode))
    (tmp_path / "locked").mkdir()
    with pytest.raises(InputError, match=r"--log_dir .*locked/logs is not writable \(.*locked\)"):
        training.train(str(tmp_path / "data"), checkpoint_dir=tmp_path / "ck", log_dir=tmp_path / "locked" / "logs",
                       sample_dir=tmp_path / "s", **TINY)


def test_a_full_disk_during_a_save_leaves_the_last_checkpoint_and_no_temp_folder(tmp_path, monkeypatch):
    from tensorflow.python.ops import gen_io_ops

    data_dir = folder_of_noise(tmp_path / "data")
    kwargs = dict(checkpoint_dir=tmp_path / "ck", sample_dir=tmp_path / "s", log_dir=tmp_path / "logs", seed=1, **TINY)
    training.train(str(data_dir), epochs=1, **kwargs)  # DCGAN.model-2

    # The shards are written to DCGAN.model-4_temp/, then merging them into place finds the disk full.
    def disk_full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "ck/DCGAN.model-4_temp; No space left on device")

    monkeypatch.setattr(gen_io_ops, "merge_v2_checkpoints", disk_full)
    with pytest.raises(InputError, match=r"cannot write the checkpoint of step 4 in .*ck \(.*No space left on "
                                         r"device\); .*DCGAN.model-2 is kept: free some space"):
        training.train(str(data_dir), epochs=2, **kwargs)
    assert not list((tmp_path / "ck").glob("*_temp"))
    assert checkpoints.latest_checkpoint(tmp_path / "ck").endswith("DCGAN.model-2")

    # A save interrupted earlier left its _temp folder: the next run removes it.
    monkeypatch.undo()
    (tmp_path / "ck" / "DCGAN.model-3_temp").mkdir()
    (tmp_path / "ck" / "DCGAN.model-3_temp" / "part-00000-of-00001.index").write_bytes(b"x" * 100)
    assert training.train(str(data_dir), epochs=2, **kwargs)["step"] == 4
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "DCGAN.model-4.data-00000-of-00001", "DCGAN.model-4.index", "checkpoint"]


def test_two_ctrl_c_during_training_save_and_print_no_traceback(tmp_path):
    data_dir = folder_of_noise(tmp_path / "data")
    command = [sys.executable, "-m", "dcgan_completion.cli.train", "--dataset", str(data_dir), "--image_size", "8",
               "--batch_size", "2", "--epoch", "100000", "--seed", "1", "--precision", "float32"]
    code, output = run_and_interrupt(command, tmp_path, "d_loss=", signals=2)
    assert code == 130, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert "interrupted: saved checkpoint/DCGAN.model-" in output
    assert checkpoints.latest_checkpoint(tmp_path / "checkpoint") is not None


def test_multiworker_training_needs_a_seed(tmp_path):
    folder_of_noise(tmp_path / "data")
    with pytest.raises(InputError, match="--strategy multiworker needs --seed: give every worker the same --seed"):
        training.train(str(tmp_path / "data"), strategy="multiworker", checkpoint_dir=tmp_path / "ck", **TINY)


def test_a_short_run_writes_samples_at_its_first_and_last_step(tmp_path):
    data_dir = folder_of_noise(tmp_path / "data", count=6)  # 3 steps an epoch
    training.train(str(data_dir), epochs=1, seed=1, checkpoint_dir=tmp_path / "ck", sample_dir=tmp_path / "s",
                   log_dir=tmp_path / "logs", sample_every=100, **TINY)
    assert sorted(os.listdir(tmp_path / "s")) == ["train_00_0000.png", "train_00_0002.png"]


# ---------------------------------------------------------------- 7: align-faces' worker pool


def test_the_worker_pool_ends_without_a_traceback(tmp_path):
    folder_of_noise(tmp_path / "photos", count=4, size=32)
    for run in range(3):  # it was intermittent: 3 runs in 6
        done = subprocess.run([sys.executable, "-m", "dcgan_completion.cli.align", str(tmp_path / "photos"),
                               str(tmp_path / f"out{run}"), "--jobs", "2", "--quiet"],
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "" and "4 photos: 0 aligned, 4 with no face" in done.stdout, done.stderr


# ---------------------------------------------------------------- 8, 9: TensorFlow's own messages


def test_a_garbage_checkpoint_state_file_prints_only_the_error(tmp_path, capfd):
    (tmp_path / "checkpoint").write_text("model_checkpoint_path: {{ garbage")
    with pytest.raises(InputError, match="holds no checkpoint"):
        load_models(tmp_path)
    assert "ParseError" not in "".join(capfd.readouterr())
    # With a checkpoint beside it, the newest index file is used.
    g, d = build_generator(8, gf_dim=8), build_discriminator(8, df_dim=8)
    tf.train.Checkpoint(generator=named_weights(g), discriminator=named_weights(d)).write(str(tmp_path / "DCGAN.model-3"))
    assert load_models(tmp_path)[0].output_shape == (None, 8, 8, 3)
    assert "ParseError" not in "".join(capfd.readouterr())


def test_importing_the_tools_changes_no_process_wide_setting():
    # Issue 13: no umask, environment variable or TensorFlow option set at import; the
    # tools set what they need in main() (cli.import_tensorflow).
    probe = ("import os, sys\n"
             "calls, real_umask = [], os.umask\n"
             "os.umask = lambda mask: calls.append(mask) or real_umask(mask)\n"
             "import dcgan_completion.images, dcgan_completion.cli.complete, dcgan_completion.cli.serve\n"
             "import dcgan_completion.cli.align, dcgan_completion.cli.gif, dcgan_completion.cli.convert\n"
             "print(calls, os.environ.get('TF_CPP_MIN_LOG_LEVEL'), os.environ.get('TF_ENABLE_ONEDNN_OPTS'),\n"
             "      'tensorflow' in sys.modules)\n")
    unset = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k not in unset})
    assert done.stdout.split() == ["[]", "None", "None", "False"], done.stderr


@pytest.mark.parametrize("setting, enabled", [(None, "True"), ("0", "False")])
def test_the_tools_run_tensorflow_with_onednn_unless_told_not_to(setting, enabled):
    # TensorFlow enables oneDNN by itself only on CPUs with AVX-512 VNNI/BF16 or AMX.
    probe = ("from dcgan_completion.cli import import_tensorflow\n"
             "import_tensorflow()\n"
             "from tensorflow.python.util import _pywrap_util_port\n"
             "print(_pywrap_util_port.IsMklEnabled())\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.split() == [enabled], done.stderr


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        save_image(tmp_path / "face.png", np.zeros((8, 8, 3), np.uint8))
    finally:
        os.umask(previous)
    assert (tmp_path / "face.png").stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["face.png"]  # no temporary file left


def test_train_dcgan_errors_come_without_tensorflows_start_up_lines(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dcgan_completion.cli.train", "--dataset", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DCGAN_TF_VERBOSE")})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"train-dcgan: error: {tmp_path / 'none'} is not a folder: give a folder of .png/.jpg/.jpeg images"]


# ---------------------------------------------------------------- 10, 11: outputs and inputs that cannot be


def test_outputs_that_are_the_wrong_kind_are_named(tmp_path, checkpoint16, capsys):
    faces = folder_of_noise(tmp_path / "faces", 1, size=16)
    (tmp_path / "a-file").write_text("")
    line = one_error(complete.main, capsys, "dcgan-complete", faces, "--checkpointDir", checkpoint16, "--imgSize", 16,
                     "--outDir", tmp_path / "a-file")
    assert line == f"dcgan-complete: error: --outDir {tmp_path / 'a-file'} is a file: give a folder"
    (tmp_path / "frames").mkdir()
    noise(tmp_path / "frames" / "0.png")
    line = one_error(gif.main, capsys, "make-gif", tmp_path / "frames", "-o", tmp_path / "faces")
    assert line == f"make-gif: error: -o {tmp_path / 'faces'} is a folder: give a file name"
    line = one_error(align.main, capsys, "align-faces", tmp_path / "frames", tmp_path / "aligned", "--report",
                     tmp_path / "faces")
    assert line == f"align-faces: error: --report {tmp_path / 'faces'} is a folder: give a file name"
    assert not (tmp_path / "aligned").exists()  # refused before any work


def test_align_faces_on_a_folder_of_non_images_fails(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "in" / name).write_bytes(b"not an image")
    code, out, err = cli(align.main, capsys, tmp_path / "in", tmp_path / "out", "--jobs", 1)
    assert code == 2 and "2 unreadable" in out
    assert err[-1] == (f"align-faces: error: {tmp_path / 'in'}: none of its 2 .jpg/.jpeg/.png files could be read "
                       "as an image: give a folder of photos")
    assert all("Traceback" not in line for line in err)


# ---------------------------------------------------------------- 12: flag errors


@pytest.mark.parametrize("main, prog, argv, message", [
    (complete.main, "dcgan-complete", ["x.png", "--nIter", "-3"], "argument --nIter/--n-iter: must be >= 0, got -3"),
    (train.main, "train-dcgan", ["--dataset", "d", "--batch_size", "0"], "argument --batch_size/--batch-size: must be"),
    (align.main, "align-faces", ["in", "out", "--size", "1"], "argument --size: must be >= 8, got 1"),
    (gif.main, "make-gif", ["frames"], "the following arguments are required: -o/--output"),
    (gif.main, "make-gif", ["frames", "-o", "x.gif", "--delay", "-1"], "argument --delay: must be >= 0, got -1"),
    (serve.main, "dcgan-serve", ["--port", "70000"], "argument --port: must be >= 0 and <= 65535, got 70000"),
    (serve.main, "dcgan-serve", ["--max-iter", "many"], "argument --max-iter: expected a whole number, got 'many'"),
    (convert.main, "dcgan-convert", [], "the following arguments are required: TF1_CHECKPOINT, OUT"),
])
def test_flag_errors_are_one_line(capsys, main, prog, argv, message):
    line = one_error(main, capsys, prog, *argv)
    assert message in line and line.endswith(f"(see {prog} --help)")


def test_align_size_has_a_lower_bound(tmp_path):
    with pytest.raises(InputError, match="size must be a whole number of pixels >= 8, got 7"):
        alignment.align_face(np.zeros((32, 32, 3), np.uint8), size=7)
    assert alignment.destination_points(8).shape == (3, 2)


# ---------------------------------------------------------------- 13: help(dcgan_completion)


def test_help_says_what_the_library_offers():
    doc = dcgan_completion.__doc__
    headings = ["Training", "Completion", "Masks", "Alignment", "Images", "Checkpoints"]
    positions = [doc.index(f"\n{h}") for h in headings]
    assert positions == sorted(positions)
    listed = set()
    for line in doc.splitlines():
        if line.startswith("    ") and not line.startswith("     "):
            listed |= {name.strip(",") for name in line.strip().split("  ")[0].replace("(", " ").split()}
    assert set(dcgan_completion.__all__) <= listed, set(dcgan_completion.__all__) - listed
    text = pydoc.render_doc(dcgan_completion, renderer=pydoc.plaintext)
    assert text.index("by concern") < text.index("class DCGAN")


# ---------------------------------------------------------------- also expected by users


def test_ctrl_c_during_complete_keeps_the_running_batch_apart_and_the_same_command_completes_it(
        tmp_path, checkpoint16, capsys, monkeypatch):
    from dcgan_completion import completion

    faces = folder_of_noise(tmp_path / "faces", 5, size=16)
    real_log_chunk, calls = completion._log_chunk, []

    def interrupt_in_the_second_batch(*args):
        real_log_chunk(*args)
        calls.append(1)
        if len(calls) == 3:  # batch 0 took 2 chunks (iterations 0-2, 2-4)
            raise KeyboardInterrupt

    def command(out):
        return (complete.main, capsys, faces, "--checkpointDir", checkpoint16, "--imgSize", 16, "--nIter", 4,
                "--outInterval", 2, "--batch_size", 2, "--outDir", out, "--gif", "--lr", 0.5)

    assert cli(*command(tmp_path / "whole"))[0] == 0
    monkeypatch.setattr(completion, "_log_chunk", interrupt_in_the_second_batch)
    out = tmp_path / "out"
    code, _, err = cli(*command(out))
    assert code == 130
    assert err[-1] == (f"dcgan-complete: interrupted: in batch 1, at iteration 2 of 4; kept 2 finished images in "
                       f"{out / 'final'}/, the current state of the running batch's 2 images in {out / 'unfinished'}/ "
                       f"(not counted as finished: the same command completes them) and 1 frame in "
                       f"{out / 'batch_01' / 'completion.gif'}")
    assert sorted(p.name for p in (out / "final").iterdir()) == ["0.png", "1.png"]  # batch 0, finished
    assert sorted(p.name for p in (out / "unfinished").iterdir()) == ["2.png", "3.png"]
    known = np.ones((16, 16), bool)
    known[4:12, 4:12] = False
    for k in (2, 3):
        np.testing.assert_array_equal(read_rgb(out / "unfinished" / f"{k}.png")[known],
                                      read_rgb(faces / f"{k}.png")[known])
    # Batch 1 was stopped at iteration 2, before its snapshot there: its unfinished images
    # are from z at 2, not its grid of iteration 0.
    at_0 = read_rgb(out / "batch_01" / "completed" / "0000.png")[:, :16]
    assert (read_rgb(out / "unfinished" / "2.png")[~known] != at_0[~known]).any()
    assert not (out / "batch_01" / "completed" / "0002.png").exists() and not (out / "batch_02").exists()
    with Image.open(out / "batch_01" / "completion.gif") as im:
        assert im.n_frames == 1

    monkeypatch.setattr(completion, "_log_chunk", real_log_chunk)
    code, stdout, _ = cli(*command(out))  # the same command completes the rest
    assert code == 0 and "completed 3 images" in stdout and "skipped 2 inputs" in stdout
    assert not list((out / "unfinished").iterdir())
    whole = {p.relative_to(tmp_path / "whole"): p.read_bytes() for p in (tmp_path / "whole").rglob("*") if p.is_file()}
    resumed = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert resumed == whole  # grids, logs and GIFs as one uninterrupted run's


def test_an_all_white_mask_leaves_nothing_to_fill(tmp_path, checkpoint16, capsys):
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(tmp_path / "white.png")
    with pytest.raises(InputError, match="has no hole"):
        load_mask(tmp_path / "white.png", 16)
    save_image(tmp_path / "face.png", np.zeros((16, 16, 3), np.uint8))
    line = one_error(complete.main, capsys, "dcgan-complete", tmp_path / "face.png", "--checkpointDir", checkpoint16,
                     "--imgSize", 16, "--maskFile", tmp_path / "white.png")
    assert line == (f"dcgan-complete: error: mask file {tmp_path / 'white.png'} has no hole (all white): nothing "
                    "to fill; black marks the pixels to fill")


def test_ctrl_c_during_complete_align_keeps_every_photo(shared_data, tmp_path, monkeypatch):
    from dcgan_completion import completion
    from dcgan_completion.photos import complete_photo_files

    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(completion, "_log_chunk", interrupt)  # after iterations 0-5, before their snapshot
    photo = shared_data / "photos" / "clapton-2.jpg"
    g, d = build_generator(16, gf_dim=8), build_discriminator(16, df_dim=8)
    with pytest.raises(KeyboardInterrupt, match=rf"at iteration 5 of 5; kept the current state of every photo begun \(1 of 1\) "
                                                rf"in {tmp_path / 'out'}/"):
        complete_photo_files([photo], g, d, tmp_path / "out", mask_type="center", n_iter=5, out_interval=5)
    original, result = read_rgb(photo), read_rgb(tmp_path / "out" / "clapton-2.png")
    changed = (result != original).any(axis=2)
    assert 0 < changed.sum() < changed.size / 4  # the hole is filled, the rest is the photo's
    assert (tmp_path / "out" / "faces" / "clapton-2-1.png").is_file()

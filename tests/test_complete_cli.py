"""`dcgan-complete` end to end on a tiny 16x16 checkpoint: files on disk, exit codes, messages."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from helpers import random_faces, run_main, tiny_checkpoint

from dcgan_completion.checkpoints import named_weights
from dcgan_completion.cli.complete import main
from dcgan_completion.images import read_rgb, save_image
from dcgan_completion.masks import make_mask
from dcgan_completion.networks import build_discriminator, build_generator

SIZE = 16


@pytest.fixture(autouse=True)
def grappler_options_stay():
    # The search turns grappler's remapper off for itself only: the tool leaves the
    # process's options as they were (an unset remapping is on, as True is).
    def options():
        return {"remapping": True, **tf.config.optimizer.get_experimental_options()}

    before = options()
    yield
    assert options() == before


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"), SIZE)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return random_faces(tmp_path_factory.mktemp("faces"), 5, SIZE)


def complete(args, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    return run_main(main, capsys, *args)


def gif_frames(path):
    with Image.open(path) as im:
        durations, loops = [], im.info.get("loop")
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
        return im.n_frames, durations, loops


def test_several_batches_write_every_image(tmp_path, checkpoint, inputs, capsys):
    out = tmp_path / "out"
    code, stdout, _ = complete([inputs, "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 5,
                                "--outInterval", 2, "--batch_size", 2, "--outDir", out, "--gif",
                                "--maskType", "left", "--lr", "0.2", "--logs", "full"], capsys)
    assert code == 0 and "completed 5 images" in stdout
    mask = make_mask("left", SIZE) > 0.5
    for k in range(5):
        original = read_rgb(inputs / f"face{k}.png")
        final = read_rgb(out / "final" / f"face{k}.png")
        assert (final[mask] == original[mask]).all()  # known pixels exactly the input's
    for b, n in ((0, 2), (1, 2), (2, 1)):  # batches 2, 2, 1, each in its own folder
        folder = out / f"batch_{b:02d}"
        assert Image.open(folder / "before.png").size == (n * SIZE, SIZE)
        assert (folder / "masked.png").is_file()
        names = sorted(p.name for p in (folder / "completed").iterdir())
        assert names == ["0000.png", "0002.png", "0004.png", "0005.png"]
        assert sorted(p.name for p in (folder / "hats_imgs").iterdir()) == names
        logs = sorted((folder / "logs").iterdir())
        assert [p.name for p in logs] == [f"hats_{k:02d}.log" for k in range(n)]
        rows = np.loadtxt(logs[-1], ndmin=2)
        assert rows.shape == (6, 2 + 100)  # --logs full, the original's: iteration, loss, z, for iterations 0..5
        np.testing.assert_array_equal(rows[:, 0], np.arange(6))
        assert np.abs(rows[:, 2:]).max() <= 1
        frames, durations, loops = gif_frames(folder / "completion.gif")
        assert frames == 4 and durations == [100] * 4 and loops == 0
    assert not (out / "before.png").exists()
    final_grid = read_rgb(out / "batch_02" / "completed" / "0005.png")
    np.testing.assert_array_equal(final_grid, read_rgb(out / "final" / "face4.png"))


@pytest.mark.parametrize("n_iter, every", [(30, 3), (1000, 50), (4, 1)])
def test_progress_images_come_every_50_iterations_or_ten_times_a_search(tmp_path, checkpoint, inputs, n_iter, every,
                                                                       capsys):
    out = tmp_path / "out"
    code, _, _ = complete([inputs / "face0.png", "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", n_iter,
                           "--outDir", out, "--init", "random"], capsys)
    assert code == 0
    assert sorted(p.name for p in (out / "completed").iterdir()) == [
        f"{it:04d}.png" for it in range(0, n_iter + 1, every)]


def test_one_batch_writes_the_originals_layout(tmp_path, checkpoint, inputs, capsys):
    out = tmp_path / "out"
    code, _, err = complete([inputs / "face0.png", inputs / "face1.png", "--checkpointDir", checkpoint,
                             "--imgSize", SIZE, "--nIter", 2, "--outInterval", 50, "--outDir", out,
                             "--maskType", "lowres", "--weightedContext", "--approach", "momentum", "--beta1", "0.5"],
                            capsys)
    assert code == 0
    assert "dcgan-complete: warning: --beta1 is for --approach adam: ignored with --approach momentum" in err
    for name in ("before.png", "masked.png", "lowres.png", "hats_imgs/0000.png", "hats_imgs/0000.lowres.png",
                 "hats_imgs/0002.png", "completed/0000.png", "completed/0002.png", "logs/hats_01.log",
                 "final/face0.png", "final/face1.png"):
        assert (out / name).is_file(), name
    assert not (out / "completion.gif").exists()
    lowres = read_rgb(out / "lowres.png")  # the inputs' 8x8 block means, one value per block
    assert (lowres[:8, :8] == lowres[0, 0]).all() and "completing" in err


def test_other_sizes_are_centre_cropped_and_resized_with_a_warning(tmp_path, checkpoint, capsys):
    # 48x32: a red and a blue strip 8 pixels wide at the sides, which the centre crop cuts
    # off, around a 32x32 square of four coloured quadrants, which it keeps (a squash
    # resize would keep the strips; a crop off centre would move the quadrants).
    quadrants = np.array([[[0, 200, 0], [200, 200, 200]], [[60, 60, 160], [200, 200, 0]]], np.uint8)
    photo = np.zeros((32, 48, 3), np.uint8)
    photo[:, :8], photo[:, 40:] = (255, 0, 0), (0, 0, 255)
    photo[:, 8:40] = np.repeat(np.repeat(quadrants, 16, axis=0), 16, axis=1)
    save_image(tmp_path / "big.png", photo)
    code, _, err = complete([tmp_path / "big.png", "--checkpointDir", checkpoint, "--imgSize", SIZE,
                             "--nIter", 1, "--outDir", tmp_path / "out"], capsys)
    assert code == 0
    assert "dcgan-complete: warning: big.png not 16x16: centre-cropped and resized" in err
    final = read_rgb(tmp_path / "out" / "final" / "big.png")
    assert final.shape == (SIZE, SIZE, 3)
    # The known pixels (outside the centre hole) are the quadrants at half size, exactly,
    # away from the quadrants' border, where the resize's filter mixes two colours.
    expected = np.repeat(np.repeat(quadrants, 8, axis=0), 8, axis=1)
    clear = np.ones((SIZE, SIZE), bool)
    clear[6:10] = clear[:, 6:10] = False
    known = make_mask("center", SIZE)[:, :, 0] == 1
    np.testing.assert_array_equal(final[clear & known], expected[clear & known])
    assert not (final[:, :, 0] > 150)[known & (final[:, :, 1] < 50)].any()  # no red strip anywhere
    assert not (final[:, :, 2] > 150)[known & (final[:, :, 0] < 50) & (final[:, :, 1] < 50)].any()  # nor blue


def test_mask_files(tmp_path, checkpoint, inputs, capsys):
    keep = np.full((SIZE, SIZE), 255, np.uint8)
    keep[3:9, 5:12] = 0
    Image.fromarray(keep).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    code, _, _ = complete([inputs / "face2.png", "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 3,
                           "--maskFile", tmp_path / "mask.png", "--outDir", out], capsys)  # --maskType file implied
    assert code == 0
    final, original = read_rgb(out / "final" / "face2.png"), read_rgb(inputs / "face2.png")
    assert (final[keep > 0] == original[keep > 0]).all()
    assert not (final[keep == 0] == original[keep == 0]).all()


def error_of(args, capsys):
    code, out, err = complete(args, capsys)
    lines = err.strip().splitlines()
    return code, lines[-1], err


@pytest.mark.parametrize("make_args,message", [
    (lambda t, ck, inp: [t / "none.png", "--checkpointDir", ck], "none.png: no such file or folder"),
    (lambda t, ck, inp: [t / "empty", "--checkpointDir", ck], "holds no .png/.jpg/.jpeg images"),
    (lambda t, ck, inp: [t / "junk.png", "--checkpointDir", ck, "--imgSize", 16], "junk.png: cannot read image"),
    (lambda t, ck, inp: [inp, "--checkpointDir", t / "nothing"], "nothing: no such checkpoint"),
    (lambda t, ck, inp: [inp, "--checkpointDir", t / "empty"], "holds no checkpoint"),
    (lambda t, ck, inp: [inp, "--checkpointDir", ck], "the model completes 16x16 images, not 64x64: pass --imgSize 16"),
    (lambda t, ck, inp: [inp, "--checkpointDir", ck, "--imgSize", 16, "--maskType", "file"], "needs --maskFile"),
    (lambda t, ck, inp: [inp, "--checkpointDir", ck, "--imgSize", 16, "--maskType", "file", "--maskFile", t / "small.png"],
     "is 8x8 but the images are 16x16"),
    (lambda t, ck, inp: [inp, "--checkpointDir", ck, "--imgSize", 16, "--maskType", "file", "--maskFile", t / "black.png"],
     "keeps no pixel"),
    (lambda t, ck, inp: [inp, "--nIter", "-3"], "argument --nIter/--n-iter: must be >= 0, got -3"),
    (lambda t, ck, inp: [inp, "--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
    (lambda t, ck, inp: [inp, "--momentum", "1"], "argument --momentum: must be >= 0 and < 1, got 1"),
    (lambda t, ck, inp: [inp, "--maskType", "ring"], "argument --maskType/--mask-type: invalid choice"),
    (lambda t, ck, inp: [inp, "--checkpointDir", ck, "--imgSize", 16, "--maskType", "left", "--maskFile", t / "black.png"],
     "--maskFile goes with --maskType file, not left"),
    (lambda t, ck, inp: [t / "small.png", "--align", "--checkpointDir", ck, "--imgSize", 16], "no face"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, checkpoint, inputs, capsys, make_args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.png").write_bytes(b"\x89PNG but not really")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(tmp_path / "black.png")
    code, last, err = error_of(make_args(tmp_path, checkpoint, inputs), capsys)
    assert code == 2
    assert last.startswith("dcgan-complete: error: ") and message in last, err
    assert "Traceback" not in err


def test_blend_keeps_known_pixels_and_smooths_the_seam(tmp_path):
    # --blend fills the hole with G(z) Poisson-blended into the input: the known pixels
    # stay the input's, and the fill differs from the pasted G(z) of the same search.
    from dcgan_completion.blending import poisson_blend
    from dcgan_completion.completion import complete
    from dcgan_completion.masks import make_mask
    from dcgan_completion.networks import build_discriminator, build_generator

    g, d = build_generator(16), build_discriminator(16)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    mask = make_mask("center", 16)
    pasted = complete(images, mask, g, d, n_iter=3, seed=1)
    blended = complete(images, mask, g, d, n_iter=3, seed=1, blend=True)
    known = np.broadcast_to(mask > 0.5, images.shape)
    np.testing.assert_array_equal(blended.completed[known], images[known])
    np.testing.assert_array_equal(blended.generated, pasted.generated)
    np.testing.assert_allclose(blended.completed, poisson_blend(images, pasted.generated, mask), atol=1e-6)
    assert np.abs(blended.completed - pasted.completed)[~known].mean() > 1e-3


def native_bfloat16_here():
    """mixed_bfloat16 where this machine's CPU has bfloat16 instructions (AVX-512 BF16 or
    AMX, as /proc/cpuinfo lists them), else float32: what --precision auto must pick here
    (a CPU-only machine; read here, not by the function the tool calls)."""
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU machine: auto follows the GPU")
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's instructions from")
    return "mixed_bfloat16" if {"avx512_bf16", "amx_bf16"} & set(cpuinfo.read_text().split()) else "float32"


@pytest.mark.parametrize("flags, hardware, expected", [
    ([], None, None),  # auto, on this machine: bfloat16 where its CPU has the instructions
    ([], "mixed_bfloat16", "mixed_bfloat16"),  # auto where the hardware computes bf16 natively
    (["--precision", "auto"], "float32", "float32"),
    (["--precision", "float32"], "mixed_bfloat16", "float32"),
    (["--precision", "mixed_bfloat16"], "float32", "mixed_bfloat16"),
])
def test_precision_auto_follows_the_hardware_and_a_flag_is_obeyed(tmp_path, checkpoint, inputs, capsys, monkeypatch,
                                                                  flags, hardware, expected):
    from dcgan_completion import completion, training

    if hardware is None:
        expected = native_bfloat16_here()
    else:
        monkeypatch.setattr(training, "default_precision", lambda: hardware)
    policies, real_complete = [], completion.complete

    def spy(images, masks, generator, discriminator, *args, **kwargs):
        # The dtype policies of the networks the search runs.
        policies.append({generator.get_layer("g_h1").dtype_policy.name,
                         discriminator.get_layer("d_h0_conv").dtype_policy.name})
        return real_complete(images, masks, generator, discriminator, *args, **kwargs)

    monkeypatch.setattr(completion, "complete", spy)
    code, out, _ = complete([inputs / "face0.png", "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 1,
                             "--outDir", tmp_path / "out", *flags], capsys)
    assert code == 0 and policies == [{expected}]
    assert out.strip().endswith(f"computed in {expected})")


# ---------------------------------------------------------------- every documented mask, through the tool


def documented_hole(mask_type, size=SIZE):
    """The missing pixels docs/completion.md's table gives a mask type (True = to fill)."""
    hole = np.zeros((size, size), bool)
    half = size // 2
    if mask_type in ("left", "right"):
        hole[:, :half] = True  # left: columns < size/2, as the original
    if mask_type in ("top", "bottom"):
        hole[:half] = True
    if mask_type in ("right", "bottom"):
        hole = np.flip(hole, axis=1 if mask_type == "right" else 0)
    if mask_type == "grid":
        hole[:] = True
        hole[::4, ::4] = False  # all but every 4th row and column
    return hole


@pytest.fixture(scope="module")
def white_faces(tmp_path_factory):
    """Four white 16x16 inputs: in masked.png (the inputs times their masks) the hole is
    whatever is not white."""
    folder = tmp_path_factory.mktemp("white")
    for k in range(4):
        save_image(folder / f"white{k}.png", np.full((SIZE, SIZE, 3), 255, np.uint8))
    return folder


def masked_holes(out, count=4):
    """Each input's hole as masked.png shows it (one row of the grid, inputs in order)."""
    grid = read_rgb(out / "masked.png")
    assert grid.shape == (SIZE, count * SIZE, 3)
    return [(grid[:, k * SIZE:(k + 1) * SIZE] != 255).any(axis=2) for k in range(count)]


@pytest.mark.parametrize("mask_type", ["right", "top", "bottom", "random", "random80", "half", "grid", "full"])
def test_every_mask_type_fills_the_pixels_the_docs_say(tmp_path, checkpoint, white_faces, capsys, mask_type):
    out = tmp_path / "out"
    code, stdout, err = complete([white_faces, "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 1,
                                  "--outDir", out, "--maskType", mask_type], capsys)
    assert code == 0 and "completed 4 images" in stdout, err
    holes = masked_holes(out)
    if mask_type in ("random", "random80"):  # each pixel missing with probability 0.2 or 0.8 ...
        missing = 0.2 if mask_type == "random" else 0.8
        for hole in holes:
            assert abs(hole.mean() - missing) < 0.1, hole.mean()
        assert all((a != b).any() for a, b in zip(holes, holes[1:]))  # ... each image its own draw
    elif mask_type == "half":  # a random one of the four halves, each image its own
        halves = [documented_hole(t) for t in ("left", "right", "top", "bottom")]
        drawn = [next(k for k, h in enumerate(halves) if (h == hole).all()) for hole in holes]
        assert len(set(drawn)) > 1, drawn
    else:
        for hole in holes:
            np.testing.assert_array_equal(hole, documented_hole(mask_type))
    for k, hole in enumerate(holes):
        final = read_rgb(out / "final" / f"white{k}.png")
        assert (final[~hole] == 255).all()  # the known pixels are the input's
        assert mask_type == "full" or (final[hole] != 255).any(axis=1).mean() > 0.9  # the hole is filled


def test_a_mask_folder_gives_each_input_the_mask_of_its_name(tmp_path, checkpoint, inputs, capsys):
    # docs/completion.md: a folder with one mask per input, named as the input (a.png for a.jpg).
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("face0.png", "face1.png"):
        (photos / name).write_bytes((inputs / name).read_bytes())
    save_image(photos / "face2.jpg", read_rgb(inputs / "face2.png"))
    holes = {"face0": (slice(2, 6), slice(2, 14)), "face1": (slice(8, 15), slice(1, 5)), "face2": (slice(5, 11), slice(5, 11))}
    masks = tmp_path / "masks"
    masks.mkdir()
    for name, where in holes.items():
        keep = np.full((SIZE, SIZE), 255, np.uint8)
        keep[where] = 0
        Image.fromarray(keep).save(masks / f"{name}.png")
    out = tmp_path / "out"
    code, stdout, err = complete([photos, "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 2,
                                  "--maskFile", masks, "--outDir", out], capsys)
    assert code == 0 and "completed 3 images" in stdout, err
    for name, where in holes.items():
        hole = np.zeros((SIZE, SIZE), bool)
        hole[where] = True
        original = read_rgb(next(photos.glob(f"{name}.*")))
        final = read_rgb(out / "final" / f"{name}.png")
        np.testing.assert_array_equal(final[~hole], original[~hole])
        assert (final[hole] != original[hole]).any(axis=1).mean() > 0.9, name
    # A folder that lacks an input's mask is a one-line error naming it.
    (masks / "face1.png").unlink()
    code, last, err = error_of([photos, "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 1,
                                "--maskFile", masks, "--outDir", tmp_path / "out2"], capsys)
    assert code == 2 and last.startswith("dcgan-complete: error: ") and "face1" in last, err


# ---------------------------------------------------------------- --checkpointDir: a TF1 checkpoint, a prefix


def final_after(args, out, capsys):
    """Run dcgan-complete on face0.png with `args` into `out`, in float32: its final image."""
    code, _, err = complete([*args, "--imgSize", SIZE, "--nIter", 2, "--outDir", out, "--precision", "float32"], capsys)
    assert code == 0, err
    return read_rgb(out / "final" / "face0.png")


def test_checkpoint_dir_takes_the_originals_tf1_checkpoint_folder_or_prefix(tmp_path, inputs, capsys):
    from test_tf1_checkpoint import _tf1_generator, random_values, save_tf1_checkpoint, tf1_variable_shapes

    values = random_values(tf1_variable_shapes(16), seed=5)
    save_tf1_checkpoint(values, tmp_path / "tf1", step=60502)  # as the original's Saver wrote it
    final = final_after([inputs / "face0.png", "--checkpointDir", tmp_path / "tf1", "--logs", "full"], tmp_path / "out",
                        capsys)
    # The hole holds G(z) of the TF1 graph itself for the z the search ended on.
    z = np.loadtxt(tmp_path / "out" / "logs" / "hats_00.log", ndmin=2)[-1, 2:]
    expected = (_tf1_generator(z[None].astype(np.float32), values, 2).numpy()[0] + 1) * 127.5
    hole = make_mask("center", SIZE)[:, :, 0] == 0
    assert np.abs(final[hole] - expected[hole]).max() <= 1.01
    np.testing.assert_array_equal(final[~hole], read_rgb(inputs / "face0.png")[~hole])
    # Its prefix names the same checkpoint.
    prefix = tmp_path / "tf1" / "DCGAN.model-60502"
    np.testing.assert_array_equal(final_after([inputs / "face0.png", "--checkpointDir", prefix], tmp_path / "p", capsys),
                                  final)


def test_checkpoint_dir_takes_a_prefix_other_than_the_newest(tmp_path, checkpoint, inputs, capsys):
    # A folder with DCGAN.model-1 (the module's checkpoint) and a newer DCGAN.model-2 of other weights.
    folder = tmp_path / "ck"
    folder.mkdir()
    for f in checkpoint.glob("DCGAN.model-1.*"):
        (folder / f.name).write_bytes(f.read_bytes())
    g, d = build_generator(SIZE, gf_dim=16), build_discriminator(SIZE, df_dim=16)
    tf.train.Checkpoint(generator=named_weights(g), discriminator=named_weights(d)).write(str(folder / "DCGAN.model-2"))
    (folder / "checkpoint").write_text('model_checkpoint_path: "DCGAN.model-2"\n'
                                       'all_model_checkpoint_paths: "DCGAN.model-1"\n'
                                       'all_model_checkpoint_paths: "DCGAN.model-2"\n')
    args = [inputs / "face0.png", "--checkpointDir"]
    only_1 = final_after([*args, checkpoint], tmp_path / "only-1", capsys)
    newest = final_after([*args, folder], tmp_path / "newest", capsys)
    prefix_1 = final_after([*args, folder / "DCGAN.model-1"], tmp_path / "prefix-1", capsys)
    np.testing.assert_array_equal(prefix_1, only_1)  # the prefix's checkpoint ...
    assert (newest != only_1).any()  # ... not the folder's newest


# ---- many inputs: batch by batch, resuming, shards, several devices ---------------------


def tree(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_run(inputs, checkpoint, out, *flags):
    return [inputs, "--checkpointDir", checkpoint, "--imgSize", SIZE, "--nIter", 3, "--outInterval", 2,
            "--batch_size", 2, "--outDir", out, "--precision", "float32", "--lr", "0.2", *flags]


def test_inputs_go_batch_by_batch_and_a_second_run_skips_what_is_done(tmp_path, checkpoint, inputs, capsys,
                                                                       monkeypatch):
    from dcgan_completion import completion

    searched, real_complete = [], completion.complete

    def spy(images, *args, **kwargs):
        searched.append(len(images))
        return real_complete(images, *args, **kwargs)

    monkeypatch.setattr(completion, "complete", spy)
    out = tmp_path / "out"
    args = tiny_run(inputs, checkpoint, out, "--gif")
    code, stdout, _ = complete(args, capsys)
    assert code == 0 and "completed 5 images" in stdout and searched == [2, 2, 1]  # one batch at a time
    first = tree(out)
    assert first["batch_00/logs/hats_01.log"].decode().splitlines()[3].split()[0] == "3"
    assert np.loadtxt(out / "batch_00" / "logs" / "hats_01.log").shape == (4, 2)  # default --logs loss
    times = {p: p.stat().st_mtime_ns for p in out.rglob("*")}

    code, stdout, _ = complete(args, capsys)
    assert code == 0 and searched == [2, 2, 1]
    assert stdout.splitlines()[1] == "skipped 5 inputs whose final image was there (--overwrite completes them again)"
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == times  # nothing written

    # A batch with some inputs done is searched again whole (its grids stay one run's);
    # the final images that are there are left as they are.
    (out / "final" / "face2.png").unlink()
    save_image(out / "final" / "face3.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    code, stdout, _ = complete(args, capsys)
    assert code == 0 and "completed 1 image:" in stdout and "skipped 4 inputs" in stdout and searched[3:] == [2]
    again = tree(out)
    assert (read_rgb(out / "final" / "face3.png") == 0).all()
    assert {k: v for k, v in again.items() if k != "final/face3.png"} == \
        {k: v for k, v in first.items() if k != "final/face3.png"}

    code, stdout, _ = complete([*args, "--overwrite"], capsys)
    assert code == 0 and "completed 5 images" in stdout and searched[4:] == [2, 2, 1]
    assert tree(out) == first


def test_shards_together_write_one_runs_files_bit_for_bit(tmp_path, checkpoint, inputs, capsys):
    one, shared = tmp_path / "one", tmp_path / "shared"
    flags = ("--gif", "--maskType", "random", "--logs", "full")
    assert complete(tiny_run(inputs, checkpoint, one, *flags), capsys)[0] == 0
    code, stdout, _ = complete(tiny_run(inputs, checkpoint, shared, *flags, "--shard", "1/2"), capsys)
    assert code == 0 and stdout.splitlines()[:2] == [
        f"completed 3 images: {shared}/final/ (progress in {shared}; computed in float32)",
        "shard 1/2 of 5 inputs: batches 1-2, inputs 2-4"]
    code, stdout, _ = complete(tiny_run(inputs, checkpoint, shared, *flags, "--shard", "0/2"), capsys)
    assert code == 0 and "shard 0/2 of 5 inputs: batch 0, inputs 0-1" in stdout
    expected, got = tree(one), tree(shared)
    assert sorted(got) == sorted(expected) and "batch_02/completion.gif" in got
    assert got == expected  # random masks and starting z from each input's place in the whole list

    code, stdout, _ = complete(tiny_run(inputs, checkpoint, tmp_path / "idle", "--shard", "0/4"), capsys)
    assert code == 0 and "shard 0/4 of 5 inputs: no batch: fewer batches than shards" in stdout
    assert not (tmp_path / "idle").exists()


def test_an_unreadable_image_in_a_folder_is_skipped_with_a_warning(tmp_path, checkpoint, inputs, capsys):
    folder = tmp_path / "faces"
    folder.mkdir()
    for k in (0, 2, 3):
        (folder / f"face{k}.png").write_bytes((inputs / f"face{k}.png").read_bytes())
    (folder / "face1.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "out"
    code, stdout, err = complete(tiny_run(folder, checkpoint, out, "--logs", "none"), capsys)
    assert code == 0
    assert f"dcgan-complete: warning: {folder / 'face1.png'}: cannot read image" in err
    assert "completed 3 images" in stdout and "skipped 1 unreadable input" in stdout
    assert sorted(p.name for p in (out / "final").iterdir()) == ["face0.png", "face2.png", "face3.png"]
    assert Image.open(out / "batch_00" / "before.png").size == (SIZE, SIZE)  # face0 alone in its batch
    assert not (out / "batch_00" / "logs").exists()  # --logs none


def test_a_missing_mask_stops_the_run_before_any_work(tmp_path, checkpoint, inputs, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    keep = np.full((SIZE, SIZE), 255, np.uint8)
    keep[4:8, 4:8] = 0
    for k in range(4):
        Image.fromarray(keep).save(masks / f"face{k}.png")
    code, last, err = error_of(tiny_run(inputs, checkpoint, tmp_path / "out", "--maskFile", masks), capsys)
    assert code == 2 and last == (f"dcgan-complete: error: mask folder {masks} has no mask for "
                                  f"{inputs / 'face4.png'} (expected face4.png, .jpg or .jpeg)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, message", [
    (["--shard", "2/2"], "--shard 2/2: K counts from 0 and must be below N (0/2 ... 1/2)"),
    (["--shard", "half"], "--shard must be K/N, the K-th of N parts counting from 0 (0/4 ... 3/4), got 'half'"),
    (["--shard", "0/0"], "--shard 0/0: K counts from 0 and must be below N"),
    (["--shard", "0/2", "--align"], "--shard is for aligned faces, not yet with --align: leave it out"),
    (["--strategy", "mirrored", "--align"], "--strategy mirrored is for aligned faces, not yet with --align"),
    (["--logs", "some"], "argument --logs: invalid choice: 'some'"),
])
def test_bad_scale_flags_are_one_line_errors(tmp_path, checkpoint, inputs, capsys, flags, message):
    code, last, err = error_of(tiny_run(inputs, checkpoint, tmp_path / "out", *flags), capsys)
    assert code == 2 and message in last and "Traceback" not in err


def test_tools_let_gpu_memory_grow(monkeypatch):
    from dcgan_completion.cli import import_tensorflow

    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    import_tensorflow()
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"  # two tools can share a GPU
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")
    import_tensorflow()
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"  # the user's choice stands


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from dcgan_completion.cli.complete import main
    from dcgan_completion.completion import complete
    from dcgan_completion.masks import make_mask
    from dcgan_completion.networks import build_discriminator, build_generator
    from dcgan_completion.training import make_strategy

    inputs, checkpoint, out = sys.argv[1:4]
    common = [inputs, "--checkpointDir", checkpoint, "--imgSize", "16", "--nIter", "3", "--batch_size", "2",
              "--precision", "float32", "--lr", "0.2", "--logs", "full"]
    main([*common, "--outDir", out + "/mirrored", "--strategy", "mirrored"])
    main([*common, "--outDir", out + "/one"])

    # The library: batches of 3 (split 2 + 1) and 1 (1 + 0), adam and hmc (noise per image).
    strategy = make_strategy("mirrored")
    with strategy.scope():
        g, d = build_generator(16, gf_dim=8), build_discriminator(16, df_dim=8)
    g1, d1 = build_generator(16, gf_dim=8), build_discriminator(16, df_dim=8)
    g1.set_weights(g.get_weights())
    d1.set_weights(d.get_weights())
    images = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    result = {"replicas": strategy.num_replicas_in_sync, "weights_on": len(g.weights[0].value.values)}
    for approach, extra in (("adam", {}), ("hmc", {"hmc_l": 2})):
        settings = dict(n_iter=3, batch_size=3, approach=approach, seed=3, **extra)
        a = complete(images, make_mask("center", 16), g, d, strategy=strategy, **settings)
        b = complete(images, make_mask("center", 16), g1, d1, **settings)
        result[approach] = max(float(np.abs(a.z - b.z).max()), float(np.abs(a.completed - b.completed).max()),
                                float(np.abs(a.losses - b.losses).max() / np.abs(b.losses).max()))
    print(json.dumps(result))
    """
)


def test_mirrored_strategy_on_two_logical_cpus_completes_as_one_device(tmp_path, checkpoint, inputs):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    done = subprocess.run([sys.executable, str(script), str(inputs), str(checkpoint), str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == (f"completed 5 images: {tmp_path}/mirrored/final/ (progress in {tmp_path}/mirrored; "
                        "computed in float32 on 2 devices)")
    result = json.loads(lines[-1])
    assert result["replicas"] == 2 and result["weights_on"] == 2
    assert result["adam"] < 1e-5 and result["hmc"] < 1e-5
    mirrored, one = tree(tmp_path / "mirrored"), tree(tmp_path / "one")
    assert sorted(mirrored) == sorted(one)
    for name in one:
        if name.endswith(".png"):
            a, b = read_rgb(tmp_path / "mirrored" / name), read_rgb(tmp_path / "one" / name)
            assert np.abs(a.astype(int) - b).max() <= 1, name  # a rounding apart at most
        else:
            np.testing.assert_allclose(np.loadtxt(tmp_path / "mirrored" / name), np.loadtxt(tmp_path / "one" / name),
                                       rtol=1e-4, atol=1e-5, err_msg=name)

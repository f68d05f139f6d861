import re
from pathlib import Path

import numpy as np
import pytest
from helpers import aligned_celeba, run_main
from test_tf1_checkpoint import _tf1_generator

from dcgan_completion.checkpoints import SHIPPED_WEIGHTS, load_models, load_weights_file, save_weights_file
from dcgan_completion.errors import InputError
from dcgan_completion.images import read_rgb
from dcgan_completion.masks import make_mask
from dcgan_completion.networks import build_discriminator, build_generator


def test_weights_file_round_trip(tmp_path):
    g, d = build_generator(16, z_dim=8, gf_dim=4), build_discriminator(16, df_dim=4)
    for layer in (g.get_layer("g_bn0"), d.get_layer("d_bn1")):
        layer.moving_mean.assign(np.random.default_rng(1).normal(size=layer.moving_mean.shape))
    z = np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32)
    save_weights_file(g, d, tmp_path / "m.npz", dtype=np.float32, reference_z=z)
    g2, d2 = load_weights_file(tmp_path / "m.npz")
    assert (g2.output_shape, g2.input_shape, d2.get_layer("d_h0_conv").kernel.shape) == (
        (None, 16, 16, 3), (None, 8), (5, 5, 3, 4))
    x = g(z, training=False).numpy()
    np.testing.assert_array_equal(g2(z, training=False).numpy(), x)
    np.testing.assert_array_equal(d2(x, training=False)[1].numpy(), d(x, training=False)[1].numpy())
    with np.load(tmp_path / "m.npz") as stored:
        np.testing.assert_array_equal(stored["reference/images"], x)


def test_weights_file_that_does_not_fit_is_a_clear_error(tmp_path):
    g, d = build_generator(16, z_dim=8, gf_dim=4), build_discriminator(16, df_dim=4)
    save_weights_file(g, d, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as stored:
        arrays = {k: stored[k] for k in stored.files if k != "discriminator/d_bn1/gamma"}
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(InputError, match="d_bn1/gamma is missing"):
        load_weights_file(tmp_path / "broken.npz")
    with pytest.raises(InputError, match="no such weights file"):
        load_weights_file(tmp_path / "absent.npz")


def shipped_arrays():
    with np.load(SHIPPED_WEIGHTS) as stored:
        return {name: stored[name] for name in stored.files}


def original_generator(arrays, z):
    """G(z) of the generator whose weights `arrays` holds (a weights file's), computed by
    the original's TF1 generator graph as tests/test_tf1_checkpoint.py writes it, not by
    the package's Keras model: [N, size, size, 3] float32 in [-1, 1]."""
    tf1_names = {}
    for name, value in arrays.items():
        if name.startswith("generator/"):
            scope, leaf = name.rsplit("/", 1)
            if scope.endswith("_lin"):
                leaf = {"kernel": "Matrix"}.get(leaf, leaf)
            elif "/g_h" in scope:
                leaf = {"kernel": "w", "bias": "biases"}[leaf]
            tf1_names[f"{scope}/{leaf}"] = value.astype(np.float32)
    upsamplings = sum(1 for name in tf1_names if name.endswith("/w"))
    return _tf1_generator(np.asarray(z, np.float32), tf1_names, upsamplings).numpy()


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped face model in this checkout")
def test_shipped_model_gives_the_output_of_the_checkpoint_it_came_from():
    generator, discriminator = load_models()  # no checkpoint: the shipped face model
    assert generator.output_shape == (None, 64, 64, 3)
    arrays = shipped_arrays()
    z, reference = arrays["reference/z"], arrays["reference/images"]
    stored = original_generator(arrays, z)
    # load_models() builds the network of the stored weights ...
    np.testing.assert_allclose(generator(z, training=False).numpy(), stored, atol=1e-5)
    # ... and those are the float32 checkpoint's that computed reference/images at export,
    # rounded to float16: tanh outputs within a fifth of a grey level (2/255 = 0.008), yet
    # not equal, as they would be had the export computed its reference from its own copy.
    difference = np.abs(stored - reference).max()
    assert 2e-4 < difference < 4e-3, difference


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped face model in this checkout")
def test_complete_without_flags_uses_the_shipped_model(tmp_path, capsys):
    from dcgan_completion.cli.complete import main

    examples = sorted((Path(__file__).resolve().parents[1] / "data" / "examples").glob("*.png"))
    assert len(examples) >= 2
    code, out, err = run_main(main, capsys, *examples, "--outDir", tmp_path, "--nIter", 4, "--outInterval", 2,
                              "--logs", "full")  # z in the logs
    assert code == 0, err
    for name in ("before.png", "masked.png", "completed/0000.png", "completed/0004.png", "hats_imgs/0004.png"):
        assert (tmp_path / name).is_file(), name
    precision = re.search(r"computed in (\S+)\)", out).group(1)
    # Each face's hole holds G(z) of the shipped weights for the z its search ended on (its
    # log's last line), G computed here from the weights file by the original's graph.
    arrays = shipped_arrays()
    hole = make_mask("center", 64)[:, :, 0] == 0
    for k, example in enumerate(examples):
        z = np.loadtxt(tmp_path / "logs" / f"hats_{k:02d}.log", ndmin=2)[-1, 2:]
        assert z.shape == (100,)
        expected = (original_generator(arrays, z[None])[0] + 1) * 127.5
        final = read_rgb(tmp_path / "final" / example.name).astype(np.float64)
        error = np.abs(final[hole] - expected[hole])
        if precision == "float32":  # z is logged to 8 digits; PNG rounds to a grey level
            assert error.max() <= 1.01, (example.name, error.max())
        else:  # bfloat16 arithmetic: a few grey levels
            assert error.mean() <= 4, (example.name, precision, error.mean())
        np.testing.assert_array_equal(final[~hole], read_rgb(example)[~hole])


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped face model in this checkout")
def test_shipped_model_beats_a_mean_colour_fill_on_held_out_faces(shared_data):
    from dcgan_completion.completion import complete
    from dcgan_completion.images import to_float, to_uint8
    from dcgan_completion.masks import make_mask

    # 008501.. were held out of the shipped model's training (its model card).
    truth = aligned_celeba(shared_data, range(8501, 8521), 8)
    mask = make_mask("center", 64)
    hole = np.broadcast_to(mask < 0.5, truth.shape)
    generator, discriminator = load_models()
    completed = to_uint8(complete(to_float(truth) * mask, mask, generator, discriminator, n_iter=150).completed)
    mean_fill = truth.copy()
    for image in mean_fill:
        image[mask[:, :, 0] < 0.5] = image[mask[:, :, 0] > 0.5].mean(axis=0)

    def hole_psnr(images):
        mse = ((images.astype(float) - truth.astype(float)) ** 2)[hole].mean()
        return 10 * np.log10(255**2 / mse)

    assert hole_psnr(completed) > hole_psnr(mean_fill) + 1.5, (hole_psnr(completed), hole_psnr(mean_fill))

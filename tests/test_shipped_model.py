import numpy as np
import pytest
from helpers import aligned_celeba

from dcgan_completion.checkpoints import SHIPPED_WEIGHTS, load_models, load_weights_file, save_weights_file
from dcgan_completion.errors import InputError
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


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped face model in this checkout")
def test_shipped_model_gives_the_output_of_the_checkpoint_it_came_from():
    generator, discriminator = load_models()  # no checkpoint: the shipped face model
    assert generator.output_shape == (None, 64, 64, 3)
    with np.load(SHIPPED_WEIGHTS) as stored:
        z, reference = stored["reference/z"], stored["reference/images"]
    # float16 storage: tanh outputs agree to well under one grey level (2/255 = 0.008).
    np.testing.assert_allclose(generator(z, training=False).numpy(), reference, atol=4e-3)


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped face model in this checkout")
def test_complete_without_flags_uses_the_shipped_model(tmp_path, capsys):
    from pathlib import Path

    from dcgan_completion.cli.complete import main

    examples = sorted((Path(__file__).resolve().parents[1] / "data" / "examples").glob("*.png"))
    assert len(examples) >= 2
    main([*map(str, examples), "--outDir", str(tmp_path), "--nIter", "4", "--outInterval", "2"])
    for example in examples:
        assert (tmp_path / "final" / example.name).is_file()
    for name in ("before.png", "masked.png", "completed/0000.png", "completed/0004.png", "hats_imgs/0004.png"):
        assert (tmp_path / name).is_file(), name
    assert "completed" in capsys.readouterr().out


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

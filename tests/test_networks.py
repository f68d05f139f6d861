import keras
import numpy as np
import pytest

from dcgan_completion.networks import build_discriminator, build_generator


@pytest.mark.parametrize("size", [8, 32, 64, 128])
def test_layer_shapes_follow_image_size(size):
    g = build_generator(size)
    d = build_discriminator(size)
    n = int(np.log2(size)) - 2
    assert g.output_shape == (None, size, size, 3)
    assert g.get_layer("g_h0_lin").output.shape == (None, 4 * 4 * 64 * 2 ** (n - 1))
    for i in range(1, n + 1):
        side = 4 * 2**i
        channels = 3 if i == n else 64 * 2 ** (n - 1 - i)
        assert g.get_layer(f"g_h{i}").output.shape == (None, side, side, channels)
    for i in range(n):
        side = size // 2 ** (i + 1)
        assert d.get_layer(f"d_h{i}_conv").output.shape == (None, side, side, 64 * 2**i)
    assert d.get_layer(f"d_h{n - 1}_lin").kernel.shape == (4 * 4 * 64 * 2 ** (n - 1), 1)
    probs, logits = d(g(np.random.uniform(-1, 1, (2, 100)).astype("float32")))
    assert probs.shape == logits.shape == (2, 1)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-np.asarray(logits))), rtol=1e-5)


def test_parameter_counts_equal_the_originals():
    # Shapes of the released TF1 checkpoint (variables.txt): the 64x64 model.
    g_shapes = [(100, 8192), (8192,), (5, 5, 256, 512), (256,), (5, 5, 128, 256), (128,),
                (5, 5, 64, 128), (64,), (5, 5, 3, 64), (3,)] + [(c,) for c in (512, 256, 128, 64) for _ in range(4)]
    d_shapes = [(5, 5, 3, 64), (64,), (5, 5, 64, 128), (128,), (5, 5, 128, 256), (256,),
                (5, 5, 256, 512), (512,), (8192, 1), (1,)] + [(c,) for c in (128, 256, 512) for _ in range(4)]
    g, d = build_generator(64), build_discriminator(64)
    assert g.count_params() == sum(int(np.prod(s)) for s in g_shapes)
    assert d.count_params() == sum(int(np.prod(s)) for s in d_shapes)
    assert g.get_layer("g_h0_lin").kernel.shape == (100, 8192)
    assert g.get_layer("g_h1").kernel.shape == (5, 5, 256, 512)  # [5, 5, out, in] as TF1


def test_bad_image_size_is_a_clear_error():
    with pytest.raises(ValueError, match="power of two"):
        build_generator(48)
    with pytest.raises(ValueError, match="power of two"):
        build_discriminator(4)


def test_mixed_bfloat16_computes_in_bfloat16_and_keeps_float32_weights_and_outputs():
    keras.utils.set_random_seed(0)  # the same weights whatever ran before
    g, d = build_generator(16, dtype="mixed_bfloat16"), build_discriminator(16, dtype="mixed_bfloat16")
    g32, d32 = build_generator(16), build_discriminator(16)
    g32.set_weights(g.get_weights())
    d32.set_weights(d.get_weights())
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (4, 100)).astype("float32")
    images = rng.uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    x, x32 = g(z), g32(z)
    assert x.dtype == "float32" and all(t.dtype == "float32" for t in d(x))
    assert g.get_layer("g_h1").kernel.dtype == "float32"  # variables stay float32 ...
    assert g.get_layer("g_h1").compute_dtype == d.get_layer("d_h1_conv").compute_dtype == "bfloat16"
    # ... and the arithmetic is bfloat16's (8 bits of mantissa: ~0.4% each step): the same
    # networks in float32 give the outputs to a few parts in a thousand, not exactly.
    for ours, theirs in ((x, x32), (d(images)[1], d32(images)[1])):
        relative = np.abs(ours.numpy() - theirs.numpy()).max() / np.abs(theirs.numpy()).max()
        assert 1e-4 < relative < 0.05, relative

"""The original's DCGAN generator and discriminator as Keras models.

Layer names follow the original TF1 variable scopes (`g_h0_lin`, `g_bn0`, ...,
`d_h3_lin`) so that its weights map one to one onto these layers.
"""
import math

import keras
from keras import layers

Z_DIM = 100
GF_DIM = 64
DF_DIM = 64

# The original's initialisers: truncated normal for convolutions, normal for
# transposed convolutions and dense matrices, zero biases.
_conv_init = keras.initializers.TruncatedNormal(stddev=0.02)
_normal_init = keras.initializers.RandomNormal(stddev=0.02)


def _batch_norm(name, dtype):
    # tf.contrib.layers.batch_norm(decay=0.9, epsilon=1e-5, scale=True) of the original.
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name, dtype=dtype)


def _stride_2(layer, filters, initializer, name, dtype):
    # The original's conv2d / deconv2d: 5x5 kernels, stride 2, "same" padding.
    return layer(filters, 5, strides=2, padding="same", kernel_initializer=initializer, name=name, dtype=dtype)


def num_upsamplings(image_size):
    """How many stride-2 layers separate a 4x4 map from `image_size` (64 -> 4)."""
    if (
        not isinstance(image_size, int)
        or image_size < 8
        or image_size & (image_size - 1)
    ):
        raise ValueError(
            f"image_size must be a power of two >= 8 (8, 16, 32, 64, 128, ...), got {image_size!r}"
        )
    return int(math.log2(image_size)) - 2


def build_generator(image_size=64, z_dim=Z_DIM, gf_dim=GF_DIM, dtype=None):
    """G(z): z of shape [batch, z_dim] in [-1, 1] -> images [batch, size, size, 3] in [-1, 1].

    `dtype` is a Keras dtype policy name such as "mixed_bfloat16"; the output is
    always float32.
    """
    n = num_upsamplings(image_size)
    channels = [gf_dim * 2 ** (n - 1 - i) for i in range(n)]  # 64x64: 512, 256, 128, 64
    z = keras.Input(shape=(z_dim,), name="z")
    h = layers.Dense(4 * 4 * channels[0], kernel_initializer=_normal_init, name="g_h0_lin", dtype=dtype)(z)
    h = layers.Reshape((4, 4, channels[0]), dtype=dtype)(h)
    h = _batch_norm("g_bn0", dtype)(h)
    h = layers.ReLU(dtype=dtype)(h)
    for i in range(1, n + 1):
        last = i == n
        h = _stride_2(layers.Conv2DTranspose, 3 if last else channels[i], _normal_init, f"g_h{i}", dtype)(h)
        if not last:
            h = _batch_norm(f"g_bn{i}", dtype)(h)
            h = layers.ReLU(dtype=dtype)(h)
    images = layers.Activation("tanh", dtype="float32", name="g_tanh")(h)
    return keras.Model(z, images, name="generator")


def build_discriminator(image_size=64, df_dim=DF_DIM, dtype=None):
    """D(x): images [batch, size, size, 3] -> (sigmoid(logit), logit), each [batch, 1], float32."""
    n = num_upsamplings(image_size)
    x = keras.Input(shape=(image_size, image_size, 3), name="images")
    h = x
    for i in range(n):
        h = _stride_2(layers.Conv2D, df_dim * 2**i, _conv_init, f"d_h{i}_conv", dtype)(h)
        if i > 0:
            h = _batch_norm(f"d_bn{i}", dtype)(h)
        h = layers.LeakyReLU(negative_slope=0.2, dtype=dtype)(h)
    h = layers.Flatten(dtype=dtype)(h)
    logits = layers.Dense(1, kernel_initializer=_normal_init, name=f"d_h{n - 1}_lin", dtype=dtype)(h)
    logits = layers.Activation("linear", dtype="float32", name="d_logits")(logits)
    probs = layers.Activation("sigmoid", dtype="float32", name="d_probs")(logits)
    return keras.Model(x, [probs, logits], name="discriminator")


def image_size_of(generator):
    """The image size a generator produces."""
    return int(generator.output_shape[1])


def z_dim_of(generator):
    return int(generator.input_shape[-1])

"""Measure completion: speed against the original's structure, and quality (PSNR).

Speed (default): image-iterations per second of this project's `complete` with the
tool's defaults (adam, the precision `--precision auto` picks) and of a baseline built as
the original's complete.py: a TF1-style graph (tf.compat.v1), one session.run per
iteration fetching loss, gradient and G(z) through feed_dict, and the momentum update in
NumPy. Same weights, same batch; the ratio is printed. Each runs in a process of its own,
as a user runs it: the baseline with TensorFlow as it comes, this project with the
settings its tools make (cli.import_tensorflow: oneDNN on); they alternate, best of
--repeats each.

    python scripts/bench_complete.py [--precisions float32 mixed_bfloat16] [--batch-size 64]
        [--n-images N] [--iterations 50] [--repeats 3] [--checkpoint CKPT]   (default: random 64x64 weights)

Quality: whole-image and in-hole PSNR of completions of the same images, for each
approach[@lr] and precision listed:

    python scripts/bench_complete.py --psnr --checkpoint CKPT --images FOLDER [--n 64]
        [--runs adam momentum@1e-5] [--precisions float32 mixed_bfloat16] [--masks center left]
        [--n-iter 1000] [--lam 0.1]
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from role_process import USER_ENVIRONMENT, import_tensorflow_for_role, run_role  # noqa: E402

tf = import_tensorflow_for_role()

from dcgan_completion.checkpoints import load_models  # noqa: E402
from dcgan_completion.completion import complete  # noqa: E402
from dcgan_completion.images import list_images, load_image  # noqa: E402
from dcgan_completion.masks import make_masks  # noqa: E402
from dcgan_completion.metrics import psnr  # noqa: E402
from dcgan_completion.networks import build_discriminator, build_generator, image_size_of, z_dim_of  # noqa: E402
from dcgan_completion.search import SearchOptions  # noqa: E402
from dcgan_completion.training import default_precision  # noqa: E402


# ---- the baseline: the original's complete.py structure ------------------------------


def baseline_graph(generator, discriminator, lam):
    """The original's graph with the Keras models' weights as constants: placeholders for
    z, images and mask; fetches per-image loss, d(sum loss)/dz and G(z)."""
    weights = {w.path: w.numpy() for w in generator.weights + discriminator.weights}
    layers_g = [l.name for l in generator.layers if l.weights]
    layers_d = [l.name for l in discriminator.layers if l.weights]
    w = lambda layer, name: tf.constant(weights[f"{layer}/{name}"])
    graph = tf.Graph()
    with graph.as_default():
        v1 = tf.compat.v1
        size = image_size_of(generator)
        z = v1.placeholder(tf.float32, [None, z_dim_of(generator)], name="z")
        images = v1.placeholder(tf.float32, [None, size, size, 3], name="images")
        mask = v1.placeholder(tf.float32, [None, size, size, 3], name="mask")
        batch = tf.shape(z)[0]

        def bn(x, layer):  # inference mode: moving averages
            return tf.nn.batch_normalization(x, w(layer, "moving_mean"), w(layer, "moving_variance"),
                                             w(layer, "beta"), w(layer, "gamma"), 1e-5)

        h = tf.matmul(z, w("g_h0_lin", "kernel")) + w("g_h0_lin", "bias")
        channels = weights["g_bn0/gamma"].shape[0]
        h = tf.nn.relu(bn(tf.reshape(h, [batch, 4, 4, channels]), "g_bn0"))
        deconvs = [n for n in layers_g if n.startswith("g_h") and n != "g_h0_lin"]
        side = 4
        for i, name in enumerate(deconvs):
            side *= 2
            kernel = w(name, "kernel")
            out = tf.stack([batch, side, side, kernel.shape[2]])
            h = tf.nn.conv2d_transpose(h, kernel, out, [1, 2, 2, 1], "SAME") + w(name, "bias")
            h = tf.nn.relu(bn(h, f"g_bn{i + 1}")) if i + 1 < len(deconvs) else tf.tanh(h)
        generated = h
        lrelu = lambda x: 0.6 * x + 0.4 * tf.abs(x)  # the original's leaky ReLU (0.2)
        h = generated
        convs = [n for n in layers_d if n.endswith("_conv")]
        for i, name in enumerate(convs):
            h = tf.nn.conv2d(h, w(name, "kernel"), [1, 2, 2, 1], "SAME") + w(name, "bias")
            h = lrelu(bn(h, f"d_bn{i}") if i > 0 else h)
        dense = [n for n in layers_d if n.endswith("_lin")][0]
        logits = tf.matmul(tf.reshape(h, [batch, -1]), w(dense, "kernel")) + w(dense, "bias")
        g_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits), logits=logits))
        contextual = tf.reduce_sum(tf.reshape(tf.abs(mask * generated - mask * images), [batch, -1]), 1)
        loss = contextual + lam * g_loss
        grad = tf.gradients(loss, z)[0]
    return graph, (z, images, mask), (loss, grad, generated)


def run_baseline(generator, discriminator, images, masks, n_iter, batch_size=64, lr=1e-5, momentum=0.9, lam=0.1):
    """The original's loop: a batch padded with zeros to batch_size, session.run per
    iteration, momentum update in NumPy."""
    pad = [(0, batch_size - len(images))] + [(0, 0)] * 3
    images, masks = np.pad(images, pad), np.pad(masks, pad)
    graph, (z_ph, images_ph, mask_ph), fetches = baseline_graph(generator, discriminator, lam)
    with tf.compat.v1.Session(graph=graph) as sess:
        rng = np.random.default_rng(0)
        zhats = rng.uniform(-1, 1, (len(images), z_dim_of(generator))).astype(np.float32)
        v = np.zeros_like(zhats)
        sess.run(fetches, {z_ph: zhats, images_ph: images, mask_ph: masks})  # warm-up
        start = time.perf_counter()
        for _ in range(n_iter):
            loss, g, generated = sess.run(fetches, {z_ph: zhats, images_ph: images, mask_ph: masks})
            v_prev = np.copy(v)
            v = momentum * v - lr * g
            zhats += -momentum * v_prev + (1 + momentum) * v
            zhats = np.clip(zhats, -1, 1)
        return time.perf_counter() - start, generated


def check_baseline(generator, discriminator):
    """Max |G_baseline - G_keras| on a few z: the baseline computes the same networks."""
    graph, (z_ph, images_ph, mask_ph), (_, _, generated) = baseline_graph(generator, discriminator, 0.1)
    z = np.random.default_rng(1).uniform(-1, 1, (4, z_dim_of(generator))).astype(np.float32)
    with tf.compat.v1.Session(graph=graph) as sess:
        ours = sess.run(generated, {z_ph: z})
    return float(np.abs(ours - generator(z, training=False).numpy()).max())


# ---- helpers -----------------------------------------------------------------------------


def models(checkpoint, precision, image_size):
    dtype = None if precision == "float32" else precision
    if checkpoint:
        return load_models(checkpoint, dtype=dtype)
    tf.keras.utils.set_random_seed(0)
    g, d = build_generator(image_size, dtype=dtype), build_discriminator(image_size, dtype=dtype)
    return g, d


def same_weights(source, target):
    for a, b in zip(source, target):
        b.set_weights(a.get_weights())
    return target


def measure(role, args):
    """In this process: seconds of one timed completion by `role` (baseline or a precision)
    after an untimed one that traces."""
    f32 = models(args.checkpoint, "float32", args.image_size)
    size = image_size_of(f32[0])
    n = args.n_images or args.batch_size
    images = np.random.default_rng(0).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    masks = make_masks("center", size, range(n))
    if role == "baseline":
        print(f"baseline G - Keras G: max {check_baseline(*f32):.1e}")
        run_baseline(*f32, images, masks, 2, args.batch_size)
        return run_baseline(*f32, images, masks, args.iterations, args.batch_size)[0]
    pair = f32 if role == "float32" else same_weights(f32, models(None, role, size))
    options = SearchOptions(n_iter=args.iterations, out_interval=args.out_interval, batch_size=args.batch_size)
    complete(images[:2], masks[:2], *pair, options, n_iter=2)  # traces
    start = time.perf_counter()
    complete(images, masks, *pair, options)
    return time.perf_counter() - start


def in_a_process(role):
    """measure(role) in a fresh Python process: (seconds, its output)."""
    found, out = run_role(__file__, role, sys.argv[1:], r"^measured ([\d.]+) s$")
    return float(found.group(1)), out


def speed(args):
    if args.role:
        print(f"measured {measure(args.role, args):.3f} s")
        return
    precisions = args.precisions or [default_precision()]
    n = args.n_images or args.batch_size
    print(f"{n} images {args.image_size}x{args.image_size} (batch size {args.batch_size}), {args.iterations} "
          f"iterations, center mask; baseline momentum, this project {SearchOptions().approach}; weights: "
          f"{args.checkpoint or 'random'}; best of {args.repeats} runs each, alternating, each in its own process; "
          f"TF_ENABLE_ONEDNN_OPTS as the user has it: {USER_ENVIRONMENT.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}", flush=True)
    best = {}
    for _ in range(args.repeats):
        for role in ["baseline", *precisions]:
            seconds, out = in_a_process(role)
            if role == "baseline" and "baseline" not in best:
                print(out.splitlines()[0])  # the baseline computes the same networks
            best[role] = min(best.get(role, np.inf), seconds)
    work = n * args.iterations
    base_rate = work / best["baseline"]
    print(f"baseline (TF1 graph, session.run + NumPy momentum per iteration, float32, TensorFlow's default kernels): "
          f"{base_rate:7.1f} image-iterations/s")
    for precision in precisions:
        rate = work / best[precision]
        print(f"this project ({args.out_interval} iterations per compiled call, {precision:14}): "
              f"{rate:7.1f} image-iterations/s, ratio {rate / base_rate:.2f}x")


def quality(args):
    if not (args.checkpoint and args.images):
        sys.exit("--psnr needs --checkpoint and --images")
    f32 = models(args.checkpoint, "float32", None)
    size = image_size_of(f32[0])
    paths = list_images(args.images)[: args.n]
    images = np.stack([load_image(p, size) for p in paths])
    print(f"{len(images)} images from {args.images}, {args.n_iter} iterations, lam {args.lam}, "
          f"checkpoint {args.checkpoint}")
    print(f"{'mask':8} {'approach':16} {'precision':15} {'PSNR dB':>8} {'hole dB':>8} {'seconds':>8}")
    for precision in args.precisions or ["float32", "mixed_bfloat16"]:
        pair = f32 if precision == "float32" else same_weights(f32, models(None, precision, size))
        for mask_type in args.masks:
            masks = make_masks(mask_type, size, range(len(images)))
            for run in args.runs:
                approach, _, lr = run.partition("@")
                start = time.perf_counter()
                result = complete(images * masks, masks, *pair, approach=approach, lr=float(lr) if lr else None,
                                  n_iter=args.n_iter, lam=args.lam, out_interval=args.n_iter or 1,
                                  hmc_l=args.hmc_l, seed=args.seed)
                seconds = time.perf_counter() - start
                whole = psnr(result.completed, images).mean()
                hole = psnr(result.completed, images, masks < 0.5).mean()
                print(f"{mask_type:8} {run:16} {precision:15} {whole:8.2f} {hole:8.2f} {seconds:8.1f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-images", type=int, default=None,
                   help="images to complete (default: one batch); the baseline pads to its batch as the original")
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--out-interval", type=int, default=50)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--psnr", action="store_true", help="measure quality instead of speed")
    p.add_argument("--images", help="folder of aligned faces (with --psnr)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--runs", nargs="+", default=["adam", "momentum"], help="approach[@lr] ...")
    p.add_argument("--precisions", nargs="+", choices=("float32", "mixed_bfloat16"), default=None,
                   help="default: with --psnr both, else the one `dcgan-complete --precision auto` picks")
    p.add_argument("--masks", nargs="+", default=["center", "left"])
    p.add_argument("--n-iter", type=int, default=1000)
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--hmc-l", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--role", help=argparse.SUPPRESS)  # one process's part of the speed measurement
    args = p.parse_args()
    quality(args) if args.psnr else speed(args)


if __name__ == "__main__":
    main()

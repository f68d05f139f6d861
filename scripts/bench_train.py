"""Training speed: this project against a baseline with the original's structure.

The baseline is the original's training loop rebuilt with tf.compat.v1: one graph,
a Session, the same networks and losses, images decoded synchronously in Python
(PIL, centre-crop and resize) and fed with feed_dict every step, one D update and two
G updates, summaries every step, and the three extra loss evaluations the original ran
only to print them. This project runs `train()` with its default settings (tf.data
input, default precision and strategy). Both train on the same faces, with batches of
64 at 64x64; steps that build graphs are not timed.

Each runs in a process of its own, as a user runs it: the baseline with TensorFlow as
it comes, this project with the settings its tools make (cli.import_tensorflow: oneDNN
on, which TensorFlow leaves off on CPUs without AVX-512 VNNI/BF16 or AMX). The two
alternate in rounds, so that a machine shared with other work slows both alike.

    python scripts/bench_train.py            # ~5 minutes on 2 idle CPU cores
"""
import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from role_process import USER_ENVIRONMENT, import_tensorflow_for_role, run_role  # noqa: E402

tf = import_tensorflow_for_role()

from dcgan_completion.images import list_images, load_image  # noqa: E402
from dcgan_completion.training import default_precision, train  # noqa: E402

RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba-89x109"
v1 = tf.compat.v1


# ----------------------------------------------------------------- the baseline (TF1 style)


def _conv(x, out, name):
    with v1.variable_scope(name):
        w = v1.get_variable("w", [5, 5, x.shape[-1], out], initializer=v1.truncated_normal_initializer(stddev=0.02))
        b = v1.get_variable("biases", [out], initializer=v1.zeros_initializer())
        return tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 2, 2, 1], "SAME"), b)


def _deconv(x, shape, name):
    with v1.variable_scope(name):
        w = v1.get_variable("w", [5, 5, shape[-1], x.shape[-1]], initializer=v1.random_normal_initializer(stddev=0.02))
        b = v1.get_variable("biases", [shape[-1]], initializer=v1.zeros_initializer())
        return tf.nn.bias_add(tf.nn.conv2d_transpose(x, w, shape, [1, 2, 2, 1]), b)


def _linear(x, out, name):
    with v1.variable_scope(name):
        m = v1.get_variable("Matrix", [x.shape[-1], out], initializer=v1.random_normal_initializer(stddev=0.02))
        b = v1.get_variable("bias", [out], initializer=v1.zeros_initializer())
        return tf.matmul(x, m) + b


def _batch_norm(x, name):
    """Batch statistics, with a moving average (decay 0.9) updated on every use, as the original."""
    c = x.shape[-1]
    with v1.variable_scope(name):
        beta = v1.get_variable("beta", [c], initializer=v1.zeros_initializer())
        gamma = v1.get_variable("gamma", [c], initializer=v1.random_normal_initializer(1.0, 0.02))
        mm = v1.get_variable("moving_mean", [c], initializer=v1.zeros_initializer(), trainable=False)
        mv = v1.get_variable("moving_variance", [c], initializer=v1.ones_initializer(), trainable=False)
    mean, var = tf.nn.moments(x, [0, 1, 2])
    with tf.control_dependencies([v1.assign(mm, 0.9 * mm + 0.1 * mean), v1.assign(mv, 0.9 * mv + 0.1 * var)]):
        mean, var = tf.identity(mean), tf.identity(var)
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-5)


def _lrelu(x):
    return 0.6 * x + 0.4 * tf.abs(x)


def _generator(z, batch):
    with v1.variable_scope("generator"):
        h = tf.reshape(_linear(z, 4 * 4 * 512, "g_h0_lin"), [-1, 4, 4, 512])
        h = tf.nn.relu(_batch_norm(h, "g_bn0"))
        for i, (size, channels) in enumerate([(8, 256), (16, 128), (32, 64)], start=1):
            h = tf.nn.relu(_batch_norm(_deconv(h, [batch, size, size, channels], f"g_h{i}"), f"g_bn{i}"))
        return tf.nn.tanh(_deconv(h, [batch, 64, 64, 3], "g_h4"))


def _discriminator(images, reuse):
    with v1.variable_scope("discriminator", reuse=reuse):
        h = _lrelu(_conv(images, 64, "d_h0_conv"))
        for i, channels in enumerate([128, 256, 512], start=1):
            h = _lrelu(_batch_norm(_conv(h, channels, f"d_h{i}_conv"), f"d_bn{i}"))
        logits = _linear(tf.reshape(h, [-1, 4 * 4 * 512]), 1, "d_h3_lin")
        return tf.nn.sigmoid(logits), logits


def _xent(logits, label):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(logits=logits, labels=tf.fill(tf.shape(logits), label)))


@contextlib.contextmanager
def baseline(files, batch, log_dir):
    """The original's training loop; yields run(n): n more steps, returns their seconds."""
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, [batch, 64, 64, 3], name="real_images")
        z = v1.placeholder(tf.float32, [None, 100], name="z")
        G = _generator(z, batch)
        D, D_logits = _discriminator(images, reuse=False)
        D_, D_logits_ = _discriminator(G, reuse=True)
        d_loss_real, d_loss_fake = _xent(D_logits, 1.0), _xent(D_logits_, 0.0)
        d_loss, g_loss = d_loss_real + d_loss_fake, _xent(D_logits_, 1.0)
        t_vars = v1.trainable_variables()
        d_vars = [v for v in t_vars if "d_" in v.name]
        g_vars = [v for v in t_vars if "g_" in v.name]
        d_optim = v1.train.AdamOptimizer(0.0002, beta1=0.5).minimize(d_loss, var_list=d_vars)
        g_optim = v1.train.AdamOptimizer(0.0002, beta1=0.5).minimize(g_loss, var_list=g_vars)
        s = v1.summary
        g_sum = s.merge([s.histogram("z", z), s.histogram("d_", D_), s.image("G", G),
                         s.scalar("d_loss_fake", d_loss_fake), s.scalar("g_loss", g_loss)])
        d_sum = s.merge([s.histogram("z", z), s.histogram("d", D), s.scalar("d_loss_real", d_loss_real),
                         s.scalar("d_loss", d_loss)])
        init = v1.global_variables_initializer()
    rng = np.random.default_rng(0)
    order = list(rng.permutation(files))  # shuffled once, walked in order
    counter = [0]

    def run(steps):
        started = time.perf_counter()
        for _ in range(steps):
            step = counter[0]
            batch_files = order[step * batch : (step + 1) * batch]
            batch_images = np.array([load_image(f, 64) for f in batch_files], np.float32)
            batch_z = rng.uniform(-1, 1, [batch, 100]).astype(np.float32)
            _, summary = sess.run([d_optim, d_sum], feed_dict={images: batch_images, z: batch_z})
            writer.add_summary(summary, step)
            for _ in range(2):
                _, summary = sess.run([g_optim, g_sum], feed_dict={z: batch_z})
                writer.add_summary(summary, step)
            # The original's extra forward passes, only to print the losses.
            err_d_fake = sess.run(d_loss_fake, {z: batch_z})
            err_d_real = sess.run(d_loss_real, {images: batch_images})
            err_g = sess.run(g_loss, {z: batch_z})
            assert np.isfinite(err_d_fake + err_d_real + err_g)
            counter[0] += 1
        return time.perf_counter() - started

    # Not `with sess:`, which would make the graph the default for eager code run meanwhile.
    sess = v1.Session(graph=graph)
    with graph.as_default():
        writer = s.FileWriter(log_dir, graph)
    try:
        sess.run(init)
        yield run
    finally:
        writer.close()
        sess.close()


# ----------------------------------------------------------------------------------- main


def measure(role, files, steps, batch, precision):
    """In this process: `steps` timed training steps of `role` after one untimed step.
    Returns (images, seconds, precision)."""
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if role == "baseline":
            with baseline(files, batch, str(work / "logs")) as run_baseline:
                run_baseline(1)  # builds and optimises the graph: not timed
                return steps * batch, run_baseline(steps), "float32"
        faces = work / "faces"
        faces.mkdir()
        for f in files:
            (faces / Path(f).name).symlink_to(Path(f).resolve())  # a relative --data would dangle
        precision = precision or default_precision()
        summary = train(str(faces), epochs=1, batch_size=batch, checkpoint_dir=work / "checkpoint",
                        sample_dir=work / "samples", log_dir=work / "logs", seed=1, precision=precision,
                        max_steps=steps + 1, progress=False)
        images = (summary["steps_run"] - 1) * batch  # the first step (tracing) is not timed
        return images, images / summary["images_per_second"], precision


def in_a_process(role):
    """measure() in a fresh Python process: (images, seconds, precision)."""
    found, _ = run_role(__file__, role, sys.argv[1:], r"^measured (\d+) images in ([\d.]+) s, (\S+)$")
    return int(found.group(1)), float(found.group(2)), found.group(3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=RAW, help="folder of face images (default: ../shared/data/celeba-89x109)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two (default 3)")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps of each per round (default 6)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--precision", default=None, help="this project's precision (default: its default)")
    parser.add_argument("--role", choices=["baseline", "project"], help=argparse.SUPPRESS)  # see role_process.py
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"bench_train.py: {args.data} is not a folder of faces: pass --data")
    batch = args.batch_size
    needed = (args.steps + 2) * batch  # one batch spare, so that no epoch (and its checkpoint) ends in a timed step
    files = [str(f) for f in list_images(args.data)][:needed]
    if len(files) < needed:
        sys.exit(f"bench_train.py: need {needed} images in {args.data}, found {len(files)}")
    if args.role:
        images, seconds, precision = measure(args.role, files, args.steps, batch, args.precision)
        print(f"measured {images} images in {seconds:.3f} s, {precision}")
        return

    height, width = np.asarray(load_image(files[0])).shape[:2]
    print(f"faces of {width}x{height} from {args.data}, centre-cropped and resized to 64x64; batches of {batch}; "
          f"{args.rounds} rounds of {args.steps} timed steps each, alternating, each in its own process; "
          f"{os.cpu_count()} CPUs; TF_ENABLE_ONEDNN_OPTS as the user has it: "
          f"{USER_ENVIRONMENT.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}", flush=True)
    timed = {"baseline": [0, 0.0], "project": [0, 0.0]}  # images, seconds
    for round in range(args.rounds):
        for role in timed:
            images, seconds, precision = in_a_process(role)
            timed[role][0] += images
            timed[role][1] += seconds
        print(f"round {round + 1}: baseline {timed['baseline'][0] / timed['baseline'][1]:.1f}, "
              f"project {timed['project'][0] / timed['project'][1]:.1f} images/s so far", flush=True)

    base = timed["baseline"][0] / timed["baseline"][1]
    ours = timed["project"][0] / timed["project"][1]
    print(f"baseline (TF1 graph, feed_dict, synchronous decoding, 3 extra loss passes, float32, "
          f"TensorFlow's default kernels): {base:.1f} images/s")
    print(f"this project (train(): tf.data, {precision}, the tools' TensorFlow settings): {ours:.1f} images/s")
    print(f"ratio: {ours / base:.2f}x")


if __name__ == "__main__":
    main()

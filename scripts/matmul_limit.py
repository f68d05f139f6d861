"""The machine's limit to compare the benchmarks with: GFLOP/s of a large matrix product.

    python scripts/matmul_limit.py [--size 2048] [--repeats 5] [--dtypes float32,bfloat16]

Times `tf.linalg.matmul` of two random SIZE x SIZE matrices through TensorFlow with the
tools' settings (cli.import_tensorflow: oneDNN on), best of --repeats after one warm-up
product, and prints GFLOP/s (2 * SIZE^3 operations a product) for each dtype. One
completion iteration costs ~1.3 GFLOP an image and one training image ~5.5 GFLOP, so
images per second times those is how much of this limit a benchmark reaches.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dcgan_completion.cli import import_tensorflow  # noqa: E402

tf = import_tensorflow()


def gflops(size, dtype, repeats):
    """Best GFLOP/s of `repeats` products of two size x size matrices of `dtype`."""
    a = tf.random.uniform((size, size), dtype=tf.float32)
    b = tf.random.uniform((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    tf.linalg.matmul(a, b).numpy()  # warm-up: kernel selection, memory
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dtypes", default="float32,bfloat16")
    args = p.parse_args()
    for dtype in args.dtypes.split(","):
        print(f"{dtype:9s} {gflops(args.size, tf.as_dtype(dtype), args.repeats):7.0f} GFLOP/s "
              f"({args.size}^3 matrix product, best of {args.repeats})", flush=True)


if __name__ == "__main__":
    main()

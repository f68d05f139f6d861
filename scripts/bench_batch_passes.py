"""What one batch costs beyond the search: the encoder's start, called eagerly and as the
compiled function `start_z` now uses, and the forward pass of G and D that makes the
iteration-0 grids (docs/performance.md, "Many inputs").

    python scripts/bench_batch_passes.py [--batch 64] [--repeats 10] [--precision auto]

The shipped model, random inputs; each figure is the mean of --repeats calls after one
warm-up call (tracing), in ms a batch, with the eager/compiled ratio of the encoder.
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from dcgan_completion.cli import PRECISIONS, import_tensorflow, load_search_models  # noqa: E402

tf = import_tensorflow()

from dcgan_completion.encoder import start_z  # noqa: E402


def ms_a_call(function, repeats):
    function().numpy()  # warm-up: tracing, kernel selection
    start = time.perf_counter()
    for _ in range(repeats):
        function().numpy()
    return (time.perf_counter() - start) / repeats * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    args = p.parse_args()

    generator, discriminator, encoder, precision = load_search_models(None, args.precision)
    size = generator.output_shape[1]
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (args.batch, size, size, 3)).astype(np.float32))
    masks = tf.constant(np.ones((args.batch, size, size, 3), np.float32))
    z = start_z(encoder, images, masks)
    forward = tf.function(lambda z: discriminator(generator(z, training=False), training=False)[1])

    eager = ms_a_call(lambda: encoder([images, masks], training=False), args.repeats)
    compiled = ms_a_call(lambda: start_z(encoder, images, masks), args.repeats)
    print(f"batch of {args.batch}, {precision}, mean of {args.repeats} calls, ms a batch")
    print(f"encoder, eager            {eager:8.1f}")
    print(f"encoder, start_z          {compiled:8.1f}   eager/compiled {eager / compiled:.2f}x")
    print(f"G and D forward, compiled {ms_a_call(lambda: forward(z), args.repeats):8.1f}")


if __name__ == "__main__":
    main()

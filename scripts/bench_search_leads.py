"""Leads for completion speed, each against the tool's own settings in the same process.

    python scripts/bench_search_leads.py [--checkpoint CKPT] [--iterations 20] [--repeats 2]
        [--threads INTER,INTRA] [--tool-only]

Completes 128 random images (center mask, the tool's defaults: adam, float32 unless
--precision) and prints image-iterations per second of each variant, the variants
interleaved, best of --repeats:

- the tool: `complete` as `dcgan-complete` runs it (batch 64);
- no batch norm: the models with their batch-norm layers removed, which is what folding
  inference-mode batch norm into the (de)convolutions' weights would leave to compute,
  so its speed is the most folding can gain (its completions are not the model's);
- remapper on: Grappler's remapper left on during the search (complete() turns it off);
- batch 32, batch 128: other batch sizes.

Thread counts are fixed when TensorFlow starts, so --threads INTER,INTRA sets them for
the whole run: compare runs with different values (`--tool-only` times the tool's
settings alone, which is all such a comparison needs).
"""
import argparse
import contextlib
import os
import time
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from dcgan_completion.cli import import_tensorflow  # noqa: E402
from role_process import set_threads  # noqa: E402

tf = import_tensorflow()

import keras  # noqa: E402

from dcgan_completion import completion  # noqa: E402
from dcgan_completion.checkpoints import load_models  # noqa: E402
from dcgan_completion.masks import make_masks  # noqa: E402
from dcgan_completion.networks import image_size_of  # noqa: E402


def without_batch_norm(model):
    """A copy of `model` with its BatchNormalization layers replaced by identities."""
    def clone(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return keras.layers.Lambda(lambda x: x, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in copy.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return copy


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="default: the shipped face model")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--precision", default=None, choices=["float32", "mixed_bfloat16"])
    p.add_argument("--threads", default=None, help="INTER,INTRA: TensorFlow's inter- and intra-op thread counts")
    p.add_argument("--tool-only", action="store_true", help="time only the tool's own settings")
    args = p.parse_args()
    if args.threads:
        set_threads(tf, args.threads)

    models = load_models(args.checkpoint, dtype=args.precision)
    size = image_size_of(models[0])
    images = np.random.default_rng(0).uniform(-1, 1, (128, size, size, 3)).astype(np.float32)
    masks = make_masks("center", size, range(len(images)))
    stripped = tuple(without_batch_norm(m) for m in models)
    variants = {
        "the tool (batch 64)": (models, 64, contextlib.nullcontext),
        "no batch norm (folding's most)": (stripped, 64, contextlib.nullcontext),
        "remapper on": (models, 64, lambda: mock.patch.object(completion, "_without_remapper", contextlib.nullcontext)),
        "batch 32": (models, 32, contextlib.nullcontext),
        "batch 128": (models, 128, contextlib.nullcontext),
    }
    if args.tool_only:
        variants = {name: variants[name] for name in ["the tool (batch 64)"]}
    print(f"{len(images)} images {size}x{size}, {args.iterations} iterations, center mask, "
          f"{args.precision or 'float32'}, model {args.checkpoint or 'shipped'}; threads (inter, intra): "
          f"{tf.config.threading.get_inter_op_parallelism_threads()}, "
          f"{tf.config.threading.get_intra_op_parallelism_threads()} (0 = TensorFlow's choice); "
          f"best of {args.repeats}, interleaved", flush=True)
    for pair, batch, context in variants.values():
        with context():
            completion.complete(images[:2], masks[:2], *pair, n_iter=2, batch_size=batch)  # traces
    best = {}
    for _ in range(args.repeats):
        for name, (pair, batch, context) in variants.items():
            with context():
                start = time.perf_counter()
                completion.complete(images, masks, *pair, n_iter=args.iterations, out_interval=args.iterations,
                                    batch_size=batch)
                best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
    base = best["the tool (batch 64)"]
    for name, seconds in best.items():
        print(f"{name:32} {len(images) * args.iterations / seconds:7.1f} image-iterations/s, {base / seconds:.2f}x")


if __name__ == "__main__":
    main()

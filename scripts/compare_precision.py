"""Does mixed bfloat16 train the DCGAN as well as float32?

Trains the same DCGAN (same seed: same initial weights, image order and z) once per
precision on real faces, then compares
  - speed (images/s) and the losses over the last 100 steps,
  - how well each generator reaches faces it never saw: for held-out faces, z is
    optimised (Adam, float32, batch norm in inference mode, z clipped to [-1, 1] as in
    completion) to minimise |G(z) - face|; the mean error left is the score (lower is
    better). Completion relies on exactly this ability.
With several seeds, the spread between seeds of one precision shows how much of a
difference is noise.

    python scripts/compare_precision.py --steps 300 --seeds 1 2 --out /tmp/precision

Sample grids of each run are written to --out for looking at. Runs already trained in
--out (say, before an interruption) are evaluated again, not trained again.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcgan_completion import checkpoints, data  # noqa: E402
from dcgan_completion.images import list_images, save_grid  # noqa: E402
from dcgan_completion.networks import z_dim_of  # noqa: E402
from dcgan_completion.training import train  # noqa: E402

ALIGNED = Path("/work/aligned/celeba64")
RAW = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba-89x109"


def split(folder, holdout, workdir):
    """A folder of symlinks to all but the last `holdout` images, and the held-out files."""
    files = [str(f) for f in list_images(folder)]
    train_dir = Path(workdir) / "train"
    train_dir.mkdir(parents=True, exist_ok=True)
    for f in files[:-holdout]:
        link = train_dir / Path(f).name
        if not link.exists():
            link.symlink_to(f)
    return train_dir, files[-holdout:]


def held_out_faces(files, image_size):
    images = [data.fit_image(data._decode(f), image_size) for f in files]
    return tf.stack(images)


def reconstruction_error(generator, faces, iterations, seed):
    """Mean absolute error (0-255 scale) left after optimising z for each face."""
    z = tf.Variable(tf.random.stateless_uniform([len(faces), z_dim_of(generator)], [seed, 7], -1.0, 1.0))
    optimizer = keras.optimizers.Adam(0.03)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(generator(z, training=False) - faces))
        optimizer.apply_gradients([(tape.gradient(loss, z), z)])
        z.assign(tf.clip_by_value(z, -1.0, 1.0))
        return loss

    for _ in range(iterations):
        step()
    per_face = tf.reduce_mean(tf.abs(generator(z, training=False) - faces), axis=[1, 2, 3]) * 127.5
    return per_face.numpy()


def losses_of(log_dir, last_steps):
    """Mean of each logged scalar over the last `last_steps` steps."""
    values = {}
    for f in Path(log_dir).glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(f)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for v in event.summary.value:
                if v.WhichOneof("value") == "simple_value":
                    values.setdefault(v.tag, []).append((event.step, v.simple_value))
    out = {}
    for tag, points in values.items():
        last = max(s for s, _ in points)
        out[tag] = float(np.mean([v for s, v in points if s > last - last_steps]))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ALIGNED if ALIGNED.is_dir() else RAW)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--holdout", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=300, help="z optimisation steps per held-out face")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "compare_precision")
    args = parser.parse_args()

    train_dir, held_out = split(args.data, args.holdout, args.out)
    faces = held_out_faces(held_out, 64)
    print(f"data {args.data}: {len(list_images(train_dir))} training faces, {len(held_out)} held out; "
          f"{args.steps} steps of 64, seeds {args.seeds}", flush=True)
    rows = []
    for seed in args.seeds:
        for precision in args.precisions:
            run = args.out / f"{precision}-seed{seed}"
            started = time.perf_counter()
            summary = train(
                str(train_dir), epochs=10**6, checkpoint_dir=run / "checkpoint", sample_dir=run / "samples",
                log_dir=run / "logs", seed=seed, precision=precision, max_steps=args.steps,
                sample_every=100, progress=False,
            )
            seconds = time.perf_counter() - started
            record = run / "speed.json"  # a finished run is not trained again: its speed is kept here
            if summary["steps_run"]:
                record.write_text(json.dumps({"images_per_second": summary["images_per_second"], "seconds": seconds}))
            elif record.exists():
                summary["images_per_second"], seconds = json.loads(record.read_text()).values()
            generator, _ = checkpoints.load_models(run / "checkpoint")  # float32 for the evaluation
            save_grid(args.out / f"samples-{precision}-seed{seed}.png", generator(
                tf.random.stateless_uniform([64, 100], [seed, 99], -1.0, 1.0), training=False).numpy())
            errors = reconstruction_error(generator, faces, args.iterations, seed)
            losses = losses_of(run / "logs", 100)
            rows.append((precision, seed, summary["images_per_second"], seconds, losses, errors))
            print(f"{precision:15s} seed {seed}: {summary['images_per_second']:.1f} images/s "
                  f"(run {seconds:.0f} s), last-100-step d_loss {losses.get('d_loss', float('nan')):.3f} "
                  f"g_loss {losses.get('g_loss', float('nan')):.3f}, held-out reconstruction error "
                  f"{errors.mean():.2f} +- {errors.std() / np.sqrt(len(errors)):.2f} (0-255)", flush=True)

    print("\nsummary (mean over seeds)")
    for precision in args.precisions:
        mine = [r for r in rows if r[0] == precision]
        rate = np.mean([r[2] for r in mine])
        error = np.mean([r[5].mean() for r in mine])
        spread = np.ptp([r[5].mean() for r in mine]) if len(mine) > 1 else float("nan")
        print(f"{precision:15s} {rate:6.1f} images/s  reconstruction error {error:.2f} (spread over seeds {spread:.2f})")
    if len(args.precisions) == 2:
        a, b = args.precisions
        paired = [r[5] for r in rows if r[0] == b]
        base = [r[5] for r in rows if r[0] == a]
        diffs = np.concatenate([pb - pa for pa, pb in zip(base, paired)])
        print(f"{b} - {a}: error difference per face {diffs.mean():+.2f} +- {diffs.std() / np.sqrt(len(diffs)):.2f}, "
              f"speed ratio {np.mean([r[2] for r in rows if r[0] == b]) / np.mean([r[2] for r in rows if r[0] == a]):.2f}x")
    print(f"sample grids: {args.out}/samples-*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

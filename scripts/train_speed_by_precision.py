"""Training speed of train() in each precision, in one process (no baseline).

    python scripts/train_speed_by_precision.py aligned/train --precisions float32,mixed_bfloat16,float32 --steps 6
        [--threads INTER,INTRA]

Each precision trains from scratch (seed 1) for --steps steps of 64 faces; the first
step, which builds the graph, is not timed. Repeating a precision at the end shows how
much the machine drifted meanwhile. Thread counts are fixed when TensorFlow starts, so
--threads (TensorFlow's inter- and intra-op thread counts) holds for the whole process:
compare processes with different values.
"""
import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dcgan_completion.cli import import_tensorflow  # noqa: E402
from role_process import set_threads  # noqa: E402

tf = import_tensorflow()

from dcgan_completion.training import train  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="folder of aligned faces")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16,float32")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--threads", default=None, help="INTER,INTRA (0 = TensorFlow's choice)")
    args = parser.parse_args()
    if args.threads:
        set_threads(tf, args.threads)
    for precision in args.precisions.split(","):
        with tempfile.TemporaryDirectory() as work:
            summary = train(args.dataset, epochs=1, batch_size=args.batch_size, checkpoint_dir=f"{work}/checkpoint",
                            sample_dir=f"{work}/samples", log_dir=f"{work}/logs", seed=1, precision=precision,
                            max_steps=args.steps, progress=False)
        print(f"{precision} {summary['images_per_second']:.1f} img/s", flush=True)


if __name__ == "__main__":
    main()

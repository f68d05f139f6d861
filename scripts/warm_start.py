"""Start a training checkpoint from a weights file, so that `train-dcgan` goes on from it.

    python scripts/warm_start.py checkpoint --step 10112 --seed 2026    # the shipped face model
    train-dcgan --dataset aligned/train --checkpoint_dir checkpoint ...

Writes `checkpoint/DCGAN.model-STEP` holding the networks of a `.npz` weights file (by
default the shipped face model) and the training position of that step: epoch and
batch follow from --step and the number of training images, so that the resumed run
sees the data order a run that was never stopped would have seen with the same seed.
Adam starts afresh (a weights file carries no optimizer state), as it does when
`train-dcgan` goes on from the original's TF1 checkpoint.
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dcgan_completion import checkpoints, data  # noqa: E402
from dcgan_completion.networks import image_size_of, z_dim_of  # noqa: E402
from dcgan_completion.training import _training_state, build_dcgan  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint_dir", type=Path, help="empty or new folder for the checkpoint")
    parser.add_argument("--weights", default=None, help="a .npz weights file (default: the shipped face model)")
    parser.add_argument("--step", type=int, required=True, help="the training step the weights were taken at")
    parser.add_argument("--seed", type=int, required=True, help="the seed of the run they came from")
    parser.add_argument("--dataset", type=Path, required=True, help="the training images (for the epoch and position)")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args()
    if args.checkpoint_dir.exists() and any(args.checkpoint_dir.iterdir()):
        sys.exit(f"warm_start.py: {args.checkpoint_dir} is not empty")

    generator, discriminator = checkpoints.load_models(args.weights)
    image_size, z_dim = image_size_of(generator), z_dim_of(generator)
    model = build_dcgan(image_size, z_dim, precision="float32")
    for source, target in [(generator, model.generator), (discriminator, model.discriminator)]:
        target.set_weights(source.get_weights())
    per_epoch = data.steps_per_epoch(len(data.dataset_files(args.dataset, args.batch_size)), args.batch_size, None)
    state = _training_state(args.seed, z_dim)
    state["step"].assign(args.step)
    state["epoch"].assign(args.step // per_epoch)
    state["position"].assign(args.step % per_epoch)
    checkpoint = checkpoints.training_checkpoint(model.generator, model.discriminator, model.d_optimizer,
                                                 model.g_optimizer, **state)
    path = checkpoints.checkpoint_manager(checkpoint, args.checkpoint_dir).save(checkpoint_number=args.step)
    print(f"{path}: step {args.step}, epoch {args.step // per_epoch + 1}, batch {args.step % per_epoch}")


if __name__ == "__main__":
    main()

"""`dcgan-convert TF1_CHECKPOINT OUT`: the original's TF1 checkpoint in this project's format."""
from . import ArgumentParser, import_tensorflow, run

PROG = "dcgan-convert"


def parse_args(argv=None):
    parser = ArgumentParser(
        prog=PROG,
        description="Convert a checkpoint of the original TF1 dcgan-completion (checkpoint/DCGAN.model-N) "
        "into this project's format, readable by `dcgan-complete --checkpointDir OUT`.",
    )
    parser.add_argument(
        "tf1_checkpoint",
        metavar="TF1_CHECKPOINT",
        help="the original's checkpoint folder (holding its `checkpoint` file) or a prefix such as "
        "checkpoint/DCGAN.model-60502",
    )
    parser.add_argument("out", metavar="OUT", help="new or empty folder to write DCGAN.model-N into")
    return parser.parse_args(argv)


def convert(args):
    import_tensorflow()
    from ..checkpoints import convert_tf1_checkpoint

    prefix = convert_tf1_checkpoint(args.tf1_checkpoint, args.out)
    print(f"wrote {prefix}")


def main(argv=None):
    args = parse_args(argv)
    run(PROG, convert, args)


if __name__ == "__main__":
    main()

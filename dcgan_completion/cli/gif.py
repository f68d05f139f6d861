"""`make-gif FRAMES_DIR -o out.gif [--delay 10] [--loop 0]`: an animation of a folder of
frames (e.g. a completion's `completed/`), as `convert -delay 10 -loop 0 *.png out.gif`."""
from . import ArgumentParser, number, run


def make_gif(frames_dir, output, delay=10, loop=0):
    """Write the images of `frames_dir`, in name order, as a GIF; delay in 1/100 s."""
    from ..images import check_output_file, list_images, read_rgb, save_gif

    check_output_file(output, "-o")
    frames = [read_rgb(p) for p in list_images(frames_dir)]
    save_gif(output, frames, delay_ms=delay * 10, loop=loop)
    return len(frames)


def main(argv=None):
    parser = ArgumentParser(prog="make-gif", description=__doc__.split("\n\n")[0])
    parser.add_argument("frames_dir", metavar="FRAMES_DIR", help="folder of .png/.jpg frames, shown in name order")
    parser.add_argument("-o", "--output", required=True, help="the GIF to write")
    parser.add_argument("--delay", type=number(int, minimum=0), default=10,
                        help="time per frame in hundredths of a second, as convert's -delay (default 10)")
    parser.add_argument("--loop", type=number(int, minimum=0), default=0,
                        help="times to repeat, 0 = forever (default 0)")
    args = parser.parse_args(argv)
    count = run("make-gif", make_gif, args.frames_dir, args.output, args.delay, args.loop)
    print(f"wrote {args.output} ({count} frames, {args.delay / 100:g} s each)")


if __name__ == "__main__":
    main()

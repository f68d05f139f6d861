"""`dcgan-serve`: a local web page for completing faces in photos: open a photo, paint the
hole, press Complete and watch the search fill it (dcgan_completion.web)."""
import errno
import os
import socket

from ..errors import InputError
from . import PRECISION_HELP, PRECISIONS, ArgumentParser, load_search_models, number, run


def build_parser():
    p = ArgumentParser(prog="dcgan-serve", description=__doc__.split("\n\n")[0])
    count, positive = number(int, minimum=1), number(float, above=0)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 lets the whole "
                        "network in, with no password)")
    p.add_argument("--port", type=number(int, minimum=0, maximum=65535), default=8000, help="port (default 8000; 0 = any free one)")
    p.add_argument("--checkpointDir", "--checkpoint-dir", default=None,
                   help="checkpoint folder or prefix from train-dcgan (default: the face model shipped with the package)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help=PRECISION_HELP)
    p.add_argument("--max-upload-mb", type=positive, default=20.0, help="largest upload accepted (default 20 MB)")
    p.add_argument("--max-megapixels", type=positive, default=12.0,
                   help="largest photo accepted, in millions of pixels (default 12)")
    p.add_argument("--max-iter", type=count, default=3000, help="most iterations a search may ask for (default 3000)")
    p.add_argument("--max-waiting", type=count, default=8,
                   help="searches that may wait behind the running one (default 8); more are refused")
    p.add_argument("--keep", type=count, default=8,
                   help="finished searches whose results are kept (default 8, each for at most an hour)")
    return p


def listen(host, port):
    """A listening socket on host:port, or InputError saying why there can be none."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except socket.gaierror as e:
        raise InputError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)  # create_server's strerror repeats the address
        advice = "pass another --port" if e.errno == errno.EADDRINUSE else "give an address of this machine with --host"
        raise InputError(f"cannot listen on {host}:{port} ({reason}): {advice}") from None


def serve_command(args):
    try:
        import python_multipart  # noqa: F401 - Starlette needs it to read uploads
        import uvicorn

        from ..web.app import create_app
    except ImportError as e:
        raise InputError(f"dcgan-serve needs the web extra ({e.name} is missing): "
                         "pip install 'dcgan-completion[web]'") from None
    sock = listen(args.host, args.port)
    generator, discriminator, encoder, precision = load_search_models(args.checkpointDir, args.precision)
    app = create_app(generator, discriminator, encoder=encoder, max_upload_bytes=int(args.max_upload_mb * 1e6),
                     max_pixels=int(args.max_megapixels * 1e6), max_iter=args.max_iter,
                     max_waiting=args.max_waiting, keep=args.keep)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"dcgan-serve: open http://{shown}:{port}/ in a browser (Ctrl-C stops; computing in {precision}"
          f"{'' if encoder is not None else ', no encoder: searches start from random z'})", flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[sock])
    # uvicorn returns only once a signal told it to stop; whether it then re-raises Ctrl-C
    # depends on when the signal came, so the exit is the same either way: 130, "interrupted".
    raise KeyboardInterrupt


def main(argv=None):
    args = build_parser().parse_args(argv)
    run("dcgan-serve", serve_command, args)


if __name__ == "__main__":
    main()

"""`dcgan-convert`: not yet available."""
from . import not_yet


def main(argv=None):
    not_yet("dcgan-convert")

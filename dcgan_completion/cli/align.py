"""`align-faces`: not yet available."""
from . import not_yet


def main(argv=None):
    not_yet("align-faces")

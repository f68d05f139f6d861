"""dcgan-serve: a local web page for completing faces in photos.

`jobs` holds the work (uploads checked, jobs planned, queued and run one at a time)
without HTTP; `app` is the Starlette application over it; `static/` the page (one HTML,
one JS, one CSS file, no build step); `examples/` the example faces the page offers
(copies of the repository's data/examples/, so that an installed package has them).
Needs the `web` extra: pip install 'dcgan-completion[web]'.
"""

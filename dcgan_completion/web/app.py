"""dcgan-serve's web application (Starlette): the page, and a small JSON API over web.jobs.

    app = create_app(generator, discriminator)      # then uvicorn serves it

    GET  /                           the page (static/index.html, app.js, style.css)
    GET  /api/config                 the model's size, examples, preset masks, limits
    GET  /api/examples/NAME          an example face shipped in the package
    GET  /api/masks/TYPE.png?seed=S  a preset mask on an aligned face (white = keep)
    POST /api/photos                 photo=<image file> or example=NAME: {id, width, height, url, aligned}
    GET  /api/photos/ID.png          the photo as the search sees it (upright RGB)
    POST /api/jobs                   photo=ID, mask=<PNG of the photo's size, white = keep>
                                     or mask_type=TYPE; n_iter, blend (on/off), seed: {id, position, ...}
    GET  /api/jobs/ID                its state, queue position, iteration
    GET  /api/jobs/ID/events         server-sent events: queued {position}, started,
                                     progress {iteration, n_iter, loss, preview}, then one of
                                     done {result, gif, download, before}, cancelled, failed {error}
    POST /api/jobs/ID/cancel
    GET  /api/jobs/ID/{preview.png, before.png, result.png, completion.gif}   (result.png?download=1)

Every refused request gets a 4xx and one line of JSON, {"error": "..."}: 400 for bad
input (not an image, a mask of another size, no face under the hole...), 404 for an
unknown id, 409 to cancel a finished job, 413 for too many bytes or pixels, 429 when
the queue is full.
"""
import asyncio
import contextlib
import json
import re
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import InputError
from ..masks import make_mask
from ..images import to_uint8
from .jobs import (FINISHED, PRESET_MASKS, JobQueue, NotFound, PhotoStore, TooLarge, client_label,
                   encode_png, plan_job, read_mask, read_photo)

POLL_SECONDS = 0.1  # how often an event stream looks for news
KEEPALIVE_SECONDS = 15
_STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
           "style.css": "text/css; charset=utf-8"}
_NO_STORE = {"Cache-Control": "no-store"}


def create_app(generator, discriminator, *, encoder=None, max_upload_bytes=20_000_000, max_pixels=12_000_000,
               max_iter=3000, max_waiting=8, keep=8, ttl=3600.0):
    """The application for one loaded model pair (and its encoder, which starts each
    search where there is one); its lifespan starts and stops the search worker.

    What the handlers share is in app.state: the model's size, the page's files, the
    examples, the limits, the photo store and the job queue."""
    from ..networks import image_size_of  # TensorFlow: dcgan-serve loads it (quietly) after importing this
    from ..search import default_iterations

    package = resources.files(__package__)
    app = Starlette(routes=_ROUTES, lifespan=_lifespan,
                    middleware=[Middleware(BodyLimit, max_bytes=max_upload_bytes)],
                    exception_handlers={InputError: _input_error, HTTPException: _http_error})
    app.state.size = image_size_of(generator)
    app.state.static = {name: (package / "static" / name).read_bytes() for name in _STATIC}
    app.state.examples = {p.name: p.read_bytes() for p in sorted((package / "examples").iterdir(), key=lambda p: p.name)
                          if p.name.endswith(".png")}
    app.state.limits = dict(max_upload_bytes=max_upload_bytes, max_pixels=max_pixels, max_iter=max_iter)
    # As dcgan-complete: the iterations of the search's start (and mask type, for a preset).
    start = "encoder" if encoder is not None else "random"
    app.state.default_iterations = lambda mask_type=None: min(default_iterations(start, mask_type), max_iter)
    app.state.photos = PhotoStore(keep=2 * keep, ttl=ttl)
    app.state.queue = JobQueue(generator, discriminator, encoder=encoder, max_waiting=max_waiting, keep=keep, ttl=ttl)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app):
    app.state.queue.start()
    try:
        yield
    finally:
        await run_in_threadpool(app.state.queue.stop)


# ---------------------------------------------------------------- routes


async def _page(request):
    return Response(request.app.state.static["index.html"], media_type=_STATIC["index.html"])


async def _static_file(request):
    name = request.path_params["name"]
    if name not in request.app.state.static:
        raise NotFound(f"no file {name}")
    return Response(request.app.state.static[name], media_type=_STATIC[name])


async def _config(request):
    state = request.app.state
    limits = state.limits
    return JSONResponse({"size": state.size, "examples": list(state.examples), "presets": list(PRESET_MASKS),
                         "default_iterations": state.default_iterations(),
                         "preset_iterations": {p: state.default_iterations(p) for p in PRESET_MASKS},
                         "max_iterations": limits["max_iter"], "max_upload_mb": limits["max_upload_bytes"] / 1e6,
                         "max_megapixels": limits["max_pixels"] / 1e6})


async def _example_file(request):
    return Response(_example(request.app.state.examples, request.path_params["name"]), media_type="image/png")


async def _preset_mask(request):
    mask_type = request.path_params["mask_type"]
    if mask_type not in PRESET_MASKS:
        raise NotFound(f"unknown preset mask {mask_type!r}: choose one of {', '.join(PRESET_MASKS)}")
    seed = _whole_number(request.query_params.get("seed", "0"), "seed", 0, 2**31 - 1)
    mask = make_mask(mask_type, request.app.state.size, seed=seed)
    return Response(encode_png(to_uint8(2 * mask - 1)), media_type="image/png")


async def _open_photo(request):
    state = request.app.state
    form = await request.form(max_files=1, max_fields=4)
    upload, name = form.get("photo"), form.get("example")
    if (upload is None) == (name is None):
        raise InputError("send a photo (an image file) or the name of an example, one of the two")
    if name is not None:
        data, label = _example(state.examples, name), name
    elif isinstance(upload, UploadFile):
        data, label = await upload.read(), client_label(upload.filename, "the photo")
    else:
        raise InputError("photo: send the image as a file (multipart/form-data)")
    photo = state.photos.add(await run_in_threadpool(read_photo, data, label, state.limits["max_pixels"]))
    return JSONResponse(_photo_json(photo, state.size), status_code=201)


async def _photo_png(request):
    return Response(request.app.state.photos.get(request.path_params["photo_id"]).png, media_type="image/png")


async def _submit(request):
    state = request.app.state
    max_iter = state.limits["max_iter"]
    form = await request.form(max_files=1, max_fields=8)
    photo = state.photos.get(_text(form, "photo", required=True))
    mask_type = _text(form, "mask_type") or None
    n_iter = _whole_number(_text(form, "n_iter") or str(state.default_iterations(mask_type)), "iterations", 1, max_iter)
    seed = _whole_number(_text(form, "seed") or "0", "seed", 0, 2**31 - 1)
    blend = _switch(_text(form, "blend") or "on", "blend")
    keep = None
    upload = form.get("mask")
    if upload is not None:
        if not isinstance(upload, UploadFile):
            raise InputError("mask: send the mask as an image file (PNG of the photo's size, white = keep)")
        keep = await run_in_threadpool(read_mask, await upload.read(), photo, state.limits["max_pixels"],
                                       client_label(upload.filename, "the mask"))
    job = await run_in_threadpool(plan_job, photo, state.size, keep=keep, mask_type=mask_type,
                                  n_iter=n_iter, blend=blend, seed=seed)
    state.queue.submit(job)
    return JSONResponse(_job_json(job, state.queue), status_code=202)


async def _job_status(request):
    queue = request.app.state.queue
    return JSONResponse(_job_json(queue.get(request.path_params["job_id"]), queue), headers=_NO_STORE)


async def _cancel(request):
    queue = request.app.state.queue
    return JSONResponse(_job_json(queue.cancel(request.path_params["job_id"]), queue))


async def _events(request):
    queue = request.app.state.queue
    job = queue.get(request.path_params["job_id"])
    return StreamingResponse(_event_stream(job, queue), media_type="text/event-stream", headers=_NO_STORE)


async def _job_file(request):
    job = request.app.state.queue.get(request.path_params["job_id"])
    name = request.path_params["name"]
    if name == "before.png":
        return Response(job.photo.png, media_type="image/png")
    data = {"preview.png": job.preview_png, "result.png": job.result_png, "completion.gif": job.gif}.get(name)
    if data is None:
        raise NotFound(f"job {job.id} has no {name} ({job.state})")
    headers = dict(_NO_STORE)
    if name == "result.png" and request.query_params.get("download"):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", job.photo.name.rsplit(".", 1)[0])[:60] or "photo"
        headers["Content-Disposition"] = f'attachment; filename="{stem}-completed.png"'
    return Response(data, media_type="image/gif" if name.endswith(".gif") else "image/png", headers=headers)


_ROUTES = [
    Route("/", _page),
    Route("/static/{name}", _static_file),
    Route("/api/config", _config),
    Route("/api/examples/{name}", _example_file),
    Route("/api/masks/{mask_type}.png", _preset_mask),
    Route("/api/photos", _open_photo, methods=["POST"]),
    Route("/api/photos/{photo_id}.png", _photo_png),
    Route("/api/jobs", _submit, methods=["POST"]),
    Route("/api/jobs/{job_id}", _job_status),
    Route("/api/jobs/{job_id}/events", _events),
    Route("/api/jobs/{job_id}/cancel", _cancel, methods=["POST"]),
    Route("/api/jobs/{job_id}/{name}", _job_file),
]


# ---------------------------------------------------------------- requests


def _example(examples, name):
    if name not in examples:
        raise NotFound(f"no example {name!r}: choose one of {', '.join(examples)}")
    return examples[name]


def _text(form, key, required=False):
    value = form.get(key)
    if value is None:
        if required:
            raise InputError(f"{key}: missing")
        return None
    if isinstance(value, UploadFile):
        raise InputError(f"{key}: expected a value, not a file")
    return value.strip()


def _whole_number(text, what, low, high):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise InputError(f"{what} must be a whole number from {low} to {high}, got {text!r}")
    return value


def _switch(text, what):
    value = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False,
             "no": False}.get(text.lower())
    if value is None:
        raise InputError(f"{what} must be on or off, got {text!r}")
    return value


def _photo_json(photo, size):
    return {"id": photo.id, "name": photo.name, "width": photo.width, "height": photo.height,
            "url": f"/api/photos/{photo.id}.png", "aligned": photo.rgb.shape[:2] == (size, size)}


def _job_json(job, queue):
    base = f"/api/jobs/{job.id}"
    status = {"id": job.id, "state": job.state, "position": queue.position(job), "iteration": job.iteration,
              "n_iter": job.n_iter, "faces": job.faces_filled, "aligned": job.aligned, "notes": job.notes,
              "events": f"{base}/events"}
    if job.error:
        status["error"] = job.error
    if job.state == "done":
        status.update(_results(job))
    return status


def _results(job):
    base = f"/api/jobs/{job.id}"
    return {"result": f"{base}/result.png", "download": f"{base}/result.png?download=1",
            "gif": f"{base}/completion.gif", "before": f"{base}/before.png", "faces": job.faces_filled,
            "notes": job.notes}


async def _event_stream(job, queue):
    """The job's events as server-sent events, until the one that ends it."""
    sent, position, quiet = 0, None, 0.0
    while True:
        if job.state == "queued" and queue.position(job) != position:
            position = queue.position(job)
            yield _sse("queued", {"position": position})
        news = job.events[sent:]
        sent += len(news)
        for name, data in news:
            if name == "progress":
                data = dict(data, preview=f"/api/jobs/{job.id}/preview.png?i={data['iteration']}")
            elif name == "done":
                data = dict(data, **_results(job))
            yield _sse(name, data)
        if news and news[-1][0] in FINISHED:
            return
        quiet = 0.0 if news else quiet + POLL_SECONDS
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": still there\n\n"
        await asyncio.sleep(POLL_SECONDS)


def _sse(name, data):
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


# ---------------------------------------------------------------- errors and limits


def _error(status, message):
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


async def _input_error(request, exc):
    return _error(getattr(exc, "status", 400), exc)


async def _http_error(request, exc):
    messages = {404: f"no such page: {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    return _error(exc.status_code, messages.get(exc.status_code, exc.detail))


class BodyLimit:
    """Refuse request bodies over max_bytes with 413: at once from Content-Length, else as they arrive."""

    def __init__(self, app, max_bytes):
        self.app, self.max_bytes = app, max_bytes

    def _too_large(self):
        return TooLarge(f"the upload is larger than the limit of {self.max_bytes / 1e6:g} MB: send a smaller photo")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return await _error(413, self._too_large())(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

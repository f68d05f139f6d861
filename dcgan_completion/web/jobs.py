"""The work behind dcgan-serve, apart from HTTP: uploads checked, completion jobs planned,
queued and run one at a time on the one model pair loaded at start.

    photo = read_photo(data, "me.jpg", max_pixels)        # as the CLI reads it (read_rgb)
    job = plan_job(photo, 64, keep=read_mask(data, photo, max_pixels), n_iter=500)
    queue = JobQueue(generator, discriminator); queue.start(); queue.submit(job)

A job is completed by the library's own steps (photos.find_faces, plan_faces, fill_faces,
paste_faces), as `dcgan-complete --align` does: every face the hole touches is filled.
A photo of the model's size (an aligned face, such as data/examples/) is completed
directly, as `dcgan-complete` does without --align: the hole is the crop's own.

Photos and results stay in memory (no result is written to disk), and nothing the
client sends is used as a path. Finished jobs are kept for a while (the newest `keep`,
at most `ttl` seconds) so that the page can fetch their results, then dropped.
"""
import collections
import io
import math
import secrets
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..images import read_rgb, save_gif
from ..masks import MASK_TYPES, load_photo_mask, make_mask, uses_lowres
from ..photos import FaceCompletion, fill_faces, find_faces, paste_faces, plan_faces

# The preset masks the page offers: every mask type that leaves a hole on its own.
PRESET_MASKS = tuple(t for t in MASK_TYPES if t not in ("full", "file"))
PREVIEW_SIDE = 512  # progress frames and the GIF fit in this square (the result does not)
# About this many progress frames per search: each pastes, shrinks and encodes the whole
# photo, which costs more than the iterations between frames of a short search...
FRAMES = 10
MAX_SNAPSHOT_INTERVAL = 25  # ...but one at least this often: a cancel waits for the next one
FRAME_DELAY_MS = 100
FINISHED = ("done", "cancelled", "failed")

# dlib's detector is shared by every request thread: one photo at a time.
_FACES_LOCK = threading.Lock()


class TooLarge(InputError):
    status = 413


class NotFound(InputError):
    status = 404


class QueueFull(InputError):
    status = 429


class Conflict(InputError):
    status = 409


class Cancelled(Exception):
    """Raised from the search's snapshot callback to stop it."""


# ---------------------------------------------------------------- uploads


class _Upload(io.BytesIO):
    """Uploaded bytes that messages call by the client's file name; never opened as a path."""

    def __init__(self, data, label):
        super().__init__(data)
        self.label = label

    def __str__(self):
        return self.label

    def __repr__(self):
        return repr(self.label)


def client_label(filename, default):
    """A client's file name fit for messages and download names: no folders, printable, short."""
    name = str(filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:80]
    return name or default


def _check_pixels(data, what, max_pixels):
    """TooLarge if the image header says it has more than max_pixels; undecodable data
    passes (the reader that follows says what is wrong with it)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        raise TooLarge(f"{what} has far too many pixels: the limit is {max_pixels / 1e6:g} megapixels") from None
    except Exception:  # noqa: BLE001 - whatever Pillow raises, read_rgb reports it as a one-line error
        return
    if width * height > max_pixels:
        raise TooLarge(f"{what} is {width}x{height} ({width * height / 1e6:.1f} megapixels): the limit is "
                       f"{max_pixels / 1e6:g} megapixels; scale it down")


@dataclass(eq=False)  # compared by identity
class Photo:
    rgb: np.ndarray  # H x W x 3 uint8, upright: what the search sees
    name: str  # the client's file name or the example's, for messages and the download
    png: bytes = None  # rgb as PNG, for the page to paint on
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    created: float = field(default_factory=time.monotonic)

    @property
    def height(self):
        return self.rgb.shape[0]

    @property
    def width(self):
        return self.rgb.shape[1]


def read_photo(data, name, max_pixels):
    """A Photo from uploaded bytes, decoded as the CLI decodes files (images.read_rgb:
    grayscale, RGBA and 16-bit images become RGB, EXIF orientation is applied)."""
    _check_pixels(data, name, max_pixels)
    rgb = read_rgb(_Upload(data, name))
    return Photo(rgb=rgb, name=name, png=encode_png(rgb))


def read_mask(data, photo, max_pixels, label="the mask"):
    """The hole from a mask image of the photo's size (white = keep, black = fill) as
    H x W bool, True = keep (masks.load_photo_mask)."""
    _check_pixels(data, label, max_pixels)
    return load_photo_mask(_Upload(data, label), photo.rgb.shape, photo.name)


def encode_png(rgb, compress_level=1):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def encode_gif(frames):
    """The frames as an animated GIF (images.save_gif, through a private temporary file)."""
    with tempfile.TemporaryDirectory(prefix="dcgan-serve-") as folder:
        path = Path(folder) / "completion.gif"
        save_gif(path, frames, delay_ms=FRAME_DELAY_MS)
        return path.read_bytes()


def preview(rgb):
    """The photo shrunk to fit PREVIEW_SIDE x PREVIEW_SIDE (unchanged if it already does)."""
    picture = Image.fromarray(rgb)
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.LANCZOS)
    return np.asarray(picture)


# ---------------------------------------------------------------- jobs


@dataclass(eq=False)  # compared by identity (the queue finds a job by it)
class Job:
    photo: Photo
    faces: list  # [photos.FaceCompletion]; dropped once the job has finished
    aligned: bool  # the photo is an aligned face of the model's size, completed directly
    n_iter: int
    blend: bool = True
    seed: int = 0
    lowres: bool = False
    faces_filled: int = 0
    notes: list = field(default_factory=list)  # warnings for the user (hole pixels off every face)
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    state: str = "queued"  # queued, running, then one of FINISHED
    iteration: int = 0
    events: list = field(default_factory=list)  # (name, data) in order; the last one ends the job
    preview_png: bytes = None  # the newest progress frame
    result_png: bytes = None
    gif: bytes = None
    error: str = None
    finished_at: float = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def finish(self, state, **data):
        self.faces = None
        self.state, self.finished_at = state, time.monotonic()
        self.events.append((state, data))


def plan_job(photo, size, *, keep=None, mask_type=None, n_iter=1000, blend=True, seed=0):
    """A Job for the photo: the hole is `keep` (H x W bool, True = keep) or a preset mask
    type on every face. InputError if the hole misses every face, covers a whole face,
    or the photo has no face (photos.plan_faces), before any search is queued."""
    if (keep is None) == (mask_type is None):
        raise InputError("paint the hole or choose a preset mask (one of the two)")
    if mask_type is not None and mask_type not in PRESET_MASKS:
        raise InputError(f"unknown preset mask {mask_type!r}: choose one of {', '.join(PRESET_MASKS)}")
    notes = []
    aligned = photo.rgb.shape[:2] == (size, size)
    if aligned:
        faces = [aligned_face(photo.rgb, keep=keep, mask_type=mask_type, seed=seed, name=photo.name)]
    else:
        with _FACES_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = find_faces(photo.rgb, size, name=photo.name)
            faces = plan_faces(photo.rgb, found, mask=keep, mask_type=mask_type, seed=seed, name=photo.name)
        notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return Job(photo=photo, faces=faces, aligned=aligned, n_iter=n_iter, blend=blend, seed=seed,
               lowres=uses_lowres(mask_type), faces_filled=sum(1 for f in faces if f.filled), notes=notes)


def aligned_face(rgb, *, keep=None, mask_type=None, seed=0, name="the photo"):
    """An aligned face as the one FaceCompletion to fill (the identity as its alignment):
    its hole is `keep`'s, or the mask type's as `dcgan-complete` makes it."""
    size = rgb.shape[0]
    if keep is None:
        crop_mask = make_mask(mask_type, size, seed=seed)
    else:
        if keep.all():
            raise InputError(f"{name}: the mask has no hole (nothing to fill): paint over what should go")
        crop_mask = np.repeat(keep[:, :, None], 3, axis=2).astype(np.float32)
    if not crop_mask.any() and not uses_lowres(mask_type):
        raise InputError(f"{name}: the hole covers the whole face: leave part of it to complete from")
    return FaceCompletion(matrix=np.float64([[1, 0, 0], [0, 1, 0]]), crop=rgb, crop_mask=crop_mask,
                          region=crop_mask[:, :, 0] == 0)


def snapshot_interval(n_iter):
    """Iterations between progress frames: about FRAMES of them, at most MAX_SNAPSHOT_INTERVAL apart."""
    return min(MAX_SNAPSHOT_INTERVAL, max(1, math.ceil(n_iter / FRAMES)))


def run_job(job, generator, discriminator, encoder=None):
    """Fill the job's faces in one batched search, a progress event and frame at each
    snapshot; then its result (PNG, at full resolution) and the GIF of its frames.
    Raises Cancelled at the first snapshot after job.cancel_requested is set."""
    todo = [f for f in job.faces if f.filled]
    frames = []

    def on_snapshot(snap):
        if job.cancel_requested.is_set():
            raise Cancelled()
        for i, generated in zip(snap.indices, snap.generated):
            todo[i].generated = generated
        # The frame pastes G(z) as it is: blending every frame would cost more than the search.
        frames.append(preview(paste_faces(job.photo.rgb, job.faces, blend=False)))
        job.iteration = snap.iteration
        job.preview_png = encode_png(frames[-1])
        job.events.append(("progress", {"iteration": snap.iteration, "n_iter": job.n_iter,
                                        "loss": float(np.mean(snap.loss))}))

    fill_faces(job.faces, generator, discriminator, lowres=job.lowres, blend=job.blend,
               seeds=job.seed + np.arange(len(job.faces)), n_iter=job.n_iter, encoder=encoder,
               out_interval=snapshot_interval(job.n_iter), batch_size=len(todo), on_snapshot=on_snapshot)
    if job.aligned:
        result = job.faces[0].completed  # as dcgan-complete: the completed crop itself
    else:
        result = paste_faces(job.photo.rgb, job.faces, blend=job.blend)
    frames.append(preview(result))
    job.result_png = encode_png(result, compress_level=6)
    job.preview_png = encode_png(frames[-1])
    job.gif = encode_gif(frames)


class JobQueue:
    """Runs submitted jobs in order of arrival, one at a time, in one worker thread."""

    def __init__(self, generator, discriminator, *, encoder=None, max_waiting=8, keep=8, ttl=3600.0):
        self.generator, self.discriminator, self.encoder = generator, discriminator, encoder
        self.max_waiting, self.keep, self.ttl = max_waiting, keep, ttl
        self._lock = threading.Condition()
        self._waiting = collections.deque()
        self._running = None
        self._jobs = {}
        self._stopping = False
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._work, name="dcgan-serve-search", daemon=True)
        self._thread.start()

    def stop(self, timeout=30):
        """Cancel what runs, drop what waits, and wait for the worker to end."""
        with self._lock:
            self._stopping = True
            for job in self._waiting:
                job.finish("cancelled", reason="the server stopped")
            self._waiting.clear()
            if self._running is not None:
                self._running.cancel_requested.set()
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, job):
        with self._lock:
            self._forget_old()
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} searches are already waiting: try again in a few minutes")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._lock.notify_all()
        return job

    def get(self, job_id):
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}: it has finished and its results were dropped, or never existed; "
                           "press Complete again")
        return job

    def position(self, job):
        """How many searches run or wait before this one (0 once it runs)."""
        with self._lock:
            if job.state != "queued" or job not in self._waiting:
                return 0
            return self._waiting.index(job) + (self._running is not None)

    def cancel(self, job_id):
        job = self.get(job_id)
        with self._lock:
            if job.state == "queued":
                self._waiting.remove(job)
                job.finish("cancelled")
            elif job.state == "running":
                job.cancel_requested.set()
            else:
                raise Conflict(f"job {job_id} has already finished ({job.state})")
        return job

    def _work(self):
        while True:
            with self._lock:
                while not self._waiting and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._running = self._waiting.popleft()
                job.state = "running"
            job.events.append(("started", {}))
            try:
                run_job(job, self.generator, self.discriminator, self.encoder)
                outcome, data = "done", {}
            except Cancelled:
                outcome, data = "cancelled", {}
            except InputError as e:
                outcome, data = "failed", {"error": str(e)}
            except Exception as e:  # noqa: BLE001 - the server goes on; the page shows why this job failed
                outcome, data = "failed", {"error": f"the search failed: {type(e).__name__}: {e}"}
            with self._lock:
                job.error = data.get("error")
                job.finish(outcome, **data)
                self._running = None
                self._forget_old()

    def _forget_old(self):
        """Drop finished jobs beyond the newest `keep` and those finished over `ttl` s ago."""
        finished = sorted((j for j in self._jobs.values() if j.finished_at is not None), key=lambda j: j.finished_at)
        now = time.monotonic()
        for k, job in enumerate(finished):
            if k < len(finished) - self.keep or now - job.finished_at > self.ttl:
                del self._jobs[job.id]


class PhotoStore:
    """Opened photos by id: the newest `keep`, each for at most `ttl` seconds."""

    def __init__(self, keep=16, ttl=3600.0):
        self.keep, self.ttl = keep, ttl
        self._photos = {}
        self._lock = threading.Lock()

    def add(self, photo):
        with self._lock:
            self._photos[photo.id] = photo
            now = time.monotonic()
            photos = list(self._photos.values())  # oldest first
            for k, old in enumerate(photos):
                if k < len(photos) - self.keep or now - old.created > self.ttl:
                    del self._photos[old.id]
        return photo

    def get(self, photo_id):
        with self._lock:
            photo = self._photos.get(photo_id)
        if photo is None or time.monotonic() - photo.created > self.ttl:
            raise NotFound(f"no photo {photo_id}: photos are kept for {self.ttl / 60:g} minutes; open it again")
        return photo

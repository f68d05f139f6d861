"""Work done on a thread beside the search: writing its files, reading the next batch."""
import queue
import threading


class BackgroundWriter:
    """Runs jobs (writing files) one after another on a thread of its own, in the order
    given, while the caller goes on computing. At most `depth` jobs wait: a caller that
    gets ahead waits for the writes, so memory stays bounded. A job's error is raised in
    the caller, at its next `submit` or at `close`; jobs after a failed one are dropped.

        with BackgroundWriter() as writer:
            writer.submit(save_image, path, image)
    """

    def __init__(self, depth=8):
        self._jobs = queue.Queue(maxsize=depth)
        self._error = None
        self._thread = threading.Thread(target=self._work, name="dcgan-writer", daemon=True)
        self._thread.start()

    def submit(self, job, *args):
        self._raise_error()
        self._jobs.put((job, args))

    def close(self, raise_errors=True):
        """Wait for every job to be done; raise the first job error (with raise_errors)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        if raise_errors:
            self._raise_error()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        # What was handed over before a failure is still written; that failure is reported.
        self.close(raise_errors=kind is None)

    def _work(self):
        while (item := self._jobs.get()) is not None:
            if self._error is None:
                try:
                    item[0](*item[1])
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    self._error = e

    def _raise_error(self):
        if self._error is not None:
            raise self._error

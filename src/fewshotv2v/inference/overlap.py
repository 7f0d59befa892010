"""Overlapped pipeline stages: a producer (thread or process) ahead of the caller, a thread behind it.

Synthesis has three stages per frame: making the inputs (decode, keypoints, smoothing, retargeting, label
map), the generator, and encoding. Run in series, the frame rate is the *sum* of the three; overlapped,
it approaches the slowest one. A thread overlaps stages whose heavy parts release the GIL (torch kernels,
PyAV / FFmpeg, the detectors' native code). Where both sides spend their time in Python (drawing the
skeleton, mediapipe's result conversion, small models launching many small kernels) two threads take
turns on one interpreter: then the producer runs in a process of its own.

- `prefetch(iterable, depth)`: iterate `iterable` in a producer thread, yield its items in order. At most
  `depth` items wait in a bounded queue (plus the one being made), so memory stays flat with the video's
  length. An exception in the producer is raised in the consumer with its original traceback. When the
  consumer stops (generator closed, an exception, Ctrl-C), the producer stops after the item it is making
  and closes its iterator (in its own thread, where it runs).
- `prefetch_process(make, args, depth)`: the same, with the items made by `make(*args)` in a process of
  its own (`make` a module-level function, `args` and the items picklable). The child is a fresh
  interpreter (`python -m fewshotv2v.inference._producer_child`) that imports only what `make` needs;
  items come back pickled through its stdout pipe, in order, and a reader thread keeps `depth` of them
  ready. The child runs in its own session, so Ctrl-C reaches the caller, whose cleanup terminates it.
  Its exceptions come back with their type and message (its traceback as a note); a child that dies
  without one (killed, crashed in native code) is a `ProducerError`. No process is left behind.
- `BackgroundWriter(sink, depth)`: `write(item)` queues the item and returns; a consumer thread calls
  `sink.write(item)` in order. An error of the sink is raised at the next `write()` and at `close()`.
  As a context manager it flushes on a clean exit and drops what is queued on an error, so that the sink's
  own cleanup (`VideoWriter` removes its temp file) runs after the thread has stopped touching it.

Threads are daemons and are joined (with a timeout) whenever their owner stops: none is left behind.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import struct
import threading
import traceback
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

JOIN_TIMEOUT_S = 10.0  # a stage finishes the item it is making (one frame) well within this
_POLL_S = 0.1  # how often a blocked producer looks at the stop flag


class _End:
    """End of the stream."""


class _Raised:
    """The producer's exception, carried to the consumer."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def _join(thread: threading.Thread, what: str, *, quiet: bool = False) -> None:
    thread.join(JOIN_TIMEOUT_S)
    if thread.is_alive() and not quiet:  # a daemon: it cannot keep the process alive, but say so
        from fewshotv2v.errors import FewShotV2VWarning

        warnings.warn(f"{what} thread did not stop within {JOIN_TIMEOUT_S:g} s", FewShotV2VWarning, 2)


def prefetch(iterable: Iterable[T], depth: int = 2, *, name: str = "fsv2v-prefetch") -> Iterator[T]:
    """Yield the items of `iterable`, made ahead by a producer thread (see the module docstring).

    Lazy: the thread starts at the first `next()`. `depth` >= 1 items may wait in the queue.
    """
    if depth < 1:
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    return _prefetch(iterable, depth, name)


def _put_unless_stopped(items: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put `item` unless the consumer has stopped (a full queue would otherwise block forever)."""
    while not stop.is_set():
        try:
            items.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _until_end(items: queue.Queue) -> Iterator[Any]:
    """The queued items up to the end marker; a carried exception is raised."""
    while True:
        item = items.get()
        if isinstance(item, _End):
            return
        if isinstance(item, _Raised):
            raise item.exc  # a thread's: its __traceback__ still holds the producer's frames
        yield item


def _prefetch(iterable: Iterable[T], depth: int, name: str) -> Iterator[T]:
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        return _put_unless_stopped(items, item, stop)

    def produce() -> None:
        iterator = None
        try:
            iterator = iter(iterable)
            for item in iterator:
                if not put(item):
                    return
            put(_End())
        except BaseException as exc:  # noqa: BLE001 - everything goes to the consumer, re-raised there
            put(_Raised(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator: run its `finally` / `with` blocks here, in its thread
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    failing = False
    try:
        yield from _until_end(items)
    except BaseException:  # an error, Ctrl-C or SIGTERM is already being reported: no second line
        failing = True
        raise
    finally:  # normal end, an error, an early close or Ctrl-C in the consumer
        stop.set()
        _join(thread, name, quiet=failing)


class ProducerError(RuntimeError):
    """The producer process ended without a result or an exception (killed, or a crash in native code)."""


def prefetch_process(
    make,
    args: tuple = (),
    depth: int = 2,
    *,
    name: str = "fsv2v-producer",
    started: ProducerProcess | None = None,
) -> Iterator[Any]:
    """Yield the items of `make(*args)`, made ahead in a producer process (see the module docstring).

    Lazy: the process starts at the first `next()`, unless `started` is a `ProducerProcess` started
    earlier (its interpreter and imports then overlap the caller's own setup); it is used up either way.
    `depth` >= 1 items may wait in the queue.
    """
    if depth < 1:
        if started is not None:
            started.close()
        raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    return _prefetch_process(make, args, depth, name, started)


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError with its text; the traceback as a note."""
    note = "in the producer process:\n" + "".join(traceback.format_exception(exc)).rstrip()
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception whose arguments do not pickle
        copy = RuntimeError(f"{type(exc).__name__}: {exc}")
    copy.add_note(note)
    return copy


def send(stream, item: Any) -> None:
    """One item on a byte stream: 8-byte length, then the pickle (`receive` reads it)."""
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def receive(stream) -> Any:
    """The next item `send` wrote, or None when the stream ends first."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    data = stream.read(n)
    return pickle.loads(data) if len(data) == n else None


class ProducerProcess:
    """A producer process started before its job is known: `python -m fewshotv2v.inference._producer_child`.

    Starting an interpreter and importing numpy and PyAV takes about half a second. Started early (say,
    before the references are prepared), with the modules its job will need named in `preload`, that time
    overlaps the caller's own work. Give it to `prefetch_process(..., started=)` once the job is known, or
    `close()` it. A child whose caller dies reads the end of its stdin and exits.
    """

    def __init__(self, preload: Iterable[str] = ()):
        import subprocess
        import sys

        # A fresh interpreter: unlike multiprocessing's spawn it does not re-import the caller's `__main__`
        # (a script without an `if __name__ == "__main__"` guard would run again), and unlike fork it
        # inherits no locks or torch threads. Its own session: Ctrl-C in the terminal reaches the caller
        # only, whose cleanup stops the child.
        kw: dict[str, Any] = {"start_new_session": True}
        if sys.platform == "win32":
            kw = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fewshotv2v.inference._producer_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            **kw,
        )
        try:  # first, so that the child can import what the job needs while the caller gets it ready
            send(self.process.stdin, (list(sys.path), list(preload)))
        except BaseException:
            self.close()
            raise

    def submit(self, make, args: tuple) -> None:
        """Send the job; the child starts making items."""
        send(self.process.stdin, (make, args))
        self.process.stdin.close()

    def stop(self) -> None:
        """Stop the child (at once: it holds no state worth a graceful stop) and reap it; a reader of its
        output then sees the stream end."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(JOIN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """`stop()`, then close the pipes (after any thread reading them has finished)."""
        self.stop()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):  # a broken pipe while flushing an unsent job
                stream.close()

    def __enter__(self) -> ProducerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _prefetch_process(make, args, depth: int, name: str, started: ProducerProcess | None) -> Iterator[Any]:
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    child = None

    def read() -> None:
        """Pipe -> queue, on a thread (its reads release the GIL), so `depth` items wait ready."""
        process = child.process
        while not stop.is_set():
            try:
                item = receive(process.stdout)
            except Exception as exc:  # noqa: BLE001 - a broken stream: the consumer reports it
                item = _Raised(ProducerError(f"{name}: cannot read the producer's output: {exc}"))
            if item is None:
                code = process.wait()
                item = _Raised(ProducerError(f"{name} process stopped unexpectedly (exit code {code})"))
            if not _put_unless_stopped(items, item, stop) or isinstance(item, _End | _Raised):
                return

    reader = threading.Thread(target=read, name=f"{name}-reader", daemon=True)
    failing = False
    try:
        child = started if started is not None else ProducerProcess()
        child.submit(make, args)
        reader.start()
        yield from _until_end(items)
    except BaseException:  # an error, Ctrl-C or SIGTERM is already being reported: no second line
        failing = True
        raise
    finally:  # normal end, an error, an early close or Ctrl-C in the caller
        stop.set()
        child = child if child is not None else started
        if child is not None:
            child.stop()
        if reader.is_alive():
            _join(reader, f"{name}-reader", quiet=failing)
        if child is not None:
            child.close()


class BackgroundWriter:
    """Calls `sink.write(item)` on a thread of its own, in order, through a bounded queue.

    Use as a context manager around the sink's own context (see the module docstring):

        with VideoWriter(path, fps) as video, BackgroundWriter(video) as writer:
            for frame in frames:
                writer.write(frame)  # returns at once unless `depth` frames are waiting
    """

    def __init__(self, sink, depth: int = 4, *, name: str = "fsv2v-writer"):
        if depth < 1:
            raise ValueError(f"writer queue depth must be >= 1, got {depth}")
        self.sink = sink
        self.name = name
        self._items: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._drop = threading.Event()  # discard what is queued (abort)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._items.get()
            if isinstance(item, _End):
                return
            if self._error is not None or self._drop.is_set():
                continue  # keep draining so that `write()` never blocks on a dead sink
            try:
                self.sink.write(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, item) -> None:
        """Queue one item; raises the sink's error if an earlier item failed."""
        if self._closed:
            raise RuntimeError(f"{self.name}: write() after close()")
        self._raise_error()
        self._items.put(item)  # blocks while `depth` items wait: the producer cannot run away

    def close(self) -> None:
        """Wait until every queued item is written; raise the sink's error if there was one."""
        if self._closed:
            self._raise_error()
            return
        self._closed = True
        self._items.put(_End())
        try:
            self._thread.join()  # no timeout: the last frames are being encoded
        except BaseException:  # Ctrl-C while waiting: stop the thread before the sink is cleaned up
            self._stop()
            raise
        self._raise_error()

    def abort(self) -> None:
        """Drop what is queued and stop the thread (after the item it is writing)."""
        if not self._thread.is_alive():
            self._closed = True
            return
        self._closed = True
        self._stop()

    def _stop(self) -> None:
        self._drop.set()
        while True:  # make room for the end marker: only this thread puts, so one drain suffices
            try:
                self._items.get_nowait()
            except queue.Empty:
                break
        self._items.put(_End())
        _join(self._thread, self.name)

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["BackgroundWriter", "ProducerError", "ProducerProcess", "prefetch", "prefetch_process"]

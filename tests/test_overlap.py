"""Overlapped stages (`inference.overlap`): order, bounded queues, errors and early stops across threads."""

from __future__ import annotations

import threading
import traceback

import pytest

from fewshotv2v.errors import InputError
from fewshotv2v.inference.overlap import BackgroundWriter, prefetch


def _threads(prefix: str = "fsv2v-") -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


class Counting:
    """An iterable that records how many items were made and whether it was closed."""

    def __init__(self, n: int | None = None, fail_at: int | None = None, exc: BaseException | None = None):
        self.n, self.fail_at, self.exc = n, fail_at, exc or InputError("bad frame")
        self.made = 0
        self.closed = threading.Event()
        self.thread: str | None = None

    def __iter__(self):
        self.thread = threading.current_thread().name
        try:
            i = 0
            while self.n is None or i < self.n:
                if self.fail_at is not None and i == self.fail_at:
                    raise self.exc
                self.made += 1
                yield i
                i += 1
        finally:
            self.closed.set()


def test_prefetch_keeps_order_and_runs_in_another_thread():
    source = Counting(50)
    assert list(prefetch(source, depth=3)) == list(range(50))
    assert source.thread == "fsv2v-prefetch" and source.closed.is_set()
    assert _threads() == []


def test_prefetch_is_lazy_and_bounded():
    source = Counting()  # endless
    stream = prefetch(source, depth=2)
    assert source.made == 0  # nothing starts before the first next()
    assert next(stream) == 0
    for _ in range(20):  # give the producer every chance to run ahead
        threading.Event().wait(0.005)
    # 2 waiting in the queue + 1 in the producer's hand, beyond the one taken
    assert 1 <= source.made <= 1 + 2 + 1
    stream.close()


def test_producer_error_reaches_the_consumer_with_its_traceback():
    source = Counting(10, fail_at=4)
    got = []
    with pytest.raises(InputError, match="bad frame") as info:
        for item in prefetch(source, depth=2):
            got.append(item)
    assert got == [0, 1, 2, 3]  # everything before the error, in order
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "__iter__" in frames  # the producer's own frame, not only the consumer's
    assert source.closed.is_set() and _threads() == []


def test_early_close_stops_the_producer_and_closes_its_iterator():
    baseline = threading.active_count()
    source = Counting()
    stream = prefetch(source, depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert source.closed.is_set()  # the generator's finally ran (in the producer thread)
    assert threading.active_count() == baseline and _threads() == []
    made = source.made
    threading.Event().wait(0.05)
    assert source.made == made  # stopped for good


def test_keyboard_interrupt_in_the_consumer_leaves_no_thread():
    source = Counting()
    with pytest.raises(KeyboardInterrupt):
        for i in prefetch(source, depth=2):
            if i == 3:
                raise KeyboardInterrupt
    assert source.closed.is_set() and _threads() == []


def test_keyboard_interrupt_in_the_producer_is_raised_in_the_consumer():
    with pytest.raises(KeyboardInterrupt):
        list(prefetch(Counting(10, fail_at=2, exc=KeyboardInterrupt()), depth=1))
    assert _threads() == []


def test_an_object_that_is_not_iterable_fails_in_the_consumer():
    with pytest.raises(TypeError, match="not iterable"):
        next(prefetch(42, depth=1))  # type: ignore[arg-type]
    assert _threads() == []


def test_prefetch_rejects_a_zero_depth():
    with pytest.raises(ValueError, match="depth"):
        prefetch([1], depth=0)


class Sink:
    """A writer that records items (and the thread writing them), failing at item `fail_at`."""

    def __init__(self, fail_at: int | None = None, gate: threading.Event | None = None):
        self.items: list[int] = []
        self.fail_at, self.gate = fail_at, gate
        self.threads: set[str] = set()

    def write(self, item: int) -> None:
        if self.gate is not None:
            self.gate.wait(5)
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and item == self.fail_at:
            raise InputError(f"cannot encode frame {item}")
        self.items.append(item)


def test_background_writer_writes_everything_in_order_on_its_thread():
    sink = Sink()
    with BackgroundWriter(sink, depth=2) as writer:
        for i in range(30):
            writer.write(i)
    assert sink.items == list(range(30)) and sink.threads == {"fsv2v-writer"}
    assert _threads() == []


def test_background_writer_queue_is_bounded():
    gate = threading.Event()
    sink = Sink(gate=gate)  # blocked until the gate opens
    writer = BackgroundWriter(sink, depth=2)
    done = []

    def feed():
        for i in range(10):
            writer.write(i)
            done.append(i)

    feeder = threading.Thread(target=feed, name="test-feeder", daemon=True)
    feeder.start()
    feeder.join(0.2)
    # 1 in the sink's hand + 2 in the queue; the fourth write() waits
    assert len(done) <= 3 and sink.items == []
    gate.set()
    feeder.join(5)
    writer.close()
    assert sink.items == list(range(10))


def test_writer_error_is_raised_at_the_next_write_and_at_close():
    sink = Sink(fail_at=2)
    writer = BackgroundWriter(sink, depth=1)
    with pytest.raises(InputError, match="frame 2"):
        for i in range(100):  # the queue holds 1: the error is seen a few items after frame 2
            writer.write(i)
    with pytest.raises(InputError, match="frame 2"):
        writer.close()
    assert sink.items == [0, 1] and _threads() == []


def test_writer_error_surfaces_at_close_when_it_was_the_last_item():
    writer = BackgroundWriter(Sink(fail_at=0))
    writer.write(0)
    with pytest.raises(InputError, match="frame 0"):
        writer.close()


def test_abort_drops_queued_items_and_stops_the_thread():
    sink = Sink()
    with pytest.raises(KeyboardInterrupt), BackgroundWriter(sink, depth=4) as writer:
        sink.gate = writer._drop  # item 0 is written only once the abort has begun
        for i in range(4):
            writer.write(i)
        raise KeyboardInterrupt
    assert sink.items in ([], [0])  # at most the item it was writing; the queued ones were dropped
    assert _threads() == []
    with pytest.raises(RuntimeError, match="after close"):
        writer.write(5)

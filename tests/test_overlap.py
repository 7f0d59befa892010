"""Overlapped stages (`inference.overlap`): order, bounded queues, errors and early stops across threads."""

from __future__ import annotations

import os
import threading
import time
import traceback

import pytest

from fewshotv2v.errors import InputError
from fewshotv2v.inference.overlap import (
    BackgroundWriter,
    ProducerError,
    ProducerProcess,
    prefetch,
    prefetch_process,
)


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


# ---- a producer process ----------------------------------------------------------------------------------
def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_process_keeps_order_runs_elsewhere_and_library_prints_do_not_corrupt_it(capfd):
    import child_jobs

    items = list(prefetch_process(child_jobs.count, (40, True), depth=3))
    assert [i for i, _, _ in items] == list(range(40))
    pid, session = items[0][1], items[0][2]
    assert pid != os.getpid() and _gone(pid)
    assert session != os.getsid(0)  # its own session: Ctrl-C in the terminal reaches only the caller
    assert "a library printing to stdout" in capfd.readouterr().err
    assert _threads() == []


def test_process_error_comes_back_with_its_type_message_and_the_childs_traceback():
    import child_jobs

    got = []
    with pytest.raises(InputError, match="bad frame 3") as info:
        for item in prefetch_process(child_jobs.fail_after, (3,)):
            got.append(item)
    assert got == [0, 1, 2]
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "in the producer process" in notes and "fail_after" in notes


def test_an_exception_that_does_not_unpickle_arrives_as_a_runtime_error_with_its_text():
    import child_jobs

    with pytest.raises(RuntimeError, match="Unpicklable: custom failure at 2"):
        list(prefetch_process(child_jobs.fail_after, (2, "custom")))


def test_a_child_that_dies_is_a_producer_error_after_the_items_it_made():
    import child_jobs

    got = []
    with pytest.raises(ProducerError, match="exit code 7"):
        for item in prefetch_process(child_jobs.die_after, (4, 7)):
            got.append(item)
    assert got == [0, 1, 2, 3]


@pytest.mark.parametrize("how", ["close", "ctrl-c"])
def test_stopping_early_ends_the_process_and_the_reader(how):
    import child_jobs

    stream = prefetch_process(child_jobs.endless, (), depth=2)
    _, pid, _ = next(stream)
    if how == "close":
        stream.close()
    else:
        with pytest.raises(KeyboardInterrupt):
            stream.throw(KeyboardInterrupt())
    assert _gone(pid) and _threads() == []


def test_process_runs_only_a_bounded_way_ahead(tmp_path):
    import child_jobs

    made = tmp_path / "made"
    stream = prefetch_process(child_jobs.endless, (str(made), 200_000), depth=2)  # items > a pipe's buffer
    next(stream)
    time.sleep(1.0)  # give the producer every chance to run ahead
    # 1 taken + 2 in the queue + 1 in the reader's hand + 1 being written to the pipe + 1 being made
    assert 2 <= int(made.read_text()) <= 6
    assert [next(stream)[0] for _ in range(3)] == [1, 2, 3]  # in order, none lost
    stream.close()


def test_process_rejects_a_zero_depth():
    import child_jobs

    with pytest.raises(ValueError, match="depth"):
        prefetch_process(child_jobs.count, (1,), depth=0)


def test_a_process_started_ahead_imports_its_preload_before_the_job_and_is_used_up_by_it():
    import child_jobs

    started = ProducerProcess(["fewshotv2v.inference.producer", "no_such_module_here"])
    time.sleep(0.5)  # the caller's own setup; a missing module is only a lost head start
    pid = started.process.pid
    names = ("fewshotv2v.inference.producer", "fewshotv2v.video")
    assert list(prefetch_process(child_jobs.imported, names, started=started)) == [[True, False]]
    assert _gone(pid) and _threads() == []


def test_a_process_started_ahead_but_never_given_a_job_is_stopped():
    import child_jobs

    with ProducerProcess(["fewshotv2v.inference.producer"]) as started:
        pid = started.process.pid
        assert not _gone(pid)
    assert _gone(pid)
    started.close()  # twice is harmless
    unused = ProducerProcess()
    with pytest.raises(ValueError, match="depth"):
        prefetch_process(child_jobs.count, (1,), depth=0, started=unused)
    assert _gone(unused.process.pid)

"""`Pipeline` with overlapped stages: same frames as in series, errors and interruptions across threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fewshotv2v.errors import InputError
from test_pipeline import FakeBackend, _frames_and_kps, person_keypoints, scene_image


def _stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("fsv2v-")]


def _child_processes() -> list[int]:
    """Processes this one started and has not reaped (Linux; empty elsewhere)."""
    from pathlib import Path

    return [int(pid) for f in Path("/proc/self/task").glob("*/children") for pid in f.read_text().split()]


def _pipe(model_dir, backend="none", prefetch=2):
    from fewshotv2v import Pipeline

    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend=backend, prefetch=prefetch)
    img = scene_image()
    pipe.set_references([img], keypoints=[person_keypoints(img.shape[:2])])
    return pipe


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from test_pipeline import make_model

    return make_model(tmp_path_factory.mktemp("model") / "tiny", with_discriminators=False)


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    from fewshotv2v.video import write_test_video

    folder = tmp_path_factory.mktemp("drive")
    return write_test_video(folder / "drive.mp4", [scene_image((80, 60), i) for i in range(8)], 10.0)


def test_overlapped_frames_equal_serial_ones_in_order(model_dir, one_thread):
    hw = (80, 60)
    kps = [person_keypoints(hw, 0.4 * i) for i in range(6)]
    kps[2] = None  # a held frame: the counts travel with the frames
    frames = [scene_image(hw, seed=i) for i in range(6)]
    serial, overlapped = _pipe(model_dir, prefetch=0), _pipe(model_dir, prefetch=2)
    a = list(serial.stream(frames, keypoints=kps, side_by_side=True))
    b = list(overlapped.stream(frames, keypoints=kps, side_by_side=True))
    assert len(a) == len(b) == 6
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert serial.last_stats == overlapped.last_stats
    assert overlapped.last_stats.frames_held == 1 and _stage_threads() == []


def test_stats_follow_the_delivered_frames_not_the_producer(model_dir, one_thread):
    pipe = _pipe(model_dir, prefetch=3)
    hw = (80, 60)
    kps = [person_keypoints(hw)] + [None] * 6  # frames 1.. have nobody
    stream = pipe.stream([scene_image(hw, seed=i) for i in range(7)], keypoints=kps)
    next(stream), next(stream)
    s = pipe.last_stats  # the producer is ahead, but the counts are those of the 2 frames delivered
    assert (s.frames, s.frames_without_person, s.frames_held) == (2, 1, 1)
    stream.close()


def test_a_bad_frame_raises_its_input_error_through_the_producer(model_dir, one_thread):
    pipe = _pipe(model_dir)
    hw = (80, 60)
    frames = [scene_image(hw), scene_image(hw, 1), np.zeros((80, 60), np.uint8)]  # frame 2: not RGB
    got = []
    with pytest.raises(InputError, match="driving frame 2"):
        for frame in pipe.stream(frames, keypoints=[person_keypoints(hw)] * 3):
            got.append(frame)
    assert len(got) == 2 and _stage_threads() == []


def test_early_close_stops_the_producer_and_closes_the_detector(model_dir, one_thread):
    from fewshotv2v.semantics.backends import register_backend, unregister_backend

    baseline = threading.active_count()
    backend = FakeBackend()
    register_backend("fake-overlap", lambda **kw: backend)  # opened (and closed) by the pipeline
    try:
        pipe = _pipe(model_dir, backend="fake-overlap")
        frames, _, pulled = _frames_and_kps()  # endless: only an early stop ends it
        stream = pipe.stream(frames)
        for _ in range(3):
            next(stream)
        assert not backend.closed
        stream.close()
    finally:
        unregister_backend("fake-overlap")
    assert threading.active_count() == baseline and _stage_threads() == []
    assert backend.closed and pulled["n"] <= 3 + pipe.prefetch + 1


@pytest.mark.parametrize("exc", [InputError("disk on fire"), KeyboardInterrupt()])
def test_writer_error_propagates_and_removes_the_temp_file(model_dir, drive, tmp_path, monkeypatch, exc):
    from fewshotv2v.video import VideoWriter

    real_write, calls = VideoWriter.write, {"n": 0}

    def failing_write(self, image):
        calls["n"] += 1
        if calls["n"] == 3:
            raise exc
        real_write(self, image)

    monkeypatch.setattr(VideoWriter, "write", failing_write)
    pipe = _pipe(model_dir)
    kps = [person_keypoints((80, 60), 0.4 * i) for i in range(8)]
    with pytest.raises(type(exc)):
        pipe.synthesize(drive=drive, output=tmp_path / "out.mp4", drive_keypoints=kps)
    assert list(tmp_path.iterdir()) == [] and _stage_threads() == []


@pytest.mark.parametrize("producer", ["thread", "process"])
def test_ctrl_c_in_the_consumer_leaves_no_thread_and_no_file(model_dir, drive, tmp_path, producer):
    pipe = _pipe(model_dir)
    pipe.producer = producer
    kps = [person_keypoints((80, 60), 0.4 * i) for i in range(8)]
    before = set(_child_processes())  # other tests' servers may be running

    def on_frame(done, total, fps):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.synthesize(
            drive=drive, output=tmp_path / "out.mp4", side_by_side_output=tmp_path / "side.mp4",
            drive_keypoints=kps, on_frame=on_frame,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == [] and _stage_threads() == []
    assert pipe.last_producer == producer and set(_child_processes()) <= before


def test_overlapped_synthesis_writes_every_frame(model_dir, drive, tmp_path, one_thread):
    from fewshotv2v.video import probe, read_frames

    kps = [person_keypoints((80, 60), 0.4 * i) for i in range(8)]
    outs = {}
    for prefetch in (0, 2):
        out = tmp_path / f"out{prefetch}.mp4"
        result = _pipe(model_dir, prefetch=prefetch).synthesize(drive=drive, output=out, drive_keypoints=kps)
        assert result.frames == 8 and probe(out).num_frames == 8
        outs[prefetch] = [f.image for f in read_frames(out)]
    # Same frames in the same order (the encoder is deterministic on identical input).
    assert all(np.array_equal(a, b) for a, b in zip(outs[0], outs[2], strict=True))
    assert _stage_threads() == []


# ---- the producer in a process of its own ---------------------------------------------------------------
def test_a_producer_process_gives_the_frames_and_counts_of_the_series(model_dir, drive, one_thread):
    kps = [person_keypoints((80, 60), 0.4 * i) for i in range(8)]
    kps[3] = None  # a held frame: the counts come back with the frames
    serial, in_process = _pipe(model_dir, prefetch=0), _pipe(model_dir)
    in_process.producer = "process"
    a = list(serial.stream(drive, keypoints=kps, side_by_side=True))
    b = list(in_process.stream(drive, keypoints=kps, side_by_side=True))
    assert in_process.last_producer == "process" and serial.last_producer == "serial"
    assert len(a) == len(b) == 8
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert serial.last_stats == in_process.last_stats and in_process.last_stats.frames_held == 1
    assert _stage_threads() == []


def test_synthesize_starts_the_producer_process_before_the_references_and_stops_it_on_an_error(
    model_dir, drive, tmp_path, monkeypatch
):
    """The child's start (an interpreter, numpy, PyAV) overlaps `set_references`; a bad reference leaves
    neither a process nor a file behind."""
    from fewshotv2v import Pipeline
    from fewshotv2v.inference import overlap

    pipe = _pipe(model_dir)
    pipe.producer = "process"
    kps = [person_keypoints((80, 60), 0.4 * i) for i in range(8)]
    events, set_references = [], Pipeline.set_references
    born = overlap.ProducerProcess.__init__

    def start(self, *args, **kw):
        born(self, *args, **kw)
        events.append(("process", self.process.pid))

    def references(self, *args, **kw):
        events.append(("references", None))
        return set_references(self, *args, **kw)

    monkeypatch.setattr(overlap.ProducerProcess, "__init__", start)
    monkeypatch.setattr(Pipeline, "set_references", references)
    before = set(_child_processes())
    img = scene_image()
    result = pipe.synthesize(
        ref=img, ref_keypoints=[person_keypoints(img.shape[:2])], drive=drive, output=tmp_path / "a.mp4",
        drive_keypoints=kps,
    )  # fmt: skip
    assert result.frames == 8 and pipe.last_producer == "process"
    assert [kind for kind, _ in events] == ["process", "references"]
    events.clear()
    with pytest.raises(InputError):
        pipe.synthesize(
            ref=tmp_path / "missing.jpg", drive=drive, output=tmp_path / "b.mp4", drive_keypoints=kps
        )
    assert [kind for kind, _ in events] == ["process", "references"]
    assert set(_child_processes()) <= before and not (tmp_path / "b.mp4").exists()
    assert _stage_threads() == []
    fresh = Pipeline.from_pretrained(model_dir, device="cpu", backend="none")  # no references at all
    with pytest.raises(InputError, match="needs ref="):
        fresh.synthesize(drive=drive, output=tmp_path / "c.mp4", drive_keypoints=kps)
    assert not (tmp_path / "c.mp4").exists()


def test_nobody_in_the_first_seconds_is_the_same_one_line_error_from_a_process(model_dir, tmp_path):
    from fewshotv2v.errors import NoPersonError
    from fewshotv2v.video import write_test_video

    empty = write_test_video(tmp_path / "empty.mp4", [scene_image((80, 60), i) for i in range(24)], 10.0)
    pipe = _pipe(model_dir)
    pipe.producer = "process"
    with pytest.raises(NoPersonError, match=r"^no person detected in the first 20 frames \(2 s\)"):
        list(pipe.stream(empty, keypoints=[None] * 24))
    assert pipe.last_producer == "process" and _stage_threads() == []


def test_jobs_a_process_cannot_redo_fall_back_to_a_thread(model_dir, drive):
    from fewshotv2v.semantics.backends import register_backend, unregister_backend

    hw = (80, 60)
    pipe = _pipe(model_dir)
    pipe.producer = "process"
    frames = [scene_image(hw, seed=i) for i in range(3)]  # arrays in memory: nothing to reopen
    assert len(list(pipe.stream(frames, keypoints=[person_keypoints(hw)] * 3))) == 3
    assert pipe.last_producer == "thread"
    kps = iter([person_keypoints(hw)] * 8)  # an iterator of keypoints cannot be sent along
    assert len(list(pipe.stream(drive, keypoints=kps))) == 8 and pipe.last_producer == "thread"
    register_backend("fake-process", lambda **kw: FakeBackend())  # unknown in another process
    try:
        plugin = _pipe(model_dir, backend="fake-process")
        plugin.producer = "process"
        assert len(list(plugin.stream(drive))) == 8 and plugin.last_producer == "thread"
    finally:
        unregister_backend("fake-process")


def test_auto_takes_a_process_for_long_videos_with_keypoints_on_two_cores_or_more(model_dir, monkeypatch):
    from fewshotv2v.errors import ConfigError
    from fewshotv2v.inference.driving import DriveSource
    from fewshotv2v.inference.producer import PROCESS_MIN_FRAMES, choose_producer

    def source(n, *, given=True, reopen=True):
        return DriveSource([], num_frames=n, keypoints_given=given, reopen={"drive": "x"} if reopen else None)

    long = PROCESS_MIN_FRAMES
    assert choose_producer("auto", source(long), "mediapipe", cores=2) == "process"  # keypoints given
    assert choose_producer("auto", source(None), "none", cores=2) == "process"  # length unknown
    assert choose_producer("auto", source(long - 1), "none", cores=2) == "thread"  # too short to pay
    assert choose_producer("auto", source(long), "none", cores=1) == "thread"  # nothing to overlap on
    assert choose_producer("auto", source(long, given=False), "mediapipe", cores=2) == "thread"
    assert choose_producer("process", source(long, given=False), "mediapipe", cores=1) == "process"
    assert choose_producer("process", source(long, given=False), object(), cores=4) == "thread"
    assert choose_producer("process", source(long, reopen=False), "none", cores=4) == "thread"
    assert choose_producer("thread", source(long), "none", cores=4) == "thread"
    monkeypatch.setattr("sys.executable", "")  # Python embedded in another program: nothing to start
    assert choose_producer("process", source(long), "none", cores=4) == "thread"
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="producer must be one of"):
        choose_producer("fork", source(long), "none")
    with pytest.raises(ConfigError, match="producer must be one of"):
        from fewshotv2v import Pipeline

        Pipeline.from_pretrained(model_dir, device="cpu", backend="none", producer="fork")

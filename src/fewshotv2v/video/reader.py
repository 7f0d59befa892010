"""Streaming video reader (PyAV): frames with timestamps, VFR-safe, rotation applied."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from pathlib import Path

import av
from av.video.reformatter import Colorspace

from fewshotv2v.errors import InputError
from fewshotv2v.video.hdr import hdr_to_sdr, hdr_transfer
from fewshotv2v.video.images import (
    _short,
    fit_size,
    is_image_file,
    list_frame_files,
    read_image,
    resize_image,
    rotate_image,
)
from fewshotv2v.video.types import _AV_ERRORS, DEFAULT_FOLDER_FPS, Frame, VideoInfo

# --------------------------------------------------------------------------------------------------
# Probing and reading
# --------------------------------------------------------------------------------------------------


def _open_input(path: Path):
    if not path.exists():
        raise InputError(f"file not found: {path}")
    try:
        container = av.open(str(path))
    except _AV_ERRORS as exc:
        raise InputError(f"not a video (or a corrupt file): {path} ({_short(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"no video stream in {path}")
    return container


def _stream_fps(stream) -> float:
    """Nominal rate: average_rate, else guessed_rate, else base_rate, else 25 (timestamps stay the truth)."""
    for rate in (stream.average_rate, stream.guessed_rate, getattr(stream, "base_rate", None)):
        if rate is not None and 0 < float(rate) < 1000:
            return float(rate)
    return DEFAULT_FOLDER_FPS


def probe(path: str | Path) -> VideoInfo:
    """Describe a video, an image or a folder of frames; decodes the first frame (raises if none decodes)."""
    path = Path(path)
    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise InputError(f"no image files in folder {path}")
        h, w = read_image(files[0]).shape[:2]
        n = len(files)
        return VideoInfo(DEFAULT_FOLDER_FPS, w, h, n, n / DEFAULT_FOLDER_FPS, 0, False, False)
    if is_image_file(path):
        h, w = read_image(path).shape[:2]
        return VideoInfo(DEFAULT_FOLDER_FPS, w, h, 1, None, 0, False, True)
    with _open_input(path) as container:
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        first = next(_decode_safely(container, stream, _Counter(), path), None)
        if first is None:
            raise InputError(f"no decodable frames in {path} (empty or corrupt video)")
        rotation = int(first.rotation or 0)
        w, h = first.width, first.height
        if rotation % 180:
            w, h = h, w
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        num = stream.frames or (round(duration * fps) if duration else None)
        return VideoInfo(fps, w, h, num or None, duration, rotation, bool(container.streams.audio), False)


_MATRIX_UNSPECIFIED = 2  # matrix_coefficients 2 (ITU-T H.273): the stream does not say; PyAV names no 2


def _untagged_matrix(frame: av.VideoFrame) -> Colorspace | None:
    """The colour matrix to assume for a YUV frame whose stream does not say (None: FFmpeg's BT.601).

    Players guess by size (mpv, VLC and browsers: BT.709 from 1280 wide or 577 tall, the HD encoders'
    default), and an HD encoder that leaves the tag out almost always used BT.709: read as FFmpeg's
    BT.601 its pure red comes out (232, 0, 1). Full-range `yuvj` frames (JPEG-style, BT.601 by JFIF) and
    RGB frames keep FFmpeg's reading."""
    name = frame.format.name
    if int(frame.colorspace) != _MATRIX_UNSPECIFIED or not name.startswith("yuv") or name.startswith("yuvj"):
        return None
    return Colorspace.ITU709 if frame.width >= 1280 or frame.height > 576 else None


class _Counter:
    def __init__(self) -> None:
        self.skipped = 0


def _decode_safely(container, stream, counter: _Counter, path: Path) -> Iterator[av.VideoFrame]:
    """Decode packet by packet; an undecodable packet is skipped and counted, not fatal."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except _AV_ERRORS:  # a broken container chunk: stop here, keep what was decoded
            counter.skipped += 1
            return
        try:
            frames = packet.decode()
        except _AV_ERRORS:
            counter.skipped += 1
            continue
        for frame in frames:
            if getattr(frame, "is_corrupt", False):
                counter.skipped += 1
                continue
            yield frame


class VideoReader:
    """Streaming reader over a video file, an image file (one frame) or a folder of frames (sorted).

    Iterating yields `Frame(index, time, image uint8 (H, W, 3))` with rotation applied. `time` is the
    source timestamp in seconds (`frame.time`, so VFR streams keep their true timing; frame folders use
    `folder_fps`). `size=(width, height)` or `max_size` resizes on decode; `start`/`end` (seconds) and
    `max_frames` limit the range; `fps` resamples by timestamps (nearest frame, duplicates or drops).
    `only` (frame indices): just those frames are yielded, with their indices; the others are decoded
    (a video needs them) but not converted to RGB, which is most of a 4K or HDR frame's cost (picking a
    few reference frames from a phone video). After (or during) iteration `skipped_frames` counts
    undecodable frames that were skipped.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        size: tuple[int, int] | None = None,
        max_size: int | None = None,
        start: float | None = None,
        end: float | None = None,
        max_frames: int | None = None,
        fps: float | None = None,
        folder_fps: float = DEFAULT_FOLDER_FPS,
        only: Collection[int] | None = None,
    ):
        self.path = Path(path)
        self.size, self.max_size = size, max_size
        self.start, self.end, self.max_frames = start, end, max_frames
        self.fps, self.folder_fps = fps, folder_fps
        if fps is not None and fps <= 0:
            raise InputError(f"fps must be positive, got {fps}")
        if fps is not None and only is not None:
            raise ValueError("only= picks source frames; it does not combine with fps=")
        self.only = None if only is None else frozenset(only)
        self._counter = _Counter()

    @property
    def skipped_frames(self) -> int:
        return self._counter.skipped

    def __iter__(self) -> Iterator[Frame]:
        frames = self._source_frames()
        if self.fps is not None:
            frames = _resample(frames, self.fps, self.start)
        for count, frame in enumerate(frames):
            if self.max_frames is not None and count >= self.max_frames:
                return
            if frame.image is not None:  # None: a frame `only` leaves out
                yield Frame(count, frame.time, frame.image)

    def _wanted(self, n: int) -> bool:
        return self.only is None or n in self.only

    def _target_size(self, width: int, height: int) -> tuple[int, int]:
        return self.size if self.size is not None else fit_size(width, height, self.max_size)

    def _in_range(self, t: float) -> int:
        """-1 before start, 0 inside, 1 past end."""
        if self.start is not None and t < self.start - 1e-6:
            return -1
        if self.end is not None and t >= self.end - 1e-6:
            return 1
        return 0

    def _source_frames(self) -> Iterator[Frame]:
        if self.path.is_dir():
            files = list_frame_files(self.path)
            if not files:
                raise InputError(f"no image files in folder {self.path}")
            yield from self._image_frames(files, self.folder_fps)
        elif is_image_file(self.path):
            yield from self._image_frames([self.path], self.folder_fps)
        else:
            yield from self._video_frames()

    def _image_frames(self, files: list[Path], fps: float) -> Iterator[Frame]:
        n = 0  # frames in range so far: the index `Frame`s get
        for i, file in enumerate(files):
            t = i / fps
            where = self._in_range(t)
            if where < 0:
                continue
            if where > 0:
                return
            wanted, n = self._wanted(n), n + 1
            if not wanted:
                yield Frame(i, t, None)
                continue
            image = read_image(file)
            yield Frame(i, t, resize_image(image, *self._target_size(image.shape[1], image.shape[0])))

    def _video_frames(self) -> Iterator[Frame]:
        with _open_input(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame + slice threads; decoding is often the bottleneck
            fps = _stream_fps(stream)
            t0 = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
            if self.start:
                # Seek to the keyframe before `start`, then decode forward (frames before it are dropped).
                with contextlib.suppress(*_AV_ERRORS):
                    container.seek(int((self.start + t0) / stream.time_base), stream=stream, backward=True)
            n = decoded = 0
            last_t = 0.0
            stopped = False  # at `end`: the rest of the file is not read, so nothing to compare
            for av_frame in _decode_safely(container, stream, self._counter, self.path):
                decoded += 1
                if av_frame.time is not None:
                    t = av_frame.time - t0
                else:  # no timestamp: continue from the previous one at the nominal rate
                    t = last_t + 1.0 / fps if decoded > 1 else 0.0
                last_t = t
                where = self._in_range(t)
                if where < 0:
                    continue
                if where > 0:
                    stopped = True
                    break
                if not self._wanted(n):
                    yield Frame(n, t, None)
                    n += 1
                    continue
                rotation = int(av_frame.rotation or 0)
                w, h = av_frame.width, av_frame.height
                dw, dh = (h, w) if rotation % 180 else (w, h)  # displayed size
                tw, th = self._target_size(dw, dh)
                # How to read the colours, decided on the stored frame (the untagged guess is by its size).
                matrix, transfer = _untagged_matrix(av_frame), hdr_transfer(av_frame)
                if (tw, th) != (dw, dh):
                    rw, rh = (th, tw) if rotation % 180 else (tw, th)  # resize before rotating
                    interp = "AREA" if tw * th < dw * dh else "BILINEAR"
                    av_frame = av_frame.reformat(width=rw, height=rh, interpolation=interp)  # same format
                if transfer is not None:
                    rgb = hdr_to_sdr(av_frame, transfer)
                else:
                    rgb = av_frame.to_ndarray(format="rgb24", src_colorspace=matrix)
                image = rotate_image(rgb, rotation)
                yield Frame(n, t, image)
                n += 1
            if decoded == 0:
                raise InputError(f"no decodable frames in {self.path} (empty or corrupt video)")
            if not stopped:
                _warn_if_truncated(
                    self.path, stream, decoded, self._counter.skipped, last_t, seeked=bool(self.start)
                )


def _warn_if_truncated(
    path: Path, stream, decoded: int, skipped: int, last_t: float, *, seeked: bool
) -> None:
    """The stream ended before the container says it should: a `FewShotV2VWarning` with the counts (the
    CLI prints it as one `warning:` line). After a seek the frames before it were never decoded, so
    the last timestamp is compared with the stream's duration instead."""
    import warnings

    from fewshotv2v.errors import FewShotV2VWarning

    expected = int(stream.frames or 0)
    if not seeked and expected and decoded + skipped < expected:  # skipped ones are counted elsewhere
        message = (
            f"{path}: decoded {decoded} of the {expected} frames its header lists (truncated or damaged?)"
        )
    else:
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        step = 1.0 / _stream_fps(stream)
        if not (seeked and duration and last_t + 2 * step < duration - step):
            return
        message = f"{path}: the video stops at {last_t:.2f} s of {duration:.2f} s (truncated or damaged?)"
    warnings.warn(message, FewShotV2VWarning, stacklevel=4)


def _resample(frames: Iterator[Frame], fps: float, start: float | None) -> Iterator[Frame]:
    """Constant-rate output at `fps` from timestamped frames: for each target time pick the nearest source
    frame (one frame of look-ahead, so it streams)."""
    step = 1.0 / fps
    prev: Frame | None = None
    before: float | None = None  # time of the frame before `prev`
    target = 0.0
    for cur in frames:
        if prev is None:
            prev = cur
            target = start if start is not None else cur.time
            continue
        mid = 0.5 * (prev.time + cur.time)
        while target < mid - 1e-9:
            yield Frame(0, target, prev.image)
            target += step
        before, prev = prev.time, cur
    if prev is not None:
        # The last source frame lasts one source interval (or one output step if it is alone).
        last = prev.time - before if before is not None else step
        while target < prev.time + max(last, 1e-6) - 1e-9:
            yield Frame(0, target, prev.image)
            target += step


def read_frames(path: str | Path, **kwargs) -> Iterator[Frame]:
    """Stream `Frame`s from a video, an image or a folder of frames (see `VideoReader` for options)."""
    return iter(VideoReader(path, **kwargs))

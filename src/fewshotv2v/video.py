"""Video and image I/O with PyAV: streaming reader, streaming H.264 writer with audio passthrough.

Few-shot vid2vid (Wang et al., 2019) turns a *driving video* into a synthesized video frame by frame, so
every stage streams: `read_frames` is a generator and `VideoWriter` encodes each frame as it arrives; a whole
video is never held in memory. Only PyAV is used (no ffmpeg subprocess, no OpenCV).

numpy frames are `uint8 (H, W, 3)` RGB everywhere (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fewshotv2v.errors import InputError, OutputExistsError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".gif", ".flv", ".ts")
DEFAULT_FOLDER_FPS = 25.0

# PyAV raises these for unreadable input; `av.error.FFmpegError` covers InvalidData, EOF, etc.
_AV_ERRORS = (av.error.FFmpegError, UnicodeDecodeError)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: `index` counts the frames yielded (0, 1, ...), `time` is in seconds."""

    index: int
    time: float
    image: np.ndarray  # uint8 (H, W, 3) RGB


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` finds. `width`/`height` are after rotation; `num_frames` may be an estimate or None."""

    fps: float
    width: int
    height: int
    num_frames: int | None
    duration: float | None
    rotation: int
    has_audio: bool
    is_image: bool


# --------------------------------------------------------------------------------------------------
# Images (single files): JPEG/PNG through PyAV's codecs, no extra image library.
# --------------------------------------------------------------------------------------------------


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, *, gray: bool = False) -> np.ndarray:
    """Read an image file -> `uint8 (H, W, 3)` RGB (or `uint8 (H, W)` with `gray=True`).

    Rotation metadata (EXIF orientation is not exposed by FFmpeg's image demuxers) is not applied.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"not an image: {path}")
            for frame in container.decode(video=0):
                return frame.to_ndarray(format="gray" if gray else "rgb24")
    except _AV_ERRORS as exc:
        raise InputError(f"cannot read image {path}: {_short(exc)}") from exc
    raise InputError(f"cannot read image {path}: no picture in the file")


def encode_image(image: np.ndarray, suffix: str = ".png", *, quality: int = 95) -> bytes:
    """Encode `uint8 (H, W, 3)` RGB or `uint8 (H, W)` gray to JPEG or PNG bytes (PyAV codecs).

    JPEG `quality` (1..100) maps to the MJPEG quantiser scale 1..31 (95 -> 2, visually lossless).
    """
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected uint8 (H, W, 3) or (H, W), got {image.dtype} {image.shape}")
    gray = image.ndim == 2
    height, width = image.shape[:2]
    frame = av.VideoFrame.from_ndarray(image, format="gray" if gray else "rgb24")
    suffix = suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        ctx = av.CodecContext.create("mjpeg", "w")
        # Full-range 4:4:4 keeps thin skeleton lines and colours; the JPEG is still small.
        ctx.pix_fmt = "gray" if gray else "yuvj444p"
        q = max(1, min(31, round(1 + (100 - quality) * 30 / 99)))
        ctx.options = {"qmin": str(q), "qmax": str(q)}
    elif suffix == ".png":
        ctx = av.CodecContext.create("png", "w")
        ctx.pix_fmt = "gray" if gray else "rgb24"
    else:
        raise ValueError(f"unsupported image format {suffix!r} (use .jpg or .png)")
    ctx.width, ctx.height = width, height
    ctx.time_base = Fraction(1, 25)
    frame = frame.reformat(format=ctx.pix_fmt)
    packets = ctx.encode(frame) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


def write_image(path: str | Path, image: np.ndarray, *, quality: int = 95) -> Path:
    """Write an image (format from the suffix, `.jpg` or `.png`) atomically (temp file + rename)."""
    path = Path(path)
    data = encode_image(image, path.suffix, quality=quality)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def _short(exc: BaseException) -> str:
    """One-line reason from a PyAV error (drop the errno prefix and the file name)."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or exc.__class__.__name__


def resize_image(image: np.ndarray, width: int, height: int, *, nearest: bool = False) -> np.ndarray:
    """Resize `uint8 (H, W, 3)` (or `(H, W)`) with swscale: area filter when shrinking, else bilinear;
    `nearest=True` for label maps (class ids must not be blended)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    fmt = "gray" if image.ndim == 2 else "rgb24"
    interp = "POINT" if nearest else ("AREA" if width * height < w * h else "BILINEAR")
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
    return frame.reformat(width=width, height=height, interpolation=interp).to_ndarray(format=fmt)


def rotate_image(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (`frame.rotation`, degrees counter-clockwise, as FFmpeg reports it).

    FFmpeg displays a frame with rotation -90 (a portrait phone video) turned 90 degrees clockwise;
    `np.rot90` with positive k turns counter-clockwise, so k = rotation / 90.
    """
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def fit_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most `max_size` (never up)."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files in a folder, in natural order (frame2 before frame10)."""
    import re

    def key(p: Path):
        return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]

    files = [
        p for p in Path(folder).iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith(".")
    ]
    return sorted(files, key=key)


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
    After (or during) iteration `skipped_frames` counts undecodable frames that were skipped.
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
    ):
        self.path = Path(path)
        self.size, self.max_size = size, max_size
        self.start, self.end, self.max_frames = start, end, max_frames
        self.fps, self.folder_fps = fps, folder_fps
        if fps is not None and fps <= 0:
            raise InputError(f"fps must be positive, got {fps}")
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
            yield Frame(count, frame.time, frame.image)

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
        for i, file in enumerate(files):
            t = i / fps
            where = self._in_range(t)
            if where < 0:
                continue
            if where > 0:
                return
            image = read_image(file)
            image = resize_image(image, *self._target_size(image.shape[1], image.shape[0]))
            yield Frame(i, t, image)

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
                    break
                rotation = int(av_frame.rotation or 0)
                w, h = av_frame.width, av_frame.height
                dw, dh = (h, w) if rotation % 180 else (w, h)  # displayed size
                tw, th = self._target_size(dw, dh)
                if (tw, th) != (dw, dh):
                    rw, rh = (th, tw) if rotation % 180 else (tw, th)  # resize before rotating
                    interp = "AREA" if tw * th < dw * dh else "BILINEAR"
                    av_frame = av_frame.reformat(width=rw, height=rh, interpolation=interp)
                image = rotate_image(av_frame.to_ndarray(format="rgb24"), rotation)
                yield Frame(n, t, image)
                n += 1
            if decoded == 0:
                raise InputError(f"no decodable frames in {self.path} (empty or corrupt video)")


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


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

# Audio codecs the MP4/MOV muxer takes as they are; anything else is transcoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


def _rate(fps: float) -> Fraction:
    """29.97 -> 30000/1001 style exact rates; 25.0 -> 25."""
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def _prepare_output(path: Path, overwrite: bool) -> None:
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise InputError(f"output is a folder: {path}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {path} (use --overwrite)")


def _even_pad(image: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row / column if odd."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return image


class VideoWriter:
    """Streaming H.264 (libx264, yuv420p, crf) MP4 writer with optional audio passthrough.

    Use as a context manager and call `.write(image uint8 (H, W, 3))` per frame. It writes
    `.<name>.tmp-XXXX.mp4` next to the output and renames it on a clean exit; on any exception (Ctrl-C
    included) the temp file is removed and nothing is left behind. Odd sizes are padded to even.

    `audio_from`: a media file whose first audio track is copied (remuxed, or transcoded to AAC when the
    container refuses the codec), starting at `audio_offset` seconds of the source and trimmed to the video.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        *,
        crf: int = 18,
        audio_from: str | Path | None = None,
        audio_offset: float = 0.0,
        overwrite: bool = False,
        preset: str = "medium",
    ):
        self.path = Path(path)
        self.rate = _rate(fps)
        self.crf, self.preset = crf, preset
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.audio_offset = float(audio_offset or 0.0)
        self.overwrite = overwrite
        self.frames_written = 0
        self._out = None
        self._video = None
        self._size: tuple[int, int] | None = None
        self._tmp: Path | None = None
        self._audio_in = None
        self._audio_out = None
        self._audio_packets: Iterator | None = None
        self._audio_pending = None  # one packet of look-ahead
        self._transcode = False
        _prepare_output(self.path, overwrite)

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        _prepare_output(self.path, self.overwrite)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.tmp-", suffix=".mp4")
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._out = av.open(str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"})
            if self.audio_from is not None:
                self._open_audio()  # the audio stream itself is added after the video stream (index 0)
        except BaseException:
            self.abort()
            raise

    def _open_audio(self) -> None:
        src = self.audio_from
        if not src.is_file():
            raise InputError(f"audio source not found: {src}")
        try:
            self._audio_in = av.open(str(src))
        except _AV_ERRORS as exc:
            raise InputError(f"cannot read audio from {src}: {_short(exc)}") from exc
        if not self._audio_in.streams.audio:
            self._audio_in.close()
            self._audio_in = None  # no audio: a silent video, not an error
            return
        if self.audio_offset > 0:
            with contextlib.suppress(*_AV_ERRORS):
                self._audio_in.seek(int(self.audio_offset * av.time_base), backward=True)
        self._audio_packets = self._audio_in.demux(self._audio_in.streams.audio[0])

    def _add_audio_stream(self) -> None:
        in_audio = self._audio_in.streams.audio[0]
        if in_audio.codec_context.name in _MP4_AUDIO:
            self._audio_out = self._out.add_stream_from_template(in_audio)
        else:
            self._transcode = True
            rate = in_audio.codec_context.sample_rate or 44100
            self._audio_out = self._out.add_stream("aac", rate=rate)
            self._audio_out.codec_context.time_base = Fraction(1, rate)  # needed if opened before the header
            # Source layouts can be "unspecified order" ("1 channels"), which AAC refuses: name it.
            channels = getattr(in_audio.codec_context, "channels", 2) or 2
            self._audio_out.layout = "mono" if channels == 1 else "stereo"

    def write(self, image: np.ndarray) -> None:
        """Encode one `uint8 (H, W, 3)` RGB frame (all frames must have the same size)."""
        if self._out is None:
            raise RuntimeError("VideoWriter is not open (use it as a context manager)")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        image = _even_pad(image)
        h, w = image.shape[:2]
        if self._video is None:
            self._video = self._out.add_stream("libx264", rate=self.rate)
            self._video.width, self._video.height = w, h
            self._video.pix_fmt = "yuv420p"
            self._video.options = {"crf": str(self.crf), "preset": self.preset}
            self._size = (h, w)
            if self._audio_in is not None:
                self._add_audio_stream()
        elif (h, w) != self._size:
            raise ValueError(f"frame size {(h, w)} differs from the first frame's {self._size}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames_written
        frame.time_base = 1 / self.rate
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self.frames_written += 1
        self._mux_audio_until(self.frames_written / self.rate)

    def _mux_audio_until(self, t_end: float) -> None:
        """Copy (or transcode) source audio whose output time is before `t_end` seconds."""
        if self._audio_packets is None:
            return
        t_end = float(t_end)
        while True:
            packet = self._audio_pending
            self._audio_pending = None
            if packet is None:
                try:
                    packet = next(self._audio_packets)
                except (StopIteration, *_AV_ERRORS):
                    self._audio_packets = None
                    return
            if packet.size == 0 or packet.pts is None:  # flush packets carry nothing
                continue
            t = float(packet.pts * packet.time_base) - self.audio_offset
            if t < -1e-9:  # before the video's start
                continue
            if t >= t_end - 1e-9:
                self._audio_pending = packet
                return
            self._emit_audio(packet, t)

    def _emit_audio(self, packet, t: float) -> None:
        if self._transcode:
            try:
                frames = packet.decode()
            except _AV_ERRORS:
                return
            for frame in frames:
                frame.pts = None  # let the encoder count samples
                for out_packet in self._audio_out.encode(frame):
                    self._out.mux(out_packet)
            return
        shift = round(self.audio_offset / packet.time_base)
        packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        packet.stream = self._audio_out
        self._out.mux(packet)

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it into place."""
        if self._out is None:
            return self.path
        try:
            if self._video is None:
                raise InputError(f"no frames were written to {self.path}")
            for packet in self._video.encode(None):  # flush delayed frames (B-frames, lookahead)
                self._out.mux(packet)
            duration = self.frames_written / self.rate
            self._mux_audio_until(duration)  # packets past the video's end are dropped
            if self._transcode and self._audio_out is not None:
                for packet in self._audio_out.encode(None):
                    self._out.mux(packet)
            self._out.close()
            self._out = None
            self._close_audio()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
            os.replace(self._tmp, self.path)
            self._tmp = None
        except BaseException:
            self.abort()
            raise
        return self.path

    def _close_audio(self) -> None:
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None

    def abort(self) -> None:
        """Drop everything written so far (no output file is left)."""
        if self._out is not None:
            with contextlib.suppress(Exception):  # the file is being deleted anyway
                self._out.close()
            self._out = None
        self._close_audio()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def write_test_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    *,
    tone_hz: float | None = None,
    times: list[float] | None = None,
    rotation: int = 0,
    audio_codec: str = "aac",
    sample_rate: int = 16000,
    crf: int = 18,
) -> Path:
    """Write a small H.264 MP4 for tests and demos: optional sine tone (`tone_hz`, AAC by default, lasting
    the whole video), explicit per-frame `times` in seconds (variable frame rate) and a display-matrix
    `rotation` (degrees counter-clockwise, as `frame.rotation` reads back). Not atomic; streams frames."""
    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("write_test_video needs at least one frame")
    tick = Fraction(1, 1000) if times is not None else 1 / _rate(fps)
    fmt = "matroska" if path.suffix == ".mkv" else "mp4"
    with av.open(str(path), "w", format=fmt) as out:
        first = _even_pad(first)
        video = out.add_stream("libx264", rate=_rate(fps))
        video.width, video.height = first.shape[1], first.shape[0]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf)}
        video.codec_context.time_base = tick
        if rotation:
            video.set_display_rotation(rotation)
        tone = _Tone(out, tone_hz, sample_rate, audio_codec) if tone_hz else None
        end = 0.0
        for n, image in enumerate(_chain(first, frames)):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(_even_pad(image)), format="rgb24")
            t = times[n] if times is not None else n / fps
            frame.pts = round(t / tick)
            frame.time_base = tick
            for packet in video.encode(frame):
                out.mux(packet)
            # The frame lasts until the next timestamp (the last one as long as the one before it).
            if times is not None and n + 1 < len(times):
                end = times[n + 1]
            else:
                end = t + (t - times[n - 1] if times is not None and n > 0 else 1 / fps)
            if tone is not None:
                tone.write_until(end)
        for packet in video.encode(None):
            out.mux(packet)
        if tone is not None:
            tone.write_until(end)
            tone.flush()
    return path


def _chain(first, rest):
    yield first
    yield from rest


class _Tone:
    """A 0.3-amplitude mono sine wave encoded in chunks of 1024 samples, kept in step with the video."""

    def __init__(self, out, tone_hz: float, sample_rate: int, codec: str):
        self.out, self.hz, self.rate = out, tone_hz, sample_rate
        self.stream = out.add_stream(codec, rate=sample_rate)
        self.stream.layout = "mono"
        self.done = 0  # samples written

    def write_until(self, t: float) -> None:
        total = int(round(t * self.rate))
        while self.done < total:
            k = np.arange(self.done, min(self.done + 1024, total))
            samples = (0.3 * np.sin(2 * np.pi * self.hz * k / self.rate)).astype(np.float32)[None]  # (1, S)
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.done
            frame.time_base = Fraction(1, self.rate)
            for packet in self.stream.encode(frame):
                self.out.mux(packet)
            self.done += len(k)

    def flush(self) -> None:
        for packet in self.stream.encode(None):
            self.out.mux(packet)

"""Streaming H.264 writer (PyAV) with audio passthrough; atomic output; test-video helper."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from fewshotv2v._files import give_default_mode
from fewshotv2v.errors import InputError, OutputExistsError, check_output_folder
from fewshotv2v.video.images import _short
from fewshotv2v.video.types import _AV_ERRORS

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
    check_output_folder(path)
    if path.is_dir():
        raise InputError(f"output is a folder: {path}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {path} (use --overwrite)")


_TMP_TAG = ".fsv2v-tmp-"  # temp files: .<name>.fsv2v-tmp-<pid>-<random>.mp4 next to the output


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process: alive
        return True
    return True


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files of `path` left by writer processes that no longer run (killed, crashed);
    returns what was removed. Temp files of running processes are left alone. POSIX only (elsewhere
    there is no harmless way to ask whether a pid is alive)."""
    if os.name != "posix" or not path.parent.is_dir():
        return []
    prefix = f".{path.name}{_TMP_TAG}"
    removed = []
    for entry in path.parent.iterdir():
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".mp4")):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished temp file to `path`. Without `overwrite` this never replaces a file that
    appeared meanwhile (another writer of the same output): `os.link` fails if `path` exists, atomically.
    Filesystems without hard links fall back to check-then-rename."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(
            f"output exists: {path} (written by another process meanwhile; use --overwrite)"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                             errno.ENOSYS, errno.EACCES):  # fmt: skip
            raise
        if path.exists():
            raise OutputExistsError(
                f"output exists: {path} (written by another process meanwhile; use --overwrite)"
            ) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def _add_h264_stream(out, rate, width: int, height: int, options: dict[str, str]):
    """An H.264 yuv420p video stream on container `out`, tagged BT.709, limited range (in its VUI), as
    `_yuv_frame` converts.

    Untagged, players guess: FFmpeg (and so this package's reader) and most SD paths take BT.601, browsers
    and mpv take BT.709 for HD sizes, so an untagged BT.601 encode shows reds shifted towards orange and
    greens darker there (pure red read back as (255, 23, 0)). Tagged, every player decodes the same."""
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = options
    ctx = stream.codec_context
    ctx.colorspace, ctx.color_range = Colorspace.ITU709, ColorRange.MPEG
    ctx.color_primaries, ctx.color_trc = ColorPrimaries.BT709, ColorTrc.BT709
    return stream


def _yuv_frame(image: np.ndarray) -> av.VideoFrame:
    """`uint8 (H, W, 3)` RGB (even sides) -> a yuv420p frame by the BT.709 matrix, limited range, tagged
    so (sRGB and BT.709 share their primaries, and their transfer curves are taken as one, as players do)."""
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return rgb.reformat(
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        dst_color_primaries=ColorPrimaries.BT709,
        dst_color_trc=ColorTrc.BT709,
    )


def _even_pad(image: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: repeat the last row / column if odd."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return image


class VideoWriter:
    """Streaming H.264 (libx264, yuv420p, crf) MP4 writer with optional audio passthrough.

    Use as a context manager and call `.write(image uint8 (H, W, 3))` per frame. It writes
    `.<name>.fsv2v-tmp-<pid>-XXXX.mp4` next to the output and renames it on a clean exit; on any exception
    (Ctrl-C, and SIGTERM under the CLI, included) the temp file is removed and nothing is left behind;
    temp files of dead processes (killed with -9, crashed) are removed by the next writer of the same
    output. Without `overwrite` the final rename never replaces a file that appeared meanwhile (another
    writer): `OutputExistsError`. Odd sizes are padded to even.

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
        remove_stale_temps(self.path)
        prefix = f".{self.path.name}{_TMP_TAG}{os.getpid()}-"
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=prefix, suffix=".mp4")
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
            options = {"crf": str(self.crf), "preset": self.preset}
            self._video = _add_h264_stream(self._out, self.rate, w, h, options)
            self._size = (h, w)
            if self._audio_in is not None:
                self._add_audio_stream()
        elif (h, w) != self._size:
            raise ValueError(f"frame size {(h, w)} differs from the first frame's {self._size}")
        frame = _yuv_frame(image)
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
            give_default_mode(self._tmp)  # mkstemp makes 0600 files
            _move_into_place(self._tmp, self.path, self.overwrite)
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
        video = _add_h264_stream(out, _rate(fps), first.shape[1], first.shape[0], {"crf": str(crf)})
        video.codec_context.time_base = tick
        if rotation:
            video.set_display_rotation(rotation)
        tone = _Tone(out, tone_hz, sample_rate, audio_codec) if tone_hz else None
        end = 0.0
        for n, image in enumerate(_chain(first, frames)):
            frame = _yuv_frame(_even_pad(image))
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

"""PyAV reader / writer: round trips, timing, rotation, audio passthrough, atomic output, bad inputs."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction

import av
import numpy as np
import pytest

from fewshotv2v import video as V
from fewshotv2v.errors import InputError, OutputExistsError


def _frames(n: int, h: int = 32, w: int = 48):
    """Frames whose mean brightness encodes the index (survives H.264)."""
    for i in range(n):
        yield np.full((h, w, 3), 20 + 20 * i, np.uint8)


def _audio_duration(path) -> float | None:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        total = 0.0
        for packet in c.demux(c.streams.audio[0]):
            if packet.size and packet.pts is not None:
                total = max(total, float((packet.pts + packet.duration) * packet.time_base))
        return total


def test_round_trip_frame_count_fps_and_content(tmp_path):
    src = V.write_test_video(tmp_path / "a.mp4", _frames(10), fps=10)
    info = V.probe(src)
    assert (info.fps, info.width, info.height, info.num_frames) == (10.0, 48, 32, 10)
    assert not info.has_audio and not info.is_image
    reader = V.VideoReader(src)
    frames = list(reader)
    assert [f.index for f in frames] == list(range(10))
    assert np.allclose([f.time for f in frames], np.arange(10) / 10)
    assert [round(f.image.mean() / 20) for f in frames] == [1 + i for i in range(10)]
    assert reader.skipped_frames == 0


def test_start_end_max_frames_and_resize(tmp_path):
    src = V.write_test_video(tmp_path / "a.mp4", _frames(10), fps=10)
    got = list(V.read_frames(src, start=0.3, end=0.7))
    assert np.allclose([f.time for f in got], [0.3, 0.4, 0.5, 0.6])
    assert [f.index for f in got] == [0, 1, 2, 3]
    assert len(list(V.read_frames(src, max_frames=3))) == 3
    assert next(V.read_frames(src, size=(24, 16))).image.shape == (16, 24, 3)
    assert next(V.read_frames(src, max_size=24)).image.shape == (16, 24, 3)


def test_vfr_timestamps_and_resampling(tmp_path):
    times = [0.0, 0.1, 0.35, 0.4, 0.9]
    src = V.write_test_video(tmp_path / "vfr.mp4", _frames(5), fps=10, times=times)
    got = list(V.read_frames(src))
    assert np.allclose([f.time for f in got], times, atol=1e-3)
    # Resampled to 10 fps by nearest timestamp: the frame at 0.4 covers 0.4..0.6, then 0.9 takes over and,
    # as the last frame, lasts as long as the interval before it (0.5 s, to 1.4 s).
    res = list(V.read_frames(src, fps=10))
    assert np.allclose([f.time for f in res], np.arange(len(res)) / 10)
    brightness = [round(f.image.mean() / 20) for f in res]
    assert brightness == [1, 2, 2, 3, 4, 4, 4] + [5] * 7


def test_only_some_frames_are_converted_and_they_keep_their_indices(tmp_path, monkeypatch):
    """`only=`: picking a few reference frames from a long 4K / HDR phone video converts just those."""
    from fewshotv2v.video import reader

    src = V.write_test_video(tmp_path / "v.mp4", _frames(6), fps=10, tone_hz=0)
    converted = []
    real = reader._untagged_matrix
    monkeypatch.setattr(reader, "_untagged_matrix", lambda f: converted.append(1) or real(f))
    got = list(V.read_frames(src, only={1, 4}))
    assert [f.index for f in got] == [1, 4] and len(converted) == 2
    assert [round(f.image.mean() / 20) for f in got] == [2, 5]  # the frames' own brightness
    assert np.allclose([f.time for f in got], [0.1, 0.4], atol=1e-3)
    assert list(V.read_frames(src, only=())) == [] and len(converted) == 2
    # A folder of frames the same way (the others are not even read).
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(_frames(4)):
        V.write_image(folder / f"{i:03d}.png", image)
    picked = V.read_frames(folder, only=[0, 3])
    assert [(f.index, round(f.image.mean() / 20)) for f in picked] == [(0, 1), (3, 4)]
    with pytest.raises(ValueError):
        V.VideoReader(src, fps=5, only=[1])


def test_rotation_metadata_is_applied_clockwise_for_minus_90(tmp_path):
    img = np.zeros((32, 64, 3), np.uint8)
    img[:16, :16] = 255  # bright top-left corner
    src = V.write_test_video(tmp_path / "rot.mp4", iter([img, img]), fps=10, rotation=-90)
    info = V.probe(src)
    assert info.rotation == -90 and (info.width, info.height) == (32, 64)
    out = next(V.read_frames(src)).image
    # FFmpeg shows rotation -90 (portrait phone video) turned clockwise: top-left goes to top-right.
    assert out.shape == (64, 32, 3)
    assert out[:16, -16:].mean() > 200 and out[:16, :16].mean() < 50
    assert V.rotate_image(img, -90).shape == (64, 32, 3)
    assert np.array_equal(V.rotate_image(img, 90), np.rot90(img))
    # Resize on decode gives the requested displayed size.
    assert next(V.read_frames(src, size=(16, 32))).image.shape == (32, 16, 3)


def test_writer_pads_odd_sizes_and_is_atomic(tmp_path):
    out = tmp_path / "o.mp4"
    with V.VideoWriter(out, 12.5) as w:
        for f in _frames(5, 33, 47):
            assert not out.exists()  # only the temp file exists while writing
            w.write(f)
    info = V.probe(out)
    assert (info.width, info.height, info.num_frames, info.fps) == (48, 34, 5, 12.5)
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"]
    data = out.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: the index comes first
    with pytest.raises(OutputExistsError):
        V.VideoWriter(out, 10)
    with V.VideoWriter(out, 10, overwrite=True) as w:
        w.write(np.zeros((8, 8, 3), np.uint8))
    assert V.probe(out).num_frames == 1


def test_writer_encodes_and_tags_bt709_so_every_player_shows_the_same_colours(tmp_path):
    """Browsers and mpv read an untagged HD H.264 stream as BT.709 while FFmpeg reads it as BT.601: the
    writer converts by the BT.709 matrix and says so in the stream, so saturated colours survive both."""
    from av.video.reformatter import ColorRange, Colorspace

    colours = [(255, 0, 0), (40, 180, 90), (16, 16, 16), (235, 200, 180)]
    img = np.zeros((32, 128, 3), np.uint8)
    for n, c in enumerate(colours):
        img[:, 32 * n : 32 * (n + 1)] = c
    out = tmp_path / "c.mp4"
    with V.VideoWriter(out, 10) as w:
        w.write(img)
    with av.open(str(out)) as f:
        ctx = f.streams.video[0].codec_context
        assert (int(ctx.colorspace), int(ctx.color_range)) == (int(Colorspace.ITU709), int(ColorRange.MPEG))
        frame = next(f.decode(video=0))

        def decoded_as(matrix):
            rgb = frame.reformat(format="rgb24", src_colorspace=matrix, src_color_range=ColorRange.MPEG)
            return rgb.to_ndarray().astype(int)

        as709, as601 = decoded_as(Colorspace.ITU709), decoded_as(Colorspace.ITU601)
    centres = [(16, 32 * n + 16) for n in range(len(colours))]
    assert all(np.abs(as709[y, x] - c).max() <= 4 for (y, x), c in zip(centres, colours, strict=True))
    assert np.abs(as601[16, 16] - colours[0]).max() > 15  # the matrices differ: the tag matters
    # This package's reader follows the tag.
    back = next(V.read_frames(out)).image.astype(int)
    assert all(np.abs(back[y, x] - c).max() <= 4 for (y, x), c in zip(centres, colours, strict=True))


def _untagged_video(path, size, matrix):
    """One frame of pure red (w, h = size) encoded by `matrix`, the stream not saying which (as many
    encoders write it)."""
    from av.video.reformatter import ColorRange

    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[..., 0] = 255
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace=matrix, dst_color_range=ColorRange.MPEG)
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return path


def test_reader_takes_untagged_hd_video_as_bt709_and_sd_as_bt601(tmp_path):
    """As players do: an untagged HD stream was (almost always) encoded BT.709, an SD one BT.601. Read by
    FFmpeg's BT.601 default, the HD red would be (232, 0, 1)."""
    from av.video.reformatter import Colorspace

    hd = _untagged_video(tmp_path / "hd.mp4", (1280, 720), Colorspace.ITU709)
    sd = _untagged_video(tmp_path / "sd.mp4", (640, 480), Colorspace.ITU601)
    with av.open(str(hd)) as f:
        assert int(next(f.decode(video=0)).colorspace) == 2  # unspecified
    for path in (hd, sd):
        red = next(V.read_frames(path)).image[100, 100].astype(int)
        assert np.abs(red - (255, 0, 0)).max() <= 3, (path.name, red)
    # The guess is made on the stored size, so a smaller decode of the HD video reads the same colour.
    small = next(V.read_frames(hd, size=(64, 36))).image[10, 10].astype(int)
    assert np.abs(small - (255, 0, 0)).max() <= 3


@pytest.mark.parametrize("hard_links", [True, False])
def test_writer_never_clobbers_an_output_that_appeared_meanwhile(tmp_path, monkeypatch, hard_links):
    """Two writers of one output without overwrite: the one that finishes second fails, the first one's
    file stays (checked atomically with os.link; check-then-rename where hard links are unsupported)."""
    import errno
    import os

    if not hard_links:

        def no_links(src, dst, *a, **k):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "o.mp4"
    writer = V.VideoWriter(out, 10)
    with pytest.raises(OutputExistsError, match="another process"), writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        out.write_bytes(b"the other writer's video")
    assert out.read_bytes() == b"the other writer's video"
    assert [p.name for p in tmp_path.iterdir()] == ["o.mp4"]  # no temp file left
    with V.VideoWriter(out, 10, overwrite=True) as w:  # asked for: replaced
        w.write(np.zeros((16, 16, 3), np.uint8))
    assert V.probe(out).num_frames == 1 and [p.name for p in tmp_path.iterdir()] == ["o.mp4"]


def test_writer_removes_stale_temp_files_of_dead_processes(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)
    out = tmp_path / "o.mp4"
    stale = tmp_path / f".o.mp4.fsv2v-tmp-{dead_pid}-abc123.mp4"
    running = tmp_path / f".o.mp4.fsv2v-tmp-{os.getpid()}-def456.mp4"  # a live writer: kept
    other = tmp_path / f".x.mp4.fsv2v-tmp-{dead_pid}-abc123.mp4"  # another output's: not ours to judge
    for p in (stale, running, other):
        p.write_bytes(b"partial")
    with V.VideoWriter(out, 10) as w:
        temps = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".o.mp4.fsv2v-tmp-{os.getpid()}-")]
        assert len(temps) == 2  # the live one and our own, named after our pid
        w.write(np.zeros((16, 16, 3), np.uint8))
    assert not stale.exists() and running.exists() and other.exists() and out.exists()


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_writer_exception_leaves_no_file(tmp_path, exc):
    out = tmp_path / "o.mp4"
    with pytest.raises(exc), V.VideoWriter(out, 10) as w:
        w.write(np.zeros((16, 16, 3), np.uint8))
        raise exc()
    assert list(tmp_path.iterdir()) == []


def test_writer_missing_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        V.VideoWriter(tmp_path / "nope" / "o.mp4", 10)


def test_audio_passthrough_trimmed_and_offset(tmp_path):
    src = V.write_test_video(tmp_path / "s.mp4", _frames(20), fps=10, tone_hz=440)
    assert V.probe(src).has_audio and _audio_duration(src) == pytest.approx(2.0, abs=0.1)
    out = tmp_path / "o.mp4"
    with V.VideoWriter(out, 10, audio_from=src, audio_offset=0.5) as w:
        for f in V.read_frames(src, start=0.5, end=1.5):
            w.write(f.image)
    assert V.probe(out).num_frames == 10
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
    duration = _audio_duration(out)
    # Kept, starts at 0, and trimmed to the 1 s video (to within one AAC packet of 1024 samples).
    assert duration is not None and 0.9 <= duration <= 1.0 + 1024 / 16000 + 1e-6
    with av.open(str(out)) as c:
        first = next(p for p in c.demux(c.streams.audio[0]) if p.size)
        assert float(first.pts * first.time_base) < 0.07


def test_audio_transcoded_to_aac_when_mp4_refuses_codec(tmp_path):
    src = V.write_test_video(tmp_path / "s.mkv", _frames(10), fps=10, tone_hz=300, audio_codec="pcm_s16le")
    out = tmp_path / "o.mp4"
    with V.VideoWriter(out, 10, audio_from=src) as w:
        for f in V.read_frames(src):
            w.write(f.image)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    assert 0.8 <= _audio_duration(out) <= 1.1


def test_images_and_frame_folders(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    V.write_image(tmp_path / "x.png", img)
    assert np.array_equal(V.read_image(tmp_path / "x.png"), img)
    V.write_image(tmp_path / "x.jpg", np.full((20, 30, 3), 100, np.uint8))
    assert abs(V.read_image(tmp_path / "x.jpg").astype(int) - 100).max() <= 2
    frames = list(V.read_frames(tmp_path / "x.png"))
    assert len(frames) == 1 and frames[0].time == 0.0
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (1, 2, 10):  # natural order: 2 before 10
        V.write_image(folder / f"f{i}.png", np.full((8, 8, 3), i * 10, np.uint8))
    got = list(V.read_frames(folder, folder_fps=5))
    assert [int(f.image[0, 0, 0]) for f in got] == [10, 20, 100]
    assert np.allclose([f.time for f in got], [0, 0.2, 0.4])
    assert V.probe(folder).num_frames == 3


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("garbage.mp4", b"not a video at all" * 20, "not a video"),
        ("empty.mp4", b"", "not a video"),
        ("missing.mp4", None, "not found"),
    ],
)
def test_bad_inputs_raise_input_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        list(V.read_frames(path))
    with pytest.raises(InputError, match=message):
        V.probe(path)


def test_video_with_zero_frames(tmp_path):
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 16
        out.start_encoding()
    with pytest.raises(InputError, match="no decodable frames"):
        list(V.read_frames(path))
    with pytest.raises(InputError, match="no decodable frames"):
        V.probe(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "a.m4a"
    with av.open(str(path), "w", format="mp4") as out:
        tone = V._Tone(out, 440, 16000, "aac")
        tone.write_until(0.3)
        tone.flush()
    with pytest.raises(InputError, match="no video stream"):
        list(V.read_frames(path))


def test_corrupt_frames_mid_file_are_skipped_and_counted(tmp_path):
    rng = np.random.default_rng(0)
    noisy = (rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(12))
    src = V.write_test_video(tmp_path / "a.mp4", noisy, fps=10)
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 1500] = b"\x55" * 1500  # damage the middle of the mdat
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    reader = V.VideoReader(bad)
    frames = list(reader)
    assert 0 < len(frames) < 12
    assert reader.skipped_frames > 0


def test_truncated_video_warns_with_the_counts(tmp_path):
    from fewshotv2v.errors import FewShotV2VWarning

    full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
    with V.VideoWriter(full, 10) as w:  # +faststart: the header with the frame count comes first
        for i in range(40):
            w.write(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(FewShotV2VWarning, match=r"decoded \d+ of the 40 frames"):
        n = len(list(V.VideoReader(cut)))
    assert 0 < n < 40
    with pytest.warns(FewShotV2VWarning, match=r"stops at [\d.]+ s of 4.00 s"):
        list(V.VideoReader(cut, start=0.5))  # after a seek: by time
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FewShotV2VWarning)
        assert len(list(V.VideoReader(full))) == 40  # complete files: no warning
        assert len(list(V.VideoReader(full, start=0.5))) == 35
        assert len(list(V.VideoReader(cut, end=0.5))) == 5  # stopped before the cut: nothing to say


def _tiff_with_orientation(orientation: int, endian: str = "<") -> bytes:
    """A TIFF block with one IFD entry: orientation (SHORT)."""
    order = b"II" if endian == "<" else b"MM"
    entry = struct.pack(endian + "HHIHH", 0x0112, 3, 1, orientation, 0)
    return order + struct.pack(endian + "HIH", 42, 8, 1) + entry + struct.pack(endian + "I", 0)


def _with_exif(encoded: bytes, suffix: str, tiff: bytes) -> bytes:
    """A JPEG (APP1 segment after SOI) or PNG (`eXIf` chunk after IHDR) with `tiff` as its EXIF."""
    if suffix == ".jpg":
        payload = b"Exif\x00\x00" + tiff
        return encoded[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + encoded[2:]
    chunk = b"eXIf" + tiff
    after_ihdr = 8 + 12 + struct.unpack(">I", encoded[8:12])[0]
    crc = struct.pack(">I", zlib.crc32(chunk))
    return encoded[:after_ihdr] + struct.pack(">I", len(tiff)) + chunk + crc + encoded[after_ihdr:]


# stored pixels for each orientation, from the upright picture: the inverse of what is displayed
_STORED = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix, endian", [(".png", "<"), (".png", ">"), (".jpg", "<")])
def test_photos_are_read_upright_whatever_their_exif_orientation(tmp_path, orientation, suffix, endian):
    """A phone stores a portrait photo as landscape pixels with an EXIF orientation (6: a quarter turn
    clockwise); read as stored, the person lay on their side and no pose was found in them."""
    from fewshotv2v.video.exif import upright

    shown = np.zeros((24, 40, 3), np.uint8)  # what the viewer shows: a bright block at the top left
    shown[:6, :10] = 250
    shown[:6, 10:14] = (250, 0, 0)  # and a red one right of it, so that mirror images differ
    stored = upright(shown, _STORED[orientation])
    path = tmp_path / f"photo{suffix}"
    path.write_bytes(
        _with_exif(V.encode_image(stored, suffix), suffix, _tiff_with_orientation(orientation, endian))
    )
    got = V.read_image(path)
    assert got.shape == shown.shape
    tolerance = 0 if suffix == ".png" else 40  # JPEG blurs the blocks' edges
    assert np.abs(got.astype(int) - shown).max() <= tolerance
    assert V.probe(path).width == 40


@pytest.mark.parametrize(
    "tiff",
    [b"", b"II*\x00", _tiff_with_orientation(6)[:12], _tiff_with_orientation(9), b"XX*\x00" + b"\x00" * 20],
)
def test_a_broken_or_unknown_exif_orientation_reads_the_photo_as_stored(tmp_path, tiff):
    """(A JPEG: FFmpeg's own PNG decoder refuses a PNG whose eXIf chunk is broken.)"""
    img = np.zeros((16, 24, 3), np.uint8)
    img[:4, :8] = 250
    path = tmp_path / "photo.jpg"
    path.write_bytes(_with_exif(V.encode_image(img, ".jpg"), ".jpg", tiff))
    assert np.abs(V.read_image(path).astype(int) - img).max() <= 40


def test_a_webp_exif_chunk_is_found():
    from fewshotv2v.video.exif import exif_orientation

    tiff = b"Exif\x00\x00" + _tiff_with_orientation(8, ">")
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 10 + b"EXIF" + struct.pack("<I", len(tiff)) + tiff
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".webp") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)
        f.flush()
        assert exif_orientation(f.name) == 8


def test_a_transparent_photo_is_read_over_white(tmp_path):
    """A cut-out person (an RGBA PNG with a transparent background) is read as a viewer shows it, over
    white; dropping the alpha showed the colour the transparent pixels happened to hold."""
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere, hidden where transparent
    rgba[:4, :, 3] = 255  # top half opaque
    rgba[4:6, :, 3] = 128  # half transparent
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 10, 8, "rgba"
    ctx.time_base = Fraction(1, 25)
    packets = ctx.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")) + ctx.encode(None)
    path = tmp_path / "cutout.png"
    path.write_bytes(b"".join(bytes(p) for p in packets))
    got = V.read_image(path)
    assert (got[:4] == (200, 0, 0)).all()
    assert (np.abs(got[4:6].astype(int) - (227, 127, 127)) <= 1).all()
    assert (got[6:] == 255).all()
    assert V.read_image(path, gray=True).shape == (8, 10)


def test_an_avif_photo_is_an_image(tmp_path):
    """AVIF (phones and browsers save it) reads like any photo and counts as an image in frame folders."""
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this PyAV build has no AV1 encoder to make the test photo")
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, :24] = (200, 60, 40)
    path = tmp_path / "photo.avif"
    with av.open(str(path), "w", format="avif") as out:
        stream = out.add_stream("libsvtav1", rate=1)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")), *stream.encode(None)]:
            out.mux(packet)
    assert V.is_image_file(path)
    got = V.read_image(path)
    assert got.shape == img.shape and np.abs(got[4:28, 4:20].astype(int) - (200, 60, 40)).max() < 20
    assert [f.image.shape for f in V.read_frames(tmp_path)] == [img.shape]

"""HEIF / HEIC photos: tiles put together, turned and mirrored by their item properties, cropped, alpha."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotv2v.errors import InputError
from fewshotv2v.video import read_image
from fewshotv2v.video.heif import is_heif
from heif_files import write_heic


def _photo(h: int = 200, w: int = 150) -> np.ndarray:
    """A smooth picture with a different colour in each corner (any turn or mirror shows), `(h, w, 3)`."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / (h - 1), x / (w - 1)
    image = np.stack([255 * x, 255 * y, 255 * (1 - x) * (1 - y) * 0.8 + 30], -1)
    return image.round().astype(np.uint8)


def _close(a: np.ndarray, b: np.ndarray, tol: float = 3.0) -> bool:
    return a.shape == b.shape and float(np.abs(a.astype(np.float32) - b).mean()) < tol


def test_one_picture_reads_as_stored(tmp_path):
    photo = _photo()
    write_heic(tmp_path / "p.heic", photo)
    assert _close(read_image(tmp_path / "p.heic"), photo)


def test_grid_tiles_are_put_together_and_cropped_to_the_image(tmp_path):
    # 200 x 150 in 64 px tiles: 4 x 3 tiles, the last row and column cropped. FFmpeg's demuxer alone gives
    # the top-left 64 x 64 tile.
    photo = _photo()
    write_heic(tmp_path / "g.heic", photo, tile=64)
    image = read_image(tmp_path / "g.heic")
    assert image.shape == (200, 150, 3)
    assert _close(image, photo)
    # No seam: each tile boundary row differs from its neighbours as little as the rows inside do.
    steps = np.abs(np.diff(image.astype(np.float32), axis=0)).mean(axis=(1, 2))
    assert steps[63] < steps.mean() + 2 and steps[127] < steps.mean() + 2


@pytest.mark.parametrize(
    "rotation, mirror, shown",
    [
        (1, None, lambda a: np.rot90(a, 1)),  # irot 1: a quarter turn counter-clockwise
        (3, None, lambda a: np.rot90(a, -1)),  # the phone held upright: a quarter turn clockwise
        (2, None, lambda a: a[::-1, ::-1]),
        (0, 0, lambda a: a[::-1]),  # imir mode 0: top and bottom exchanged
        (0, 1, lambda a: a[:, ::-1]),  # mode 1: left and right (a mirrored selfie)
        (3, 1, lambda a: np.rot90(a, -1)[:, ::-1]),  # turned first, then mirrored: their listed order
    ],
)
def test_turn_and_mirror_properties_are_applied_in_order(tmp_path, rotation, mirror, shown):
    photo = _photo()
    write_heic(tmp_path / "t.heic", photo, tile=64, rotation=rotation, mirror=mirror)
    assert _close(read_image(tmp_path / "t.heic"), np.ascontiguousarray(shown(photo)))


def test_clean_aperture_crops_round_the_offset_centre(tmp_path):
    photo = _photo()
    # 100 wide, 120 tall, centred 10 px right of and 20 px above the image's centre.
    write_heic(tmp_path / "c.heic", photo, tile=64, clap=(100, 120, 10, -20))
    image = read_image(tmp_path / "c.heic")
    left = round(10 + (150 - 1) / 2 - (100 - 1) / 2)
    top = round(-20 + (200 - 1) / 2 - (120 - 1) / 2)
    assert _close(image, photo[top : top + 120, left : left + 100])


def test_alpha_is_laid_over_white(tmp_path):
    photo = _photo()
    alpha = np.zeros(photo.shape[:2], np.uint8)
    alpha[20:180, 20:130] = 255
    alpha[100:180, 20:130] = 128
    write_heic(tmp_path / "a.heic", photo, tile=64, alpha=alpha)
    image = read_image(tmp_path / "a.heic").astype(np.float32)
    assert np.abs(image[:15] - 255).mean() < 2  # transparent: white
    assert np.abs(image[30:90, 30:120] - photo[30:90, 30:120]).mean() < 3  # opaque: the photo
    half = (photo[110:170, 30:120].astype(np.float32) + 255) / 2
    assert np.abs(image[110:170, 30:120] - half).mean() < 3


def test_gray_read(tmp_path):
    photo = _photo()
    write_heic(tmp_path / "g.heic", photo, tile=64, rotation=1)
    gray = read_image(tmp_path / "g.heic", gray=True)
    assert gray.shape == (150, 200) and gray.dtype == np.uint8
    expected = np.rot90(photo.astype(np.float32) @ np.array([0.299, 0.587, 0.114]), 1)
    assert np.abs(gray - expected).mean() < 4


def test_brands(tmp_path):
    write_heic(tmp_path / "p.heic", _photo(64, 64))
    assert is_heif((tmp_path / "p.heic").read_bytes()[:64])
    mp4_head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    assert not is_heif(mp4_head)
    assert not is_heif(b"\x89PNG\r\n\x1a\n" + bytes(24))


def test_broken_files_give_one_line_errors(tmp_path):
    write_heic(tmp_path / "p.heic", _photo(), tile=64)
    data = (tmp_path / "p.heic").read_bytes()
    (tmp_path / "cut.heic").write_bytes(data[: len(data) // 2])  # the tiles' data cut off
    with pytest.raises(InputError, match=r"cannot read image .*cut\.heic"):
        read_image(tmp_path / "cut.heic")
    meta = data.index(b"meta")
    (tmp_path / "meta.heic").write_bytes(data[: meta + 40])  # the boxes themselves cut off
    with pytest.raises(InputError, match=r"cannot read image .*meta\.heic") as caught:
        read_image(tmp_path / "meta.heic")
    assert "\n" not in str(caught.value)


def test_other_codings_are_refused_by_name(tmp_path):
    write_heic(tmp_path / "p.heic", _photo(64, 64))
    data = (tmp_path / "p.heic").read_bytes().replace(b"hvc1", b"vvc1")  # the item type (infe)
    (tmp_path / "v.heic").write_bytes(data)
    with pytest.raises(InputError, match=r"v\.heic: HEIF images of type 'vvc1' are not supported"):
        read_image(tmp_path / "v.heic")


def test_an_avif_photo_decodes_through_its_av1_item(tmp_path):
    """FFmpeg's own AVIF muxer writes the file (one AV1 item); it is read by the same item path."""
    import av

    try:
        av.codec.Codec("libsvtav1", "w")
    except ValueError:  # UnknownCodecError: a PyAV build without the AV1 encoder
        pytest.skip("no AV1 encoder in this PyAV build")
    photo = _photo(64, 96)
    with av.open(str(tmp_path / "p.avif"), "w", format="avif") as out:
        stream = out.add_stream("libsvtav1", rate=1, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for packet in stream.encode(av.VideoFrame.from_ndarray(photo, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert is_heif((tmp_path / "p.avif").read_bytes()[:64])
    assert _close(read_image(tmp_path / "p.avif"), photo, tol=4.0)

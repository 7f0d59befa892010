"""Photos with an embedded colour profile (an iPhone's Display P3) are read as sRGB (`video.icc`)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from fewshotv2v import video as V
from fewshotv2v.video.icc import embedded_profile, to_srgb
from heif_files import write_heic
from icc_files import (
    P3_PRIMARIES,
    SRGB_PRIMARIES,
    jpeg_with_profile,
    matrix_profile,
    png_with_profile,
    webp_with_profile,
    xyz_from_rgb,
)

# Colours as an iPhone stores them: a skin tone, a saturated red, a green, grey, white, black.
P3_COLOURS = np.array(
    [(224, 172, 150), (200, 60, 40), (60, 160, 80), (128, 128, 128), (255, 255, 255), (0, 0, 0)]
)


def _expected_srgb(p3: np.ndarray) -> np.ndarray:
    """Display P3 -> sRGB by the chromaticities alone (both white points D65, so no adaptation), not by
    the profile's bytes: an independent answer."""
    x = p3 / 255.0
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    out = linear @ (np.linalg.inv(xyz_from_rgb(SRGB_PRIMARIES)) @ xyz_from_rgb(P3_PRIMARIES)).T
    out = np.clip(out, 0.0, 1.0)
    return np.round(255 * np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055))


def _swatches(colours=P3_COLOURS, size=16) -> np.ndarray:
    """`uint8 (size, size * len(colours), 3)`: one flat square per colour."""
    return np.repeat(np.repeat(colours[None].astype(np.uint8), size, axis=0), size, axis=1)


def _centres(image: np.ndarray, count=len(P3_COLOURS), size=16) -> np.ndarray:
    return image[size // 2, size // 2 :: size][:count].astype(int)


def _png(image: np.ndarray) -> bytes:
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    ctx.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


def test_a_display_p3_png_is_read_as_srgb(tmp_path):
    """Read as stored, the P3 red (200, 60, 40) would show as a duller sRGB (200, 60, 40); in sRGB it is
    (217, 42, 23). Grey, white and black stay where they are."""
    path = tmp_path / "p3.png"
    path.write_bytes(png_with_profile(_png(_swatches()), matrix_profile()))
    got = _centres(V.read_image(path))
    want = _expected_srgb(P3_COLOURS)
    assert np.abs(got - want).max() <= 1, (got, want)
    assert np.abs(got[1] - P3_COLOURS[1]).max() >= 10  # the conversion did something a viewer would see
    assert (got[3:] == P3_COLOURS[3:]).all()
    # A grey read (for thumbnails, cut detection) is not converted: it stays the file's luma.
    assert V.read_image(path, gray=True).shape == (16, 16 * len(P3_COLOURS))


@pytest.mark.parametrize("parts", [1, 3])
def test_a_display_p3_jpeg_is_read_as_srgb_also_when_its_profile_is_split(tmp_path, parts):
    """A profile longer than one segment allows is split over numbered `APP2` segments."""
    jpeg = V.encode_image(_swatches(), ".jpg")
    plain, tagged = tmp_path / "plain.jpg", tmp_path / "p3.jpg"
    plain.write_bytes(jpeg)
    tagged.write_bytes(jpeg_with_profile(jpeg, matrix_profile(), parts=parts))
    assert embedded_profile(tagged.read_bytes()) == matrix_profile()
    stored = V.read_image(plain).astype(int)  # the same pixels, JPEG noise and all
    want = _expected_srgb(stored.reshape(-1, 3)).reshape(stored.shape)
    assert np.abs(V.read_image(tagged).astype(int) - want).max() <= 1


def test_a_display_p3_webp_is_read_as_srgb(tmp_path):
    image = _swatches()
    ctx = av.CodecContext.create("libwebp", "w")
    ctx.width, ctx.height, ctx.pix_fmt = image.shape[1], image.shape[0], "bgra"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"lossless": "1"}
    bgra = np.concatenate([image[..., ::-1], np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    packets = ctx.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(bgra), format="bgra"))
    webp = b"".join(bytes(p) for p in packets + ctx.encode(None))
    path = tmp_path / "p3.webp"
    path.write_bytes(webp_with_profile(webp, matrix_profile(), image.shape[1], image.shape[0]))
    assert np.abs(_centres(V.read_image(path)) - _expected_srgb(P3_COLOURS)).max() <= 1


@pytest.mark.parametrize("colr", [("nclx", "prof"), ("prof", "nclx"), ("prof",)])
def test_a_display_p3_heic_is_read_as_srgb(tmp_path, colr):
    """An iPhone's HEIC: the profile is a `colr` of type `prof` on the grid, beside an nclx one (in either
    order: each is found by its type), or alone."""
    image = np.tile(_swatches(), (2, 1, 1))  # 32 x 96: a 2 x 3 grid of 32 px tiles
    plain, tagged = tmp_path / "plain.heic", tmp_path / "p3.heic"
    write_heic(plain, image, tile=32)
    write_heic(tagged, image, tile=32, icc=matrix_profile(), colr=colr)
    stored = V.read_image(plain).astype(int)
    want = _expected_srgb(stored.reshape(-1, 3)).reshape(stored.shape)
    assert np.abs(V.read_image(tagged).astype(int) - want).max() <= 1
    assert np.abs(_centres(V.read_image(tagged)) - _expected_srgb(P3_COLOURS)).max() <= 3  # HEVC noise


def test_an_srgb_profile_or_a_broken_one_leaves_the_pixels_as_stored(tmp_path):
    """Most photos say sRGB: read bit for bit as without the profile. A profile that cannot be read, or
    one of another kind (CMYK, grey, lookup tables only), reads the photo as stored, as before."""
    png = _png(_swatches())
    srgb = matrix_profile(SRGB_PRIMARIES)
    broken = matrix_profile()[:150]
    cmyk = matrix_profile(colour_space=b"CMYK")
    for n, profile in enumerate([srgb, broken, cmyk, b"not a profile"]):
        path = tmp_path / f"{n}.png"
        path.write_bytes(png_with_profile(png, profile))
        assert (V.read_image(path) == _swatches()).all(), n
    image = _swatches()
    assert to_srgb(image, None) is image and to_srgb(image, srgb) is image  # not even copied


def test_the_conversion_matches_littlecms():
    """The same P3 profile applied by littleCMS (through Pillow, when it is installed), on every colour
    of a random image."""
    cms = pytest.importorskip("PIL.ImageCms")
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    profile = cms.ImageCmsProfile(io.BytesIO(matrix_profile()))
    ref = cms.profileToProfile(
        Image.fromarray(image),
        profile,
        cms.createProfile("sRGB"),
        renderingIntent=cms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
    )
    assert np.abs(to_srgb(image, matrix_profile()).astype(int) - np.asarray(ref)).max() <= 1

"""Still images with PyAV: read, encode, write, resize, rotate; frame folders."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fewshotv2v.errors import InputError
from fewshotv2v.video.exif import EXIF_SCAN, exif_orientation, upright
from fewshotv2v.video.heif import is_heif, read_heif
from fewshotv2v.video.icc import embedded_profile, to_srgb
from fewshotv2v.video.types import _AV_ERRORS, IMAGE_SUFFIXES

# --------------------------------------------------------------------------------------------------
# Images (single files): JPEG/PNG through PyAV's codecs, no extra image library.
# --------------------------------------------------------------------------------------------------


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path, *, gray: bool = False) -> np.ndarray:
    """Read an image file -> `uint8 (H, W, 3)` RGB (or `uint8 (H, W)` with `gray=True`), upright: its
    EXIF orientation (a phone's portrait photo stored as landscape pixels) is applied (`video.exif`), and
    its colour profile (an iPhone's Display P3) converted to sRGB (`video.icc`).
    Transparent pixels are shown over white. HEIF / HEIC / AVIF photos are put together from their tiles
    and turned by their own properties (`video.heif`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(EXIF_SCAN)  # the format and the EXIF tag, read once
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if is_heif(head):
        return read_heif(path, gray=gray)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"not an image: {path}")
            for frame in container.decode(video=0):
                if gray:
                    image = frame.to_ndarray(format="gray")
                else:
                    image = to_srgb(_rgb(frame), embedded_profile(head))
                return upright(image, exif_orientation(head))
    except _AV_ERRORS as exc:
        raise InputError(f"cannot read image {path}: {_short(exc)}") from exc
    raise InputError(f"cannot read image {path}: no picture in the file")


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded picture as `uint8 (H, W, 3)` RGB; one with transparency (a cut-out person in an RGBA or
    palette PNG) laid over white (`over_white`)."""
    fmt = frame.format
    if not (fmt.has_palette or any(c.is_alpha for c in fmt.components)):
        return frame.to_ndarray(format="rgb24")
    rgba = frame.to_ndarray(format="rgba")
    return over_white(rgba[..., :3], rgba[..., 3])


def over_white(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`image uint8 (H, W, 3)` (or `(H, W)`) laid over white with `alpha uint8 (H, W)`, as a viewer shows a
    transparent photo. Dropping the alpha instead showed whatever colour the transparent pixels happened
    to hold, often black, as the person's background."""
    a = alpha.astype(np.float32) / 255.0
    a = a[..., None] if image.ndim == 3 else a
    return (image * a + 255.0 * (1.0 - a)).round().astype(np.uint8)


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

"""A photo's embedded ICC colour profile: find it in the file, convert the pixels to sRGB.

An iPhone's photos (JPEG and HEIC) are in Display P3, a camera's often in Adobe RGB: their pixel values
mean more saturated colours than the same values in sRGB, which is what every later stage (and the BT.709
video out, which shares sRGB's primaries) takes them for. Read as stored, such a photo came out duller
than a colour-managed viewer shows it. The profiles photos carry are "matrix / TRC" profiles: a tone curve
per channel (`rTRC`, `gTRC`, `bTRC`) and the XYZ of each primary adapted to D50 (`rXYZ`, `gXYZ`,
`bXYZ`). Such a profile is applied here (relative colorimetric, colours outside sRGB clipped); a profile
of another kind (lookup tables only, CMYK, grey) or a broken one leaves the pixels as stored, as before.
Where they are: JPEG `APP2` segments (`ICC_PROFILE`, possibly split over several), PNG `iCCP`, WebP
`ICCP`, HEIF `colr` of type `prof` / `rICC` (`video.heif`).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

# Linear sRGB from XYZ relative to D50 (the ICC connection space), Bradford-adapted from D65 as the ICC's
# own sRGB profile and littleCMS do.
_SRGB_FROM_XYZ_D50 = np.array(
    [
        [3.1338561, -1.6168667, -0.4906146],
        [-0.9787684, 1.9161415, 0.0334540],
        [0.0719453, -0.2289914, 1.4052427],
    ]
)
_ROWS = 256  # rows converted at a time: a 12 MP photo's float copy would be ~150 MB at once
_SAME = 0.5 / 255  # a profile within this of sRGB (curves and matrix) leaves the pixels as they are


def embedded_profile(head: bytes) -> bytes | None:
    """The ICC profile embedded in a JPEG, PNG or WebP file starting with `head`; None when there is none
    or it cannot be read."""
    try:
        if head.startswith(b"\xff\xd8"):
            return _jpeg_profile(head)
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png_profile(head)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp_profile(head)
    except (struct.error, IndexError, ValueError, zlib.error):
        return None
    return None


def _jpeg_profile(head: bytes) -> bytes | None:
    """`APP2` segments `ICC_PROFILE\\0` + sequence number + count + a part of the profile, in order."""
    parts: dict[int, bytes] = {}
    pos = 2
    while pos + 4 <= len(head) and head[pos] == 0xFF:
        marker = head[pos + 1]
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no metadata after this
            break
        length = struct.unpack(">H", head[pos + 2 : pos + 4])[0]
        segment = head[pos + 4 : pos + 2 + length]
        if marker == 0xE2 and segment.startswith(b"ICC_PROFILE\x00") and len(segment) > 14:
            parts[segment[12]] = segment[14:]
        pos += 2 + length
    return b"".join(parts[k] for k in sorted(parts)) or None


def _png_profile(head: bytes) -> bytes | None:
    """`iCCP`: a name, a zero, the compression method (0), the zlib-compressed profile; before `IDAT`."""
    pos = 8
    while pos + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[pos : pos + 8])
        if kind == b"iCCP":
            data = head[pos + 8 : pos + 8 + length]
            name_end = data.index(b"\x00")
            return zlib.decompress(data[name_end + 2 :])
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _webp_profile(head: bytes) -> bytes | None:
    pos = 12
    while pos + 8 <= len(head):
        kind, length = struct.unpack("<4sI", head[pos : pos + 8])
        if kind == b"ICCP":
            return head[pos + 8 : pos + 8 + length]
        pos += 8 + length + (length & 1)
    return None


# --------------------------------------------------------------------------------------------------
# The profile: tone curves and primaries
# --------------------------------------------------------------------------------------------------


def _tags(profile: bytes) -> dict[bytes, bytes]:
    count = struct.unpack(">I", profile[128:132])[0]
    tags = {}
    for n in range(count):
        sig, offset, size = struct.unpack(">4sII", profile[132 + 12 * n : 144 + 12 * n])
        tags[sig] = profile[offset : offset + size]
    return tags


def _xyz(tag: bytes) -> np.ndarray:
    if tag[:4] != b"XYZ ":
        raise ValueError("not an XYZ tag")
    return np.array(struct.unpack(">3i", tag[8:20]), np.float64) / 65536.0


def _curve(tag: bytes, x: np.ndarray) -> np.ndarray:
    """A tone curve (`curv` or `para`) evaluated at `x` in [0, 1]: encoded value -> linear light."""
    if tag[:4] == b"curv":
        n = struct.unpack(">I", tag[8:12])[0]
        if n == 0:
            return x.copy()
        if n == 1:
            return x ** (struct.unpack(">H", tag[12:14])[0] / 256.0)
        table = np.array(struct.unpack(f">{n}H", tag[12 : 12 + 2 * n]), np.float64) / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, n), table)
    if tag[:4] == b"para":
        kind = struct.unpack(">H", tag[8:10])[0]
        count = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(kind)
        if count is None:
            raise ValueError(f"unknown parametric curve {kind}")
        params = [v / 65536.0 for v in struct.unpack(f">{count}i", tag[12 : 12 + 4 * count])]
        g, a, b, c, d, e, f = params + [0.0] * (7 - count)
        with np.errstate(all="ignore"):  # a = 0 would divide by zero; the result is checked as finite
            power = np.maximum(a * x + b, 0.0) ** g
            if kind == 0:  # X^g
                return x**g
            if kind == 1:  # (aX + b)^g for X >= -b/a, else 0
                return np.where(x >= -b / a, power, 0.0)
            if kind == 2:  # (aX + b)^g + c for X >= -b/a, else c
                return np.where(x >= -b / a, power + c, c)
            if kind == 3:  # (aX + b)^g for X >= d, else cX (sRGB's own curve)
                return np.where(x >= d, power, c * x)
            return np.where(x >= d, power + e, c * x + f)
    raise ValueError("not a tone curve")


def _srgb_encode(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, 0.0, 1.0)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055)


class _Conversion:
    """A matrix / TRC profile as a conversion to sRGB: 256-entry decode tables, one 3 x 3 matrix."""

    def __init__(self, profile: bytes):
        if len(profile) < 132 or profile[36:40] != b"acsp":
            raise ValueError("not an ICC profile")
        if profile[16:20] != b"RGB " or profile[20:24] != b"XYZ ":
            raise ValueError("not an RGB profile with an XYZ connection space")
        tags = _tags(profile)
        levels = np.arange(256) / 255.0
        self.decode = np.stack([_curve(tags[k], levels) for k in (b"rTRC", b"gTRC", b"bTRC")])  # (3, 256)
        colorants = np.stack([_xyz(tags[k]) for k in (b"rXYZ", b"gXYZ", b"bXYZ")], axis=1)  # XYZ_D50 from RGB
        self.matrix = _SRGB_FROM_XYZ_D50 @ colorants  # (3, 3): linear sRGB from the profile's linear RGB
        if not np.isfinite(self.decode).all() or not np.isfinite(self.matrix).all():
            raise ValueError("a curve or primary is not a number")

    def is_srgb(self) -> bool:
        same_curves = np.abs(_srgb_encode(self.decode) - np.arange(256) / 255.0).max() <= _SAME
        return bool(same_curves and np.abs(self.matrix - np.eye(3)).max() <= 2e-3)

    def apply(self, image: np.ndarray) -> np.ndarray:
        out = np.empty_like(image)
        decode = self.decode.astype(np.float32)
        matrix = self.matrix.T.astype(np.float32)
        for y in range(0, image.shape[0], _ROWS):
            rows = image[y : y + _ROWS]
            linear = np.stack([decode[c][rows[..., c]] for c in range(3)], axis=-1)  # (rows, W, 3)
            encoded = _srgb_encode(linear @ matrix)
            out[y : y + _ROWS] = np.round(encoded * 255.0).astype(np.uint8)
        return out


def to_srgb(image: np.ndarray, profile: bytes | None) -> np.ndarray:
    """`uint8 (H, W, 3)` RGB in the colour space of `profile` -> the same photo in sRGB. Returned as it is
    when there is no profile, when it is sRGB's (most photos: no rounding), or when it is not a matrix /
    TRC RGB profile or cannot be read."""
    if not profile or image.ndim != 3:
        return image
    try:
        conversion = _Conversion(profile)
    except (KeyError, ValueError, IndexError, struct.error):
        return image
    if conversion.is_srgb():
        return image
    return conversion.apply(image)

"""Write ICC profiles and embed them in photos, for the colour-profile tests: a version-4 matrix / TRC RGB
profile made from the chromaticities of its primaries and white (as Apple's Display P3 is), and the
profile put into a JPEG (`APP2`, split over several segments when asked), a PNG (`iCCP`) or a WebP
(`ICCP`)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

D65 = (0.3127, 0.3290)
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))  # Display P3: DCI-P3 primaries, D65 white
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # parametric curve type 3, as Display P3
_D50_XYZ = np.array([0.9642, 1.0, 0.8249])
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def xyz_from_rgb(primaries, white=D65) -> np.ndarray:
    """(3, 3): XYZ (white Y = 1) from linear RGB with these chromaticities."""
    xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    wx, wy = white
    scale = np.linalg.solve(xyz, [wx / wy, 1.0, (1 - wx - wy) / wy])
    return xyz * scale


def _to_d50(white=D65) -> np.ndarray:
    wx, wy = white
    src = _BRADFORD @ np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    dst = _BRADFORD @ _D50_XYZ
    return np.linalg.inv(_BRADFORD) @ np.diag(dst / src) @ _BRADFORD


def _s15(values) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


def matrix_profile(primaries=P3_PRIMARIES, white=D65, curve=SRGB_CURVE, *, colour_space=b"RGB ") -> bytes:
    """A v4 display profile: `rXYZ` / `gXYZ` / `bXYZ` adapted to D50 (Bradford, `chad` beside them), the
    same parametric tone curve (type 3: g, a, b, c, d) for the three channels, `wtpt` D50."""
    chad = _to_d50(white)
    colorants = chad @ xyz_from_rgb(primaries, white)  # columns: XYZ_D50 of red, green, blue
    trc = b"para" + bytes(4) + struct.pack(">H2x", 3) + _s15(curve)
    name = "P3".encode("utf-16-be")
    desc = b"mluc" + bytes(4) + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(name), 28) + name
    tags = [
        (b"desc", desc),
        (b"wtpt", b"XYZ " + bytes(4) + _s15(_D50_XYZ)),
        (b"chad", b"sf32" + bytes(4) + _s15(chad.ravel())),
        *((k, b"XYZ " + bytes(4) + _s15(colorants[:, n])) for n, k in enumerate((b"rXYZ", b"gXYZ", b"bXYZ"))),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    table_end = 132 + 12 * len(tags)
    entries, data = [], b""
    for sig, payload in tags:
        payload += bytes(-len(payload) % 4)
        entries.append(struct.pack(">4sII", sig, table_end + len(data), len(payload)))
        data += payload
    size = table_end + len(data)
    header = struct.pack(
        ">I4sI4s4s4s12s4s4sI4s8s8sI",
        size,
        b"test",
        0x04300000,
        b"mntr",
        colour_space,
        b"XYZ ",
        bytes(12),
        b"acsp",
        b"APPL",
        0,
        b"none",
        bytes(8),
        bytes(8),
        0,
    )
    header += _s15(_D50_XYZ) + b"test" + bytes(128 - len(header) - 16)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + data


def jpeg_with_profile(jpeg: bytes, profile: bytes, *, parts: int = 1) -> bytes:
    """`jpeg` with `profile` in `parts` `APP2` segments right after its start marker."""
    step = -(-len(profile) // parts)
    chunks = [profile[i : i + step] for i in range(0, len(profile), step)]
    segments = b""
    for n, chunk in enumerate(chunks):
        body = b"ICC_PROFILE\x00" + bytes([n + 1, len(chunks)]) + chunk
        segments += b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    return jpeg[:2] + segments + jpeg[2:]


def png_with_profile(png: bytes, profile: bytes) -> bytes:
    """`png` with an `iCCP` chunk after `IHDR`."""
    body = b"Display P3\x00\x00" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def webp_with_profile(webp: bytes, profile: bytes, width: int, height: int) -> bytes:
    """A simple WebP (`VP8 ` or `VP8L`) turned into an extended one (`VP8X`, ICC flag) with an `ICCP`
    chunk before the picture."""
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    vp8x = bytes([0x20, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    iccp = profile + bytes(len(profile) & 1)
    body = b"VP8X" + struct.pack("<I", 10) + vp8x + b"ICCP" + struct.pack("<I", len(profile)) + iccp
    body += webp[12:]
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body

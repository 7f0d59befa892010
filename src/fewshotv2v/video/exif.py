"""EXIF orientation of a still photo: read it from the file, turn the pixels upright.

Phones store a portrait photo as landscape pixels with an EXIF orientation tag that says how to turn them
(6: a quarter turn clockwise). FFmpeg's image decoders hand back the stored pixels: FFmpeg 8 reports the
tag's turn as `frame.rotation`, which cannot tell a mirrored photo from a turned one (tag 2 reads as a
half turn), and older builds report nothing. So the tag is read here from the file itself: JPEG (APP1),
PNG (`eXIf`) and WebP (`EXIF`). A file without a readable tag is taken as upright (1): a broken tag never
stops a photo from loading.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

ORIENTATION_TAG = 0x0112
EXIF_SCAN = 1 << 20  # bytes: metadata lies before the picture data; never read further into a huge file


def exif_orientation(source: str | Path | bytes) -> int:
    """The EXIF orientation of a file (its path, or its first `EXIF_SCAN` bytes), 1-8 (1 = upright, also
    when there is none or it cannot be read)."""
    if isinstance(source, bytes):
        head = source[:EXIF_SCAN]
    else:
        try:
            with open(source, "rb") as f:
                head = f.read(EXIF_SCAN)
        except OSError:
            return 1
    try:
        if head.startswith(b"\xff\xd8"):
            tiff = _jpeg_exif(head)
        elif head.startswith(b"\x89PNG\r\n\x1a\n"):
            tiff = _chunk(head, 8, b"eXIf", size_first=True)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            tiff = _chunk(head, 12, b"EXIF", size_first=False)
        else:
            tiff = None
        return _tiff_orientation(tiff) if tiff else 1
    except (struct.error, IndexError, ValueError):
        return 1


# How each orientation is displayed, as array operations on the stored (H, W[, C]) pixels (Pillow's
# `exif_transpose` table; np.rot90 turns counter-clockwise).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],  # mirrored left to right
    3: lambda a: a[::-1, ::-1],  # a half turn
    4: lambda a: a[::-1],  # mirrored top to bottom
    5: lambda a: np.swapaxes(a, 0, 1),  # the transpose
    6: lambda a: np.rot90(a, -1),  # a quarter turn clockwise (a phone held upright)
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),  # the transverse
    8: lambda a: np.rot90(a, 1),  # a quarter turn counter-clockwise
}


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """`image (H, W[, C])` as stored, turned and mirrored as its EXIF `orientation` says it is displayed."""
    turn = _UPRIGHT.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))


def _jpeg_exif(data: bytes) -> bytes | None:
    """The TIFF block of a JPEG's `Exif` APP1 segment, or None. Walks the segments up to the scan."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata beyond
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7 or marker == 0xFF:  # no length field
            at += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        body = data[at + 4 : at + 2 + length]
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            return body[6:]
        at += 2 + length
    return None


def _chunk(data: bytes, at: int, name: bytes, *, size_first: bool) -> bytes | None:
    """The body of the first chunk called `name`: PNG chunks are (size big-endian, name, body, CRC), WebP's
    RIFF chunks (name, size little-endian, body, padded to even)."""
    while at + 8 <= len(data):
        if size_first:
            (size,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
            if kind == b"IDAT":  # metadata after the picture data is not looked for
                return None
            nxt = at + 12 + size
        else:
            kind, (size,) = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])
            nxt = at + 8 + size + (size & 1)
        if kind == name:
            body = data[at + 8 : at + 8 + size]
            return body[6:] if body.startswith(b"Exif\x00\x00") else body
        at = nxt
    return None


def _tiff_orientation(tiff: bytes) -> int:
    """The orientation entry of a TIFF block's first IFD, 1 when it has none or it is out of range."""
    endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if endian is None or struct.unpack(endian + "H", tiff[2:4])[0] != 42:
        return 1
    (ifd,) = struct.unpack(endian + "I", tiff[4:8])
    (count,) = struct.unpack(endian + "H", tiff[ifd : ifd + 2])
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, kind = struct.unpack(endian + "HH", entry[:4])
        if tag == ORIENTATION_TAG and kind == 3:  # SHORT, held in the entry's value field
            (value,) = struct.unpack(endian + "H", entry[8:10])
            return value if 1 <= value <= 8 else 1
    return 1


__all__ = ["EXIF_SCAN", "exif_orientation", "upright"]

"""Write small HEIF files as phones do, for the reader's tests: an HEVC-coded image (libx265 through PyAV),
either one picture or a grid of tiles cropped to the image size, with `irot` / `imir` / `clap` transforms
and an optional alpha plane, the tiles in `mdat` (file offsets) and the grid descriptor in `idat`."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def encode_hevc(picture: np.ndarray) -> tuple[bytes, bytes]:
    """One intra picture -> (hvcC record, length-prefixed NALs). `uint8 (H, W, 3)` RGB is converted to
    limited-range YUV; `uint8 (H, W)` (an alpha plane, even sizes) is coded as the luma as it is, tagged
    full range."""
    h, w = picture.shape[:2]
    ctx = av.CodecContext.create("libx265", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"x265-params": "log-level=none:keyint=1:crf=4"}
    if picture.ndim == 2:
        ctx.color_range = 2  # JPEG / full
        yuv = np.concatenate(
            [picture, np.full((h // 2, w), 128, np.uint8)]
        )  # Y, then U and V (h/4 rows each)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.color_range = 2
    else:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24").reformat(
            format="yuv420p"
        )
    stream = b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))
    # Split at the 3-byte start codes; a 4-byte one leaves a zero at the end of the NAL before it.
    nals = [n.rstrip(b"\x00") for n in stream.split(b"\x00\x00\x01")]
    nals = [n for n in nals if n]
    params = {t: [n for n in nals if (n[0] >> 1) & 0x3F == t] for t in (32, 33, 34)}  # VPS, SPS, PPS
    sps = params[33][0]
    record = bytes([1]) + sps[3:15]  # version 1, then the SPS's general profile / tier / level (12 bytes)
    record += bytes([0xF0, 0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F, 3])  # 4:2:0, 8 bit, 4-byte lengths
    for t in (32, 33, 34):
        nal = params[t][0]
        record += bytes([0x80 | t]) + struct.pack(">HH", 1, len(nal)) + nal
    slices = b"".join(struct.pack(">I", len(n)) + n for n in nals if (n[0] >> 1) & 0x3F < 32)
    return record, slices


def write_heic(
    path,
    image: np.ndarray,
    *,
    tile: int | None = None,
    rotation: int = 0,
    mirror: int | None = None,
    clap: tuple[int, int, int, int] | None = None,
    alpha: np.ndarray | None = None,
    icc: bytes | None = None,
    colr: tuple[str, ...] = ("nclx", "prof"),
) -> None:
    """`image uint8 (H, W, 3)` as a HEIC file: a grid of `tile` x `tile` pictures (one picture when None),
    `rotation` quarter turns counter-clockwise (`irot`), `mirror` 0 / 1 (`imir` mode), `clap` (width,
    height, horizontal and vertical offset of the crop's centre from the image's centre, whole pixels),
    `alpha uint8 (H, W)` as an auxiliary image, `icc` an ICC profile (a `colr` of type `prof`, beside an
    nclx one as phones write both; `colr` says which and in what order). Transforms are listed clap, irot,
    imir, as HEIF requires."""
    props: list[bytes] = []  # ipco children; property index = position + 1
    types: dict[int, bytes] = {}  # item id -> item type
    associations: dict[int, list[int]] = {}  # item id -> property indices, in order
    refs: list[tuple[bytes, int, list[int]]] = []  # (reference type, from item, to items)
    coded: list[tuple[int, bytes]] = []  # (item id, coded picture) in mdat order
    grids: list[tuple[int, bytes]] = []  # (grid item id, descriptor) in idat order

    def prop(payload: bytes) -> int:
        props.append(payload)
        return len(props)

    def ispe(width: int, height: int) -> int:
        return prop(full_box(b"ispe", 0, 0, struct.pack(">II", width, height)))

    def add_image(picture: np.ndarray, extra: list[int]) -> int:
        """Code `picture` as one item or a grid of tile items; `extra` properties go on the top item."""
        ph, pw = picture.shape[:2]
        th, tw = (tile, tile) if tile else (ph, pw)
        assert th % 2 == 0 and tw % 2 == 0, "4:2:0 pictures have even sizes"
        rows, cols = -(-ph // th), -(-pw // tw)
        padded = np.zeros((rows * th, cols * tw) + picture.shape[2:], np.uint8)
        padded[:ph, :pw] = picture
        padded[ph:] = padded[ph - 1 : ph]  # edge pixels into the padding, as encoders do
        padded[:, pw:] = padded[:, pw - 1 : pw]
        size = ispe(tw, th)
        ids = []
        for n in range(rows * cols):
            y, x = divmod(n, cols)
            record, data = encode_hevc(padded[y * th : (y + 1) * th, x * tw : (x + 1) * tw])
            item = len(types) + 1
            types[item], associations[item] = b"hvc1", [prop(box(b"hvcC", record)), size]
            coded.append((item, data))
            ids.append(item)
        if not tile:
            associations[ids[0]] += extra
            return ids[0]
        grid = len(types) + 1
        types[grid], associations[grid] = b"grid", [ispe(pw, ph), *extra]
        grids.append((grid, struct.pack(">BBBBHH", 0, 0, rows - 1, cols - 1, pw, ph)))
        refs.append((b"dimg", grid, ids))
        return grid

    transforms = []  # descriptive properties first, then the transforms in their order
    if icc is not None:
        payloads = {
            "nclx": b"nclx" + struct.pack(">HHHB", 1, 13, 6, 0),  # sRGB primaries and curve, BT.601 matrix
            "prof": b"prof" + icc,
        }
        transforms += [prop(box(b"colr", payloads[kind])) for kind in colr]
    if clap:
        cw, ch, dx, dy = clap
        transforms.append(prop(box(b"clap", struct.pack(">IIIIiIiI", cw, 1, ch, 1, dx, 1, dy, 1))))
    if rotation:
        transforms.append(prop(box(b"irot", bytes([rotation & 3]))))
    if mirror is not None:
        transforms.append(prop(box(b"imir", bytes([mirror]))))
    primary = add_image(image, transforms)
    if alpha is not None:
        aux = prop(full_box(b"auxC", 0, 0, b"urn:mpeg:hevc:2015:auxid:1\x00"))
        refs.append((b"auxl", add_image(alpha, [aux]), [primary]))

    def meta(mdat_start: int) -> bytes:
        infe = b"".join(
            full_box(b"infe", 2, 0, struct.pack(">HH4s", i, 0, t) + b"\x00") for i, t in sorted(types.items())
        )
        iloc_entries, offset, idat_offset = [], mdat_start, 0
        for i, data in coded:  # construction method 0: file offsets into mdat
            iloc_entries.append(struct.pack(">HHHHII", i, 0, 0, 1, offset, len(data)))
            offset += len(data)
        for i, data in grids:  # construction method 1: offsets into idat
            iloc_entries.append(struct.pack(">HHHHII", i, 1, 0, 1, idat_offset, len(data)))
            idat_offset += len(data)
        ipma = b"".join(
            struct.pack(">HB", i, len(a)) + bytes(0x80 | p if k == 0 else p for k, p in enumerate(a))
            for i, a in sorted(associations.items())
        )
        children = [
            full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"pict") + b"\x00"),
            full_box(b"pitm", 0, 0, struct.pack(">H", primary)),
            full_box(b"iinf", 0, 0, struct.pack(">H", len(types)) + infe),
            full_box(b"iloc", 1, 0, struct.pack(">HH", 0x4400, len(iloc_entries)) + b"".join(iloc_entries)),
            box(
                b"iprp",
                box(b"ipco", b"".join(props))
                + full_box(b"ipma", 0, 0, struct.pack(">I", len(associations)) + ipma),
            ),
        ]
        if refs:
            children.append(
                full_box(
                    b"iref",
                    0,
                    0,
                    b"".join(
                        box(k, struct.pack(">HH", src, len(to)) + struct.pack(f">{len(to)}H", *to))
                        for k, src, to in refs
                    ),
                )
            )
        if grids:
            children.append(box(b"idat", b"".join(data for _, data in grids)))
        return full_box(b"meta", 0, 0, b"".join(children))

    ftyp = box(b"ftyp", b"heic" + struct.pack(">I", 0) + b"mif1heic")
    head = ftyp + meta(0)
    head = ftyp + meta(len(head) + 8)  # the offsets' width is fixed, so the size does not change
    payload = b"".join(data for _, data in coded)
    with open(path, "wb") as f:
        f.write(head + box(b"mdat", payload))

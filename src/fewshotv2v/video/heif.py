"""HEIF still images (a phone's `.heic`, also `.heif`, `.hif` and `.avif`): the picture as it is displayed.

A phone's HEIC photo is not one coded picture but a grid of tiles (an iPhone's 4032 x 3024 photo: 8 x 6
HEVC pictures of 512 x 512, the grid cropped to the photo's size), turned and mirrored by item properties
(`irot`, `imir`) and optionally cropped (`clap`). FFmpeg's demuxer exposes each tile as its own stream and
the grid only as a stream group, which PyAV does not expose: decoding the file as a video gives the top-left
tile, silently. So this module reads the file's item structure itself (ISO/IEC 14496-12 boxes, ISO/IEC
23008-12 items), decodes each tile's bitstream with PyAV's decoder directly (the `hvcC` / `av1C` property
as extradata), lays the tiles out, lays a transparent photo over white (its alpha is an auxiliary image),
and applies the transforms in the order the file lists them. A `colr` ICC profile (an iPhone's Display
P3) is converted to sRGB by `video.icc`.

The EXIF orientation stored beside a HEIF image is not applied: HEIF says `irot` / `imir` are the
orientation (an iPhone writes both, consistently), and applying both would turn the photo twice.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from fewshotv2v.errors import InputError
from fewshotv2v.video.icc import to_srgb

# `ftyp` brands of HEIF still images (HEVC, AVIF and the generic MIAF / image-file brands).
HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"miaf", b"heic", b"heix", b"heim", b"heis", b"avif", b"avis"})
_CODECS = {"hvc1": ("hevc", "hvcC"), "av01": ("libdav1d", "av1C")}
_ALPHA_TYPES = ("urn:mpeg:hevc:2015:auxid:1", "urn:mpeg:mpegB:cicp:systems:auxiliary:alpha")
_MAX_TILES = 4096  # a 200-megapixel photo has 817 tiles of 512 x 512
# `colr` nclx matrix coefficients (ITU-T H.273) -> swscale's colorspaces; others keep the bitstream's.
_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


class _Broken(ValueError):
    """The file's boxes do not parse (truncated, corrupt)."""


class _Unsupported(ValueError):
    """A valid HEIF file this reader does not decode (an overlay, a coding other than HEVC / AV1)."""


@dataclass
class _Item:
    id: int
    type: str = ""  # 'hvc1', 'av01', 'grid', 'iden', 'Exif', ...
    construction: int = 0  # 0: extents are file offsets; 1: offsets into the `idat` box
    extents: list[tuple[int, int]] = field(default_factory=list)  # (offset, length)
    properties: list[tuple[str, bytes]] = field(default_factory=list)  # (4cc, payload), as `ipma` lists them
    refs: dict[str, list[int]] = field(default_factory=dict)  # reference type -> items this one points to

    def prop(self, kind: str) -> bytes | None:
        return next((payload for k, payload in self.properties if k == kind), None)

    def colour(self, *kinds: bytes) -> bytes | None:
        """The first `colr` property of one of `kinds` (`nclx`, `prof`, `rICC`): an item may have two."""
        return next((p for k, p in self.properties if k == "colr" and p[:4] in kinds), None)


def is_heif(head: bytes) -> bool:
    """Whether a file starting with `head` (at least its first 32 bytes) is a HEIF still image."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return False
    size = min(struct.unpack(">I", head[:4])[0], len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, size - 3, 4)]
    return any(b in HEIF_BRANDS for b in brands)


def read_heif(path: str | Path, *, gray: bool = False) -> np.ndarray:
    """Decode a HEIF file's primary image -> `uint8 (H, W, 3)` RGB (or `(H, W)` gray), as displayed."""
    data = Path(path).read_bytes()
    try:
        primary, items, idat = _parse(data)
        image = _decode_item(primary, items, data, idat, gray)
        if not gray:
            image = to_srgb(image, _profile_of(primary, items))
        alpha = _alpha_of(primary, items)
        if alpha is not None:
            image = _over_white(image, _decode_item(alpha, items, data, idat, True, alpha=True))
        return _transformed(image, primary)
    except _Broken as exc:
        raise InputError(f"cannot read image {path}: broken HEIF file ({exc})") from None
    except _Unsupported as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot read image {path}: a HEIF picture does not decode ({exc})") from None


# --------------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int):
    """Yield `(type, payload_start, payload_end)` for each box in `data[start:end]`."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _Broken("truncated box header")
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise _Broken(f"box {kind.decode('latin-1')!r} runs past its parent")
        yield kind.decode("latin-1"), pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    return next(((s, e) for k, s, e in _boxes(data, start, end) if k == kind), None)


class _Reader:
    """Big-endian fields from `data[pos:end]`; a field past `end` means a broken box."""

    def __init__(self, data: bytes, pos: int, end: int):
        self.data, self.pos, self.end = data, pos, end

    def uint(self, nbytes: int) -> int:
        if nbytes == 0:
            return 0
        if self.pos + nbytes > self.end:
            raise _Broken("a box is shorter than its fields")
        value = int.from_bytes(self.data[self.pos : self.pos + nbytes], "big")
        self.pos += nbytes
        return value

    def full_box(self) -> tuple[int, int]:
        """(version, flags) of a FullBox header."""
        value = self.uint(4)
        return value >> 24, value & 0xFFFFFF


def _parse(data: bytes) -> tuple[_Item, dict[int, _Item], tuple[int, int]]:
    """The primary item, all items by id, and the `idat` payload range."""
    meta = _child(data, 0, len(data), "meta")
    if meta is None:
        raise _Broken("no 'meta' box")
    start, end = meta[0] + 4, meta[1]  # `meta` is a FullBox
    boxes = {k: (s, e) for k, s, e in _boxes(data, start, end)}
    for needed in ("pitm", "iinf", "iloc"):
        if needed not in boxes:
            raise _Broken(f"no {needed!r} box")
    r = _Reader(data, *boxes["pitm"])
    version, _ = r.full_box()
    primary_id = r.uint(2 if version == 0 else 4)

    items: dict[int, _Item] = {}

    def item(item_id: int) -> _Item:
        return items.setdefault(item_id, _Item(item_id))

    r = _Reader(data, *boxes["iinf"])
    version, _ = r.full_box()
    r.uint(2 if version == 0 else 4)  # entry count; the `infe` boxes follow
    for kind, s, e in _boxes(data, r.pos, r.end):
        if kind != "infe":
            continue
        ir = _Reader(data, s, e)
        version, _ = ir.full_box()
        if version < 2:
            continue  # version 0/1 entries carry no item type (not used by still images)
        entry = item(ir.uint(2 if version == 2 else 4))
        ir.uint(2)  # protection index
        entry.type = data[ir.pos : ir.pos + 4].decode("latin-1")

    r = _Reader(data, *boxes["iloc"])
    version, _ = r.full_box()
    sizes = r.uint(2)
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    for _ in range(r.uint(2 if version < 2 else 4)):
        entry = item(r.uint(2 if version < 2 else 4))
        if version in (1, 2):
            entry.construction = r.uint(2) & 15
        r.uint(2)  # data reference index (0: this file)
        base = r.uint(base_size)
        for _ in range(r.uint(2)):
            r.uint(index_size)
            offset, length = r.uint(offset_size), r.uint(length_size)
            entry.extents.append((base + offset, length))

    if "iref" in boxes:
        r = _Reader(data, *boxes["iref"])
        version, _ = r.full_box()
        id_size = 2 if version == 0 else 4
        for kind, s, e in _boxes(data, r.pos, r.end):
            rr = _Reader(data, s, e)
            source = item(rr.uint(id_size))
            source.refs.setdefault(kind, []).extend(rr.uint(id_size) for _ in range(rr.uint(2)))

    if "iprp" in boxes:
        ipco = _child(data, *boxes["iprp"], "ipco")
        properties = [(k, data[s:e]) for k, s, e in _boxes(data, *ipco)] if ipco else []
        for _, s, e in (b for b in _boxes(data, *boxes["iprp"]) if b[0] == "ipma"):
            r = _Reader(data, s, e)
            version, flags = r.full_box()
            for _ in range(r.uint(4)):
                entry = item(r.uint(2 if version < 1 else 4))
                for _ in range(r.uint(1)):
                    index = r.uint(2) & 0x7FFF if flags & 1 else r.uint(1) & 0x7F
                    if 0 < index <= len(properties):
                        entry.properties.append(properties[index - 1])

    if primary_id not in items:
        raise _Broken(f"the primary item {primary_id} is not described")
    idat = boxes.get("idat", (0, 0))
    return items[primary_id], items, idat


def _item_bytes(entry: _Item, data: bytes, idat: tuple[int, int]) -> bytes:
    base, limit = (idat[0], idat[1]) if entry.construction == 1 else (0, len(data))
    if entry.construction not in (0, 1):
        raise _Broken(f"item {entry.id} is stored by reference, not supported")
    chunks = []
    for offset, length in entry.extents:
        start = base + offset
        stop = limit if length == 0 else start + length  # length 0: to the end
        if start > limit or stop > limit:
            raise _Broken(f"item {entry.id}'s data runs past the end of the file")
        chunks.append(data[start:stop])
    if not chunks:
        raise _Broken(f"item {entry.id} has no data")
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------------


def _decode_item(
    entry: _Item, items: dict[int, _Item], data: bytes, idat, gray: bool, depth: int = 0, alpha: bool = False
) -> np.ndarray:
    """One item's picture, before its own transforms: a coded picture, a grid of them, or an identity
    item (`iden`: its one source, transformed). `alpha`: an alpha plane, whose samples are opacities as
    they are (full range, whatever the bitstream says; as libheif reads them)."""
    if depth > 4:
        raise _Broken("derived images nested too deep")
    if entry.type == "grid":
        return _decode_grid(entry, items, data, idat, gray, alpha)
    if entry.type == "iden":
        source = items.get((entry.refs.get("dimg") or [0])[0])
        if source is None:
            raise _Broken(f"identity item {entry.id} has no source")
        return _transformed(_decode_item(source, items, data, idat, gray, depth + 1, alpha), source)
    return _decode_coded([entry], data, idat, gray, alpha=alpha)[0]


def _decode_grid(
    entry: _Item, items: dict[int, _Item], data: bytes, idat, gray: bool, alpha: bool
) -> np.ndarray:
    grid = _item_bytes(entry, data, idat)
    r = _Reader(grid, 0, len(grid))
    r.uint(1)  # version
    flags = r.uint(1)
    rows, cols = r.uint(1) + 1, r.uint(1) + 1
    size = 4 if flags & 1 else 2
    width, height = r.uint(size), r.uint(size)
    tile_ids = entry.refs.get("dimg", [])
    if len(tile_ids) != rows * cols or rows * cols > _MAX_TILES:
        raise _Broken(f"a {rows} x {cols} grid with {len(tile_ids)} tiles")
    tiles_items = [items.get(i) for i in tile_ids]
    if any(t is None for t in tiles_items):
        raise _Broken("a grid tile is not described")
    tiles = _decode_coded(tiles_items, data, idat, gray, colour=entry.colour(b"nclx"), alpha=alpha)
    th, tw = tiles[0].shape[:2]
    if any(t.shape != tiles[0].shape for t in tiles) or cols * tw < width or rows * th < height:
        raise _Broken("grid tiles of different sizes, or too few to cover the image")
    canvas = np.empty((rows * th, cols * tw) + tiles[0].shape[2:], dtype=np.uint8)
    for n, tile in enumerate(tiles):
        y, x = divmod(n, cols)
        canvas[y * th : (y + 1) * th, x * tw : (x + 1) * tw] = tile
    return canvas[:height, :width]


def _decode_coded(
    entries: list[_Item], data: bytes, idat, gray: bool, colour: bytes | None = None, alpha: bool = False
) -> list[np.ndarray]:
    """Decode coded items (HEVC or AV1 pictures) in order; items with the same codec configuration share
    one decoder (a grid's tiles usually all do). A `colr` nclx property (the item's own, else `colour`,
    its grid's) says the matrix and range, and takes precedence over the bitstream's (HEIF; libheif does
    the same): a camera's 10-bit tiles tagged full range in the bitstream but limited in `colr` were
    otherwise shown washed out."""
    out: list[np.ndarray | None] = [None] * len(entries)
    fmt = "gray" if gray else "rgb24"
    groups: dict[tuple[str, bytes], list[int]] = {}
    for n, entry in enumerate(entries):
        if entry.type not in _CODECS:
            raise _Unsupported(f"HEIF images of type {entry.type or 'unknown'!r} are not supported")
        codec, config_box = _CODECS[entry.type]
        config = entry.prop(config_box)
        if config is None:
            raise _Broken(f"item {entry.id} has no {config_box!r} property")
        groups.setdefault((codec, config), []).append(n)
    for (codec, config), members in groups.items():
        ctx = _decoder(codec)
        ctx.extradata = config  # hvcC's / av1C's payload: the configuration record FFmpeg takes as extradata
        frames = []
        for pts, n in enumerate(members):
            packet = av.Packet(_item_bytes(entries[n], data, idat))
            packet.pts = pts
            frames.extend(ctx.decode(packet))
        frames.extend(ctx.decode(None))
        if len(frames) != len(members):
            raise _Broken(f"{len(members)} pictures gave {len(frames)} frames")
        for frame in frames:
            n = members[frame.pts or 0]
            matrix, full_range = (None, True) if alpha else _nclx(entries[n].colour(b"nclx") or colour)
            out[n] = frame.reformat(
                format=fmt,
                src_colorspace=matrix,
                src_color_range=None if full_range is None else ("JPEG" if full_range else "MPEG"),
            ).to_ndarray()
    if any(o is None for o in out):
        raise _Broken("a picture did not decode")
    return out


def _nclx(colr: bytes | None) -> tuple[str | None, bool | None]:
    """(swscale colorspace, full range) from a `colr` property of type nclx; (None, None) otherwise."""
    if colr is None or len(colr) < 11 or colr[:4] != b"nclx":
        return None, None
    matrix = struct.unpack(">H", colr[8:10])[0]
    return _MATRICES.get(matrix), bool(colr[10] & 0x80)


def _decoder(codec: str) -> av.CodecContext:
    """A decoder for `codec`; AV1 through dav1d, else FFmpeg's own (PyAV's wheels ship dav1d)."""
    for name in (codec, "av1") if codec == "libdav1d" else (codec,):
        try:
            return av.CodecContext.create(name, "r")
        except (av.error.FFmpegError, ValueError):
            continue
    raise _Unsupported(f"this PyAV build has no {codec} decoder")


def _profile_of(primary: _Item, items: dict[int, _Item]) -> bytes | None:
    """The ICC profile of the primary image: a `colr` of type `prof` / `rICC` on it, else on the item it
    is made from (a grid's first tile, an `iden`'s source)."""
    entry = primary
    for _ in range(4):  # grid -> tile, iden -> source: never deeper than a few steps
        colr = entry.colour(b"prof", b"rICC")
        if colr is not None:
            return colr[4:]
        sources = entry.refs.get("dimg")
        if not sources or sources[0] not in items:
            return None
        entry = items[sources[0]]
    return None


def _alpha_of(primary: _Item, items: dict[int, _Item]) -> _Item | None:
    """The auxiliary alpha image of `primary` (an item whose `auxl` reference points to it)."""
    for entry in items.values():
        if primary.id in entry.refs.get("auxl", []):
            aux = entry.prop("auxC")
            if aux is not None and any(t.encode() in aux for t in _ALPHA_TYPES):
                return entry
    return None


def _over_white(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`image` laid over white with `alpha (H', W')`, scaled to the image if its size differs."""
    from fewshotv2v.video.images import over_white, resize_image  # images imports this module

    if alpha.shape[:2] != image.shape[:2]:
        alpha = resize_image(alpha, image.shape[1], image.shape[0])
    return over_white(image, alpha)


def _transformed(image: np.ndarray, entry: _Item) -> np.ndarray:
    """Apply the item's transformative properties in the order they are listed: `clap` (crop), `irot`
    (quarter turns counter-clockwise) and `imir` (ISO/IEC 23008-12:2022's `mode`: 0 exchanges top and
    bottom, 1 left and right; what iPhones and libheif do)."""
    for kind, payload in entry.properties:
        if kind == "clap" and len(payload) >= 32:
            image = _clean_aperture(image, struct.unpack(">IIIIiIiI", payload[:32]))
        elif kind == "irot" and payload:
            image = np.rot90(image, payload[0] & 3)
        elif kind == "imir" and payload:
            image = image[:, ::-1] if payload[0] & 1 else image[::-1]
    return np.ascontiguousarray(image)


def _clean_aperture(image: np.ndarray, fields: tuple[int, ...]) -> np.ndarray:
    """Crop to the `clap` box: its size and its centre's offset from the image's centre, as fractions."""
    wn, wd, hn, hd, xn, xd, yn, yd = fields
    if not (wd and hd and xd and yd):
        return image
    h, w = image.shape[:2]
    cw, ch = wn / wd, hn / hd
    left = xn / xd + (w - 1) / 2 - (cw - 1) / 2
    top = yn / yd + (h - 1) / 2 - (ch - 1) / 2
    x0, y0 = max(0, round(left)), max(0, round(top))
    x1, y1 = min(w, x0 + round(cw)), min(h, y0 + round(ch))
    return image[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else image

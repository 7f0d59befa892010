"""Run-folder outputs: the JSONL loss log, the loss-curve PNG and the sample grids.

No plotting or imaging library is needed: PNGs are encoded here with `zlib` (8-bit RGB, filter 0) and the
loss curves are drawn by a tiny rasteriser (lines on a white canvas, axes, a 3x5 pixel font for labels).
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

# ---- PNG --------------------------------------------------------------------------------------------


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W, 3) RGB (or (H, W) gray) -> PNG bytes."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    h, w, _ = image.shape
    # Each scanline starts with its filter type byte (0 = none).
    raw = np.concatenate([np.zeros((h, 1), np.uint8), image.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit, colour type 2 (RGB)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write atomically (temp file + rename) so a viewer never sees half an image."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(encode_png(image))
    tmp.replace(path)


# ---- JSONL log --------------------------------------------------------------------------------------


class LossLog:
    """Appends one JSON object per logged step to `log.jsonl` (step, time, losses, lr, k, T, ...)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.start = time.time()

    def write(self, record: dict[str, Any]) -> None:
        record = {"time": round(time.time() - self.start, 3), **record}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records after `step` (a resumed run rewrites the steps after its checkpoint)."""
        if not self.path.is_file():
            return
        keep = [r for r in read_log(self.path) if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a `log.jsonl` (a torn last line from a crash is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


# ---- tiny font and rasteriser -------------------------------------------------------------------------

# 3x5 glyphs, rows top to bottom, '#' = ink. Enough for loss names and numbers.
_GLYPHS = {
    "0": "###,#.#,#.#,#.#,###",
    "1": ".#.,##.,.#.,.#.,###",
    "2": "##.,..#,.#.,#..,###",
    "3": "##.,..#,.#.,..#,##.",
    "4": "#.#,#.#,###,..#,..#",
    "5": "###,#..,##.,..#,##.",
    "6": ".##,#..,###,#.#,###",
    "7": "###,..#,.#.,.#.,.#.",
    "8": "###,#.#,###,#.#,###",
    "9": "###,#.#,###,..#,##.",
    ".": "...,...,...,...,.#.",
    "-": "...,...,###,...,...",
    "+": "...,.#.,###,.#.,...",
    "_": "...,...,...,...,###",
    ":": "...,.#.,...,.#.,...",
    "e": "...,###,#.#,##.,.##",
    "a": "...,.##,#.#,#.#,.##",
    "b": "#..,##.,#.#,#.#,##.",
    "c": "...,.##,#..,#..,.##",
    "d": "..#,.##,#.#,#.#,.##",
    "f": ".##,#..,###,#..,#..",
    "g": ".##,#..,#.#,#.#,.##",
    "h": "#..,##.,#.#,#.#,#.#",
    "i": ".#.,...,.#.,.#.,.#.",
    "j": "..#,...,..#,#.#,.#.",
    "k": "#..,#.#,##.,#.#,#.#",
    "l": "##.,.#.,.#.,.#.,###",
    "m": "...,###,###,#.#,#.#",
    "n": "...,##.,#.#,#.#,#.#",
    "o": "...,.#.,#.#,#.#,.#.",
    "p": "...,##.,#.#,##.,#..",
    "q": "...,.##,#.#,.##,..#",
    "r": "...,#.#,##.,#..,#..",
    "s": "...,.##,##.,..#,##.",
    "t": ".#.,###,.#.,.#.,.##",
    "u": "...,#.#,#.#,#.#,.##",
    "v": "...,#.#,#.#,#.#,.#.",
    "w": "...,#.#,#.#,###,###",
    "x": "...,#.#,.#.,#.#,#.#",
    "y": "...,#.#,.##,..#,##.",
    "z": "...,###,..#,#..,###",
    " ": "...,...,...,...,...",
}


def draw_text(canvas: np.ndarray, x: int, y: int, text: str, color=(0, 0, 0), scale: int = 1) -> None:
    """Draw `text` (lower-cased; unknown characters become spaces) with its top-left corner at (x, y)."""
    for ch in text.lower():
        rows = _GLYPHS.get(ch, _GLYPHS[" "]).split(",")
        for r, row in enumerate(rows):
            for c, px in enumerate(row):
                if px == "#":
                    y0, x0 = y + r * scale, x + c * scale
                    canvas[max(0, y0) : y0 + scale, max(0, x0) : x0 + scale] = color
        x += 4 * scale


def draw_line(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, color) -> None:
    """A 1-pixel line by dense sampling (simple and fast enough for a few thousand points)."""
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, n + 1)).astype(int)
    ys = np.rint(np.linspace(y0, y1, n + 1)).astype(int)
    h, w = canvas.shape[:2]
    ok = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    canvas[ys[ok], xs[ok]] = color


def _fmt(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if 0.01 <= abs(value) < 1000:
        return f"{value:.3g}"
    return f"{value:.1e}"


def plot_losses(records: list[dict[str, Any]], *, panel_w: int = 240, panel_h: int = 110) -> np.ndarray:
    """One small panel per loss (own y range), step on x, 2 columns; returns uint8 (H, W, 3)."""
    names = sorted({k for r in records for k in r.get("losses", {})})
    cols = 2
    rows = max(1, math.ceil(len(names) / cols))
    canvas = np.full((rows * panel_h, cols * panel_w, 3), 255, np.uint8)
    left, right, top, bottom = 34, 8, 12, 12
    for i, name in enumerate(names):
        ox, oy = (i % cols) * panel_w, (i // cols) * panel_h
        pts = [(r["step"], r["losses"][name]) for r in records if name in r.get("losses", {})]
        pts = [(s, v) for s, v in pts if isinstance(v, int | float) and math.isfinite(v)]
        draw_text(canvas, ox + left, oy + 3, name)
        x0, x1 = ox + left, ox + panel_w - right
        y0, y1 = oy + panel_h - bottom, oy + top  # y0 = bottom (axis), y1 = top
        draw_line(canvas, x0, y0, x1, y0, (0, 0, 0))  # x axis
        draw_line(canvas, x0, y0, x0, y1, (0, 0, 0))  # y axis
        if not pts:
            continue
        steps = np.array([p[0] for p in pts], dtype=np.float64)
        vals = np.array([p[1] for p in pts], dtype=np.float64)
        smin, smax = steps.min(), max(steps.max(), steps.min() + 1)
        vmin, vmax = vals.min(), vals.max()
        if vmax - vmin < 1e-12:
            vmin, vmax = vmin - 0.5, vmax + 0.5
        draw_text(canvas, ox + 1, y1, _fmt(vmax)[:8])
        draw_text(canvas, ox + 1, y0 - 5, _fmt(vmin)[:8])
        draw_text(canvas, x0, y0 + 4, str(int(smin)))
        label = str(int(smax))
        draw_text(canvas, x1 - 4 * len(label), y0 + 4, label)
        px = x0 + (steps - smin) / (smax - smin) * (x1 - x0)
        py = y0 - (vals - vmin) / (vmax - vmin) * (y0 - y1)
        color = (30, 90, 200) if not name.startswith("d_") else (200, 60, 40)
        if len(px) == 1:
            canvas[int(py[0]) - 1 : int(py[0]) + 2, int(px[0]) - 1 : int(px[0]) + 2] = color
        for a in range(len(px) - 1):
            draw_line(canvas, px[a], py[a], px[a + 1], py[a + 1], color)
    return canvas


def write_loss_curves(log_path: str | Path, png_path: str | Path) -> None:
    write_png(png_path, plot_losses(read_log(log_path)))


# ---- sample grids -------------------------------------------------------------------------------------

# A fixed palette for one-hot street labels (class c -> colour), deterministic.
_PALETTE = (np.random.default_rng(7).integers(40, 256, size=(256, 3))).astype(np.float32) / 255.0


def label_to_rgb(label: np.ndarray) -> np.ndarray:
    """A label map float (C, H, W) in [0, 1] -> float (3, H, W) in [0, 1] for display: 1 channel = gray,
    3-4 channels (pose skeleton RGB + mask) = the RGB part, more = palette colour of the argmax class."""
    c = label.shape[0]
    if c == 1:
        return np.repeat(label, 3, axis=0)
    if c in (3, 4):
        rgb = label[:3]
        if c == 4:  # show the person mask dimly beneath the skeleton
            rgb = np.maximum(rgb, 0.3 * label[3:4])
        return rgb
    return _PALETTE[label.argmax(0) % len(_PALETTE)].transpose(2, 0, 1)


def sample_grid(columns: list[np.ndarray], *, pad: int = 2) -> np.ndarray:
    """`columns`: list of float arrays (B, 3, H, W) in [0, 1] (reference | label | output | real).
    Returns uint8 (B*(H+pad)+pad, n*(W+pad)+pad, 3): one row per sample, white padding."""
    b, _, h, w = columns[0].shape
    n = len(columns)
    grid = np.full((b * (h + pad) + pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for j, col in enumerate(columns):
        for i in range(b):
            tile = (np.clip(col[i], 0.0, 1.0).transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = tile
    return grid

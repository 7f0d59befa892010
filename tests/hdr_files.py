"""Write small HDR videos as phones do, for the reader's tests: 10-bit HEVC, BT.2020 matrix and primaries,
HLG or PQ, made from an SDR picture by the standards' own formulas (BT.2100, BT.2087, BT.2408: SDR white
at 203 cd/m2)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

PQ, HLG = 16, 18
_BT2020_FROM_BT709 = np.array(
    [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
)  # BT.2087
_LUMA_2020 = np.array([0.2627, 0.6780, 0.0593])


def hlg_signal(light: np.ndarray) -> np.ndarray:
    """Display light (BT.2020 RGB, cd/m2 on a 1000 cd/m2 display) -> HLG signal (inverse OOTF, OETF)."""
    luma = np.maximum(light @ _LUMA_2020 / 1000.0, 1e-9)[..., None]
    scene = light / 1000.0 / luma ** (0.2 / 1.2)
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    small = np.sqrt(3.0 * np.maximum(scene, 0.0))
    large = a * np.log(np.maximum(12.0 * scene - b, 1e-9)) + c
    return np.where(scene <= 1 / 12, small, large)


def pq_signal(light: np.ndarray) -> np.ndarray:
    """Display light (cd/m2) -> PQ signal (SMPTE ST 2084 inverse EOTF)."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = np.clip(light / 10000.0, 0.0, 1.0) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def write_hdr_video(
    path,
    sdr: np.ndarray,
    transfer: int,
    *,
    frames: int = 2,
    highlight: float = 1.0,
    fps: int = 10,
    x265: str = "crf=4",
):
    """`sdr uint8 (H, W, 3)` (BT.709, coded for a BT.1886 display), its light times `highlight`, as an
    HDR video of `frames` equal frames at `fps`; `x265`: more x265 parameters (`crf=22:preset=ultrafast`
    for a quick 4K clip)."""
    light = (sdr / 255.0) ** 2.4 * highlight @ _BT2020_FROM_BT709.T * 203.0  # cd/m2, BT.2020 RGB
    signal = hlg_signal(light) if transfer == HLG else pq_signal(light)
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(signal.astype(np.float32)), format="gbrpf32le")
    h, w = sdr.shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx265", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p10le"
        stream.options = {"x265-params": f"log-level=none:bframes=0:{x265}"}
        ctx = stream.codec_context
        ctx.colorspace, ctx.color_primaries, ctx.color_trc, ctx.color_range = 9, 9, transfer, 1
        yuv = rgb.reformat(
            format="yuv420p10le", dst_colorspace=Colorspace.BT2020, dst_color_range=ColorRange.MPEG
        )
        packets = []
        for n in range(frames):
            yuv.pts, yuv.time_base = n, Fraction(1, fps)
            packets += stream.encode(yuv)
        for packet in packets + stream.encode():
            # libx265 here now and then returns a packet with a garbage dts (-9.4e13), which the muxer
            # refuses; with no B-frames the decode order is the display order.
            packet.dts = packet.pts
            out.mux(packet)
    return path

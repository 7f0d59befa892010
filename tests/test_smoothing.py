"""One-Euro and median filters over canonical keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotv2v.errors import ConfigError
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.smoothing import MedianFilter, OneEuroFilter, make_filter, smooth_sequence


def _jittery_static(n=120, sigma=2.0, seed=0):
    rng = np.random.default_rng(seed)
    seq = np.zeros((n, 137, 3), np.float32)
    seq[:, :, 0], seq[:, :, 1], seq[:, :, 2] = 100.0, 50.0, 1.0
    seq[:, :, :2] += rng.normal(0, sigma, (n, 137, 2))
    return seq


def test_one_euro_removes_jitter_at_rest():
    seq = _jittery_static()
    out = smooth_sequence(seq, "one_euro", fps=30.0, min_cutoff=1.0, beta=0.0)
    raw_err = np.abs(seq[30:, :, 0] - 100).mean()
    filt_err = np.abs(out[30:, :, 0] - 100).mean()
    assert filt_err < 0.5 * raw_err
    np.testing.assert_array_equal(out[..., 2], seq[..., 2])  # confidences untouched


def test_one_euro_beta_reduces_lag_on_fast_motion():
    t = np.arange(60) / 30.0
    seq = np.zeros((60, 137, 3), np.float32)
    seq[:, :, 0], seq[:, :, 1], seq[:, :, 2] = (300.0 * t)[:, None], 10.0, 1.0  # 300 px/s
    slow = smooth_sequence(seq, fps=30.0, min_cutoff=1.0, beta=0.0)
    fast = smooth_sequence(seq, fps=30.0, min_cutoff=1.0, beta=0.05)
    lag_slow = seq[-1, 0, 0] - slow[-1, 0, 0]
    lag_fast = seq[-1, 0, 0] - fast[-1, 0, 0]
    assert lag_slow > 10 and 0 <= lag_fast < 0.3 * lag_slow


def test_one_euro_missing_points_restart():
    f = OneEuroFilter(fps=30.0, min_cutoff=0.5, beta=0.0)
    k = kp.empty()
    k[0] = (10, 10, 1)
    f(k)
    for _ in range(5):
        f(k)
    gone = kp.empty()
    out = f(gone)
    assert (out == 0).all()  # missing stays missing
    back = kp.empty()
    back[0] = (200, 200, 1)  # reappears far away: no sliding in from the old place
    np.testing.assert_allclose(f(back)[0], (200, 200, 1))
    # Timestamps: a long gap gives a larger step towards the new value than a short one.
    a, b = OneEuroFilter(min_cutoff=1.0), OneEuroFilter(min_cutoff=1.0)
    k0, k1 = kp.empty(), kp.empty()
    k0[0], k1[0] = (0, 0, 1), (10, 0, 1)
    a(k0, 0.0), b(k0, 0.0)
    assert a(k1, 1.0)[0, 0] > b(k1, 0.01)[0, 0]


def test_median_filter():
    f = MedianFilter(window=3)
    vals = [0.0, 0.0, 50.0, 0.0, 0.0]  # one outlier frame
    outs = []
    for v in vals:
        k = kp.empty()
        k[0] = (v, v, 1)
        outs.append(f(k)[0, 0])
    assert max(outs) == 0.0  # the spike is removed
    k = kp.empty()
    assert (f(k) == 0).all()  # missing stays missing
    seq = _jittery_static(40)
    out = smooth_sequence(seq, "median", window=5)
    assert np.abs(out[10:, :, 0] - 100).mean() < np.abs(seq[10:, :, 0] - 100).mean()


def test_bad_parameters():
    with pytest.raises(ConfigError):
        OneEuroFilter(min_cutoff=0)
    with pytest.raises(ConfigError):
        MedianFilter(window=0)
    with pytest.raises(ConfigError):
        make_filter("kalman")
    assert smooth_sequence(np.zeros((0, 137, 3), np.float32)).shape == (0, 137, 3)


def _moving_person(size: float, n: int = 60, fps: float = 30.0) -> np.ndarray:
    """(n, 137, 3): points spread over a box of side `size` px, moving right at one size per second."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0, size, (137, 2)).astype(np.float32)
    seq = np.zeros((n, 137, 3), np.float32)
    seq[:, :, :2] = base + np.stack([size * np.arange(n) / fps, np.zeros(n)], -1)[:, None]
    seq[:, :, 2] = 1.0
    return seq


def test_one_euro_smooths_a_small_video_as_much_as_a_large_one():
    """The speed is measured in subject sizes: the same motion lags the same share of the subject in a
    176 x 144 video and a 4K one (in pixel units the small one lagged far behind)."""
    lags = {}
    for relative in (True, False):
        for size in (60.0, 1200.0):
            seq = _moving_person(size)
            out = smooth_sequence(seq, fps=30.0, min_cutoff=1.0, beta=5.0, relative=relative)
            lags[relative, size] = float((seq[-1, :, 0] - out[-1, :, 0]).mean()) / size
    assert lags[True, 60.0] == pytest.approx(lags[True, 1200.0], rel=1e-3)
    assert lags[True, 60.0] < 1 / 30  # under one frame of the motion
    assert lags[False, 60.0] > 5 * lags[False, 1200.0]


def test_face_mode_keeps_a_talking_mouth():
    """A 60 px face whose lower lip opens and closes 3 times a second (speech): the face mode's filter keeps
    most of the opening (0.1's pixel-unit filter kept a third of it, which cost 2.5 dB in the carphone
    self-reenactment), the pose mode's smooths more."""
    fps, n = 30.0, 90
    seq = np.repeat(_moving_person(60.0, n=1), n, axis=0)
    opening = 6.0 * (1 - np.cos(2 * np.pi * 3.0 * np.arange(n) / fps)) / 2  # px, 0..6
    lip = 25 + 57  # a lower-lip landmark (iBUG 57)
    seq[:, lip, 1] += opening

    def kept(filt) -> float:
        out = np.stack([filt(k) for k in seq])
        return float(np.ptp(out[30:, lip, 1]) / np.ptp(seq[30:, lip, 1]))

    face, pose = kept(OneEuroFilter.for_mode("face", fps=fps)), kept(OneEuroFilter.for_mode("pose", fps=fps))
    old = kept(OneEuroFilter(fps=fps, min_cutoff=1.0, beta=0.01, relative=False))
    assert face > 0.85 and face > pose and old < 0.5

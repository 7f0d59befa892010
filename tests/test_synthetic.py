"""Synthetic people: determinism, per-identity appearance, exact keypoints, dataset output, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from fewshotv2v.data.synthetic import (
    Pose,
    demo_pair,
    generate_dataset,
    make_identity,
    motion,
    render_clip,
    render_person,
)
from fewshotv2v.errors import ConfigError, OutputExistsError

HW = (64, 64)


def test_render_shapes_and_ranges():
    image, kps, mask = render_person(make_identity(0), Pose(), (96, 80))
    assert image.shape == (96, 80, 3) and image.dtype == np.uint8
    assert kps.shape == (137, 3) and kps.dtype == np.float32
    assert mask.shape == (96, 80) and mask.min() >= 0.0 and mask.max() == pytest.approx(1.0)
    assert set(np.unique(kps[:, 2])) <= {0.0, 1.0}
    assert kps[:, 2].mean() > 0.95  # a standing person is (almost) entirely inside the frame


def test_deterministic_with_seed():
    a = render_clip(make_identity(3, seed=5), motion("random", 6, seed=2), HW)
    b = render_clip(make_identity(3, seed=5), motion("random", 6, seed=2), HW)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    c = render_clip(make_identity(3, seed=6), motion("random", 6, seed=2), HW)
    assert not np.array_equal(a[0], c[0])


def test_identities_differ_in_appearance():
    means = []
    for i in range(4):
        image, _, mask = render_person(make_identity(i), Pose(), (128, 128))
        person = image[mask > 0.99].astype(np.float32)
        means.append(person.mean(0))
    means = np.array(means)
    dists = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(4, 1)]
    assert dists.min() > 5.0  # mean colour of the painted person, 0..255 scale


@pytest.mark.parametrize("kind", ["idle", "walk", "wave", "dance"])
def test_body_joints_lie_on_the_painted_body(kind):
    identity = make_identity(1)
    for pose in motion(kind, 12, seed=1)[::3]:
        _, kps, mask = render_person(identity, pose, (128, 128))
        body = kps[:25]
        ok = body[:, 2] > 0
        xi, yi = np.rint(body[ok, 0]).astype(int), np.rint(body[ok, 1]).astype(int)
        assert (mask[yi, xi] > 0.5).all(), kind


def test_motion_is_smooth_and_moves():
    poses = motion("dance", 50, seed=0)
    kps = np.stack([render_person(make_identity(0), p, (128, 128))[1] for p in poses])[:, :25, :2]
    step = np.abs(np.diff(kps, axis=0)).max()
    assert step < 8.0  # pixels per frame at 128 px: smooth
    assert np.ptp(kps[:, 4], axis=0).max() > 10.0  # the right wrist really moves


def test_off_frame_points_have_zero_confidence():
    _, kps, _ = render_person(make_identity(0), Pose(dx=0.9), (64, 64))
    outside = kps[:, 0] > 63
    assert outside.any() and (kps[outside, 2] == 0).all()


def test_face_framing_shows_the_face():
    image, kps, mask = render_person(make_identity(2), Pose(), (64, 64), framing="face")
    face = kps[25:95]
    assert (face[:, 2] == 1).all()
    assert np.ptp(face[:17, 0]) > 20  # jaw spans a good part of the frame


def test_an_open_mouth_drops_the_lower_lip_and_shows_the_dark_inside():
    """The motions open the mouth (`Pose.mouth`): the lower lip's landmarks and pixels move with it, so
    face datasets hold the motion a real talking head makes most, not rigid heads only."""
    from fewshotv2v.semantics import keypoints as kp

    who = make_identity(2)
    closed, k0, _ = render_person(who, Pose(mouth=0.0), (128, 128), framing="face")
    wide, k1, _ = render_person(who, Pose(mouth=1.0), (128, 128), framing="face")
    f0, f1 = k0[kp.FACE][:68], k1[kp.FACE][:68]
    assert np.allclose(f0[:48], f1[:48])  # jaw, brows, nose and eyes stay
    inner_gap = lambda f: f[66, 1] - f[62, 1]  # noqa: E731 - inner lips apart, pixels
    assert inner_gap(f1) > inner_gap(f0) + 5
    centre = np.round((f1[62, :2] + f1[66, :2]) / 2).astype(int)  # between the open inner lips
    x, y = centre
    assert closed[y, x].mean() > 90  # lip or skin before
    assert wide[y - 1 : y + 2, x - 1 : x + 2].mean() < 70  # the mouth's dark inside now
    assert motion("wave", 25)[0].mouth != motion("wave", 25)[12].mouth  # and the motions use it


def test_eyes_blink_and_open_wide_the_lids_move_and_the_pupils_stay():
    """`Pose.eyes`: shut, the lids' landmarks meet and the white between them is gone; wide, they part
    further and more white shows. The motions blink now and then."""
    from fewshotv2v.semantics import keypoints as kp

    who = make_identity(1)
    frames = {e: render_person(who, Pose(eyes=e), (256, 256), framing="face") for e in (0.0, 1.0, 1.5)}
    faces = {e: k[kp.FACE] for e, (_, k, _) in frames.items()}
    lids = lambda f: f[41, 1] - f[37, 1]  # noqa: E731 - right eye, lower lid below the upper one (px)
    assert abs(lids(faces[0.0])) < 0.5 < lids(faces[1.0]) < lids(faces[1.5]) - 1
    for e in (0.0, 1.5):  # the rest of the face and the pupils (68, 69) stay
        same = [i for i in range(70) if i not in (37, 38, 40, 41, 43, 44, 46, 47)]
        assert np.allclose(faces[e][same], faces[1.0][same])

    def white(e: float) -> int:  # near-white pixels round the right eye
        x0, y0 = faces[1.0][36, :2].astype(int) - 3
        x1, y1 = faces[1.0][39, :2].astype(int) + 3
        patch = frames[e][0][y0 - 8 : y1 + 8, x0:x1]
        return int((patch.min(axis=-1) > 200).sum())

    assert white(0.0) == 0 < white(1.0) < white(1.5)
    poses = motion("idle", 250, seed=3)
    eyes = np.array([p.eyes for p in poses])
    assert eyes.min() < 0.3 and eyes.max() > 1.2 and np.median(eyes) > 0.9  # blinks, now and then wide


def test_unknown_motion_is_config_error():
    with pytest.raises(ConfigError, match="unknown motion"):
        motion("moonwalk", 3)


def test_demo_pair():
    pair = demo_pair(0, 1, "wave", frames=4, size=HW)
    assert pair.ref_image.shape == (64, 64, 3)
    assert pair.drive_images.shape == (4, 64, 64, 3) and pair.drive_keypoints.shape == (4, 137, 3)


def test_generate_dataset_layout(tmp_path):
    from fewshotv2v.data.layout import open_dataset

    out = tmp_path / "syn"
    generate_dataset(out, identities=2, frames=12, size=HW, seed=1, fps=10, clips_per_identity=2)
    ds = open_dataset(out)
    assert ds.mode == "pose" and [c.name for c in ds.clips] == [
        "id0000_clip01",
        "id0000_clip02",
        "id0001_clip01",
        "id0001_clip02",
    ]
    clip = ds.clips[0]
    assert clip.num_frames == 12 and clip.fps == 10 and clip.meta["synthetic"] is True
    assert clip.keypoints.shape == (12, 137, 3) and clip.crops.shape == (12, 4)
    assert clip.frame(3).shape == (64, 64, 3) and clip.mask(3).shape == (64, 64)
    box = clip.crops[0]
    assert box[3] - box[1] == pytest.approx(2 * (box[2] - box[0]), rel=1e-4)  # aspect 0.5 person crop
    with pytest.raises(OutputExistsError):
        generate_dataset(out, identities=1, frames=2, size=HW)


def test_generate_face_mode_and_errors(tmp_path):
    ds = generate_dataset(tmp_path / "faces", identities=1, frames=2, mode="face", size=HW)
    box = ds.clips[0].crops[0]
    assert box[2] - box[0] == pytest.approx(box[3] - box[1])  # square face crop
    with pytest.raises(ConfigError, match="street"):
        generate_dataset(tmp_path / "street", identities=1, frames=2, mode="street")


def test_cli_synthetic(tmp_path):
    from fewshotv2v.cli import app
    from fewshotv2v.data.layout import open_dataset

    out = tmp_path / "cli"
    args = [
        "synthetic",
        "-o",
        str(out),
        "--identities",
        "2",
        "--frames",
        "3",
        "--size",
        "48x40",
        "--seed",
        "3",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    ds = open_dataset(out)
    assert len(ds.clips) == 2 and ds.clips[0].frame(0).shape == (48, 40, 3)
    index = json.loads((out / "index.json").read_text())
    assert index["mode"] == "pose"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == OutputExistsError.exit_code
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    bad = CliRunner().invoke(app, ["synthetic", "-o", str(tmp_path / "x"), "--size", "ax3"])
    assert bad.exit_code != 0


def test_huge_size_is_a_clear_error_not_a_memory_error(tmp_path):
    from fewshotv2v.cli import app

    out = tmp_path / "big"
    result = CliRunner().invoke(app, ["synthetic", "-o", str(out), "--size", "100000x100000", "-n", "1"])
    assert result.exit_code == 2 and "within 16..4096" in " ".join(result.output.split())
    assert "Traceback" not in result.output and "MemoryError" not in result.output and not out.exists()
    with pytest.raises(ConfigError, match="too large"):
        generate_dataset(out, identities=1, frames=1, size=(100_000, 64))
    assert not out.exists()

"""SPEC §7 integration: config options, the warp composite, the generator with the prior, the no-weights
`keypoint-warp` model and full-resolution framing through the `Pipeline` (synthetic people, exact
keypoints, tiny configs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fewshotv2v.config import ModelConfig
from fewshotv2v.data.synthetic import Pose, make_identity, motion, render_person
from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.models.composite import fill_background, similarity_flow, warp_base
from fewshotv2v.models.flow import MASK_INIT_LOGIT
from fewshotv2v.models.generator import Generator, keypoint_prior, reference_explained
from fewshotv2v.models.keypoint_warp import KeypointWarp
from fewshotv2v.models.profile import example_keypoints


# ---- config ---------------------------------------------------------------------------------------------
def test_prior_options_validate_and_round_trip():
    cfg = ModelConfig.preset("tiny-prior")
    assert (cfg.flow_prior, cfg.composite, cfg.architecture) == ("keypoints", "warp", "fsv2v")
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="flow_prior"):
        ModelConfig.preset("tiny", flow_prior="dense")
    with pytest.raises(ConfigError, match="street"):
        ModelConfig.preset("tiny-street", flow_prior="keypoints")
    with pytest.raises(ConfigError, match="keypoint-warp"):
        ModelConfig.preset("tiny", architecture="keypoint-warp")


def test_old_config_json_loads_unchanged():
    """A config.json written before the options existed (the packaged demo model's) loads as before."""
    from importlib.resources import files

    data = json.loads((files("fewshotv2v") / "assets" / "demo" / "config.json").read_text())
    assert "flow_prior" not in data
    cfg = ModelConfig.from_dict(data)
    assert (cfg.flow_prior, cfg.composite, cfg.architecture) == ("none", "none", "fsv2v")


# ---- composite ------------------------------------------------------------------------------------------
def test_fill_background_keeps_known_pixels_and_fills_the_hole_from_around_it():
    image = torch.zeros(1, 3, 32, 32)
    image[:, 0] = 0.5  # a flat red-ish background
    image[:, :, 12:20, 12:20] = -1.0  # a dark "person"
    mask = torch.zeros(1, 1, 32, 32)
    mask[:, :, 12:20, 12:20] = 1.0
    filled = fill_background(image, mask, dilate=1)
    outside = _dilated(mask, 1) < 0.5
    assert torch.allclose(filled[:, :, outside[0, 0]], image[:, :, outside[0, 0]], atol=1e-5)
    assert torch.allclose(filled[:, :, 14:18, 14:18], image[:, :, :1, :1].expand(1, 3, 4, 4), atol=0.05)


def test_the_opening_removes_slivers_of_the_warped_mask_and_keeps_the_body():
    """Folds of the flow beside a limb sample the mask's edge again as a thin sliver (a contour drawn
    round the limb); the opening at full resolution takes it away and leaves the limb as it was."""
    from fewshotv2v.inference.framing import opened

    mask = torch.zeros(1, 1, 40, 40)
    mask[:, :, 5:35, 10:18] = 1.0  # a leg 8 px wide
    mask[:, :, 5:35, 21:23] = 0.8  # a sliver 2 px wide beside it
    out = opened(mask, 1)
    assert out[:, :, 5:35, 21:23].max() == 0  # the sliver is gone
    torch.testing.assert_close(out[:, :, :, :20], mask[:, :, :, :20])  # the leg is untouched
    assert (out <= mask).all()


def _dilated(mask, r):
    return torch.nn.functional.max_pool2d(mask, 2 * r + 1, stride=1, padding=r)


def test_similarity_flow_is_the_camera_map():
    t = torch.tensor([[1.0, 3.0, -2.0], [0.5, 0.0, 0.0]])
    flow = similarity_flow(t, (8, 6))
    assert torch.allclose(flow[0, 0], torch.full((8, 6), 3.0)) and torch.allclose(
        flow[0, 1], torch.full((8, 6), -2.0)
    )
    assert flow[1, 0, 0, 4] == pytest.approx(0.5 * 4 - 4) and flow[1, 1, 6, 0] == pytest.approx(0.5 * 6 - 6)


def test_warp_base_shows_the_background_where_the_person_left():
    ref = torch.ones(1, 3, 16, 16)
    person = torch.zeros(1, 1, 16, 16)
    person[..., :, :8] = 1.0  # the person on the left half
    background = -torch.ones(1, 3, 16, 16)
    flow = torch.zeros(1, 2, 16, 16)
    flow[:, 0, :, 8:] = -8.0  # the right half samples the person: it moved right...
    flow[:, 0, :, :8] = 8.0  # ...and the left half samples the empty right half
    base, person_t = warp_base(ref, flow, person, background)
    assert torch.allclose(base[..., 10:], ref[..., 10:]) and torch.allclose(
        base[..., :6], background[..., :6]
    )
    assert person_t[..., 10:].min() > 0.999 and person_t[..., :6].max() < 1e-3


# ---- generator and keypoint-warp ------------------------------------------------------------------------
def _inputs(cfg, k=1):
    h, w, c = cfg.height, cfg.width, cfg.label_nc
    g = torch.Generator().manual_seed(0)
    ref_kps = torch.cat([example_keypoints(cfg, i) for i in range(k)])[None]  # (1, K, 137, 3)
    return (
        torch.rand(1, k, 3, h, w, generator=g) * 2 - 1,
        torch.rand(1, k, c, h, w, generator=g),
        ref_kps,
        torch.rand(1, c, h, w, generator=g),
        example_keypoints(cfg, 6),
    )


@pytest.mark.parametrize("preset", ["tiny-prior", "tiny-face-prior"])
def test_untrained_w_returns_the_prior_and_the_mask_trusts_the_warp(preset, one_thread):
    cfg = ModelConfig.preset(preset)
    gen = Generator(cfg).eval()
    images, labels, ref_kps, label, kps = _inputs(cfg)
    transform = torch.tensor([[[1.0, 2.0, -1.0]]])
    with torch.no_grad():
        refs = gen.encode_references(images, labels, ref_kps)
        out = gen(label, refs, keypoints=kps, ref_transform=transform)
    explained = refs.explained[:, 0] if refs.explained is not None else None  # what no part explains
    person = labels[:, 0, 3:4] if cfg.person_channel else None
    prior, coverage = keypoint_prior(cfg, ref_kps[:, 0], kps, transform[:, 0], person, explained)
    assert prior.abs().max() > 1  # the person moved
    assert coverage.shape == (1, 1, *cfg.size) and 0 <= float(coverage.min()) <= float(coverage.max()) <= 1
    assert torch.allclose(out.flow_ref, prior, atol=1e-5)
    trust = float(torch.sigmoid(torch.tensor(-MASK_INIT_LOGIT)))
    assert torch.allclose(1 - out.mask_ref, torch.full_like(out.mask_ref, trust), atol=1e-3)
    # H's residual starts at zero: an untrained model's frame is exactly the prior's warp composite
    assert out.raw_image.abs().max() == 0
    assert torch.allclose(out.image, out.warped_ref.clamp(-1, 1), atol=1e-6)


def test_without_residual_flow_w_keeps_the_prior_and_still_learns_the_mask(one_thread):
    cfg = ModelConfig.preset("tiny-prior", residual_flow=False)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="residual_flow"):
        ModelConfig.preset("tiny", residual_flow=False)  # no prior: W must predict a flow
    gen = Generator(cfg).eval()
    assert gen.flow.flow_head is None and not any("flow_head" in n for n, _ in gen.named_parameters())
    images, labels, ref_kps, label, kps = _inputs(cfg)
    with torch.no_grad():
        gen.flow.mask_head.bias.fill_(1.0)  # a "trained" W: the flow must not move, the mask must
        refs = gen.encode_references(images, labels, ref_kps)
        out = gen(label, refs, keypoints=kps)
    prior, _ = keypoint_prior(cfg, ref_kps[:, 0], kps, None, labels[:, 0, 3:4], refs.explained[:, 0])
    assert torch.equal(out.flow_ref, prior) and out.flow_ref.dtype == torch.float32
    assert float(out.mask_ref.min()) > 0.5


def test_with_the_prior_k_references_warp_the_closest_pose_like_keypoint_warp(one_thread):
    """K > 1: W warps the reference in the closest pose (not the attention's pick), so an untrained model
    with K = 3 gives keypoint-warp's frame; the attention still merges all three for H."""
    cfg = ModelConfig.preset("tiny-prior")
    gen = Generator(cfg).eval()
    images, labels, ref_kps, label, _ = _inputs(cfg, k=3)
    kps = ref_kps[:, 2].clone()
    kps[:, :, :2] += 1.5  # nearly the third reference's pose
    with torch.no_grad():
        out = gen(label, gen.encode_references(images, labels, ref_kps), keypoints=kps)
        kw_model = KeypointWarp(ModelConfig.preset("tiny-prior", architecture="keypoint-warp"))
        kw = kw_model(label, kw_model.encode_references(images, labels, ref_kps), keypoints=kps)
    assert out.ref_index.tolist() == [2] == kw.ref_index.tolist()
    assert torch.allclose(out.image, kw.image.clamp(-1, 1), atol=1e-5)


def test_prior_models_need_keypoints():
    cfg = ModelConfig.preset("tiny-prior")
    gen = Generator(cfg).eval()
    images, labels, ref_kps, label, kps = _inputs(cfg)
    with pytest.raises(InputError, match="keypoints"):
        gen.encode_references(images, labels)
    refs = gen.encode_references(images, labels, ref_kps)
    with pytest.raises(InputError, match="keypoints"):
        gen(label, refs)


def test_keypoint_warp_is_the_prior_warp_with_no_weights(tmp_path):
    from fewshotv2v.models.io import WEIGHTS_NAME, load_pretrained, save_pretrained

    cfg = ModelConfig.preset("tiny-prior", architecture="keypoint-warp")
    model = KeypointWarp(cfg)
    assert list(model.parameters()) == []
    images, labels, ref_kps, label, kps = _inputs(cfg, k=2)
    out = model(label, model.encode_references(images, labels, ref_kps), keypoints=kps)
    r = int(out.ref_index[0])
    person = labels[:, r, 3:4]
    explained = reference_explained(cfg, labels, ref_kps)[:, r]  # where the reference's parts lie
    flow, coverage = keypoint_prior(cfg, ref_kps[:, r], kps, None, person, explained)
    background = fill_background(images[:, r], person)
    expected = warp_base(images[:, r], flow, person, background, coverage)[0]
    assert torch.allclose(out.image, expected, atol=1e-5)
    save_pretrained(tmp_path / "kw", model)
    assert not (tmp_path / "kw" / WEIGHTS_NAME).exists()
    loaded, _ = load_pretrained(tmp_path / "kw")
    assert isinstance(loaded, KeypointWarp)


def test_packaged_keypoint_warp_resolves_per_mode():
    from fewshotv2v.hub import resolve_model
    from fewshotv2v.models.io import read_config
    from fewshotv2v.registry import DEFAULT_MODELS, model_for_mode

    assert model_for_mode("keypoint-warp", "face") == "keypoint-warp-face"
    assert model_for_mode("keypoint-warp", "pose") == "keypoint-warp"
    assert model_for_mode("", "face") == DEFAULT_MODELS["face"]
    assert model_for_mode(None, None) == DEFAULT_MODELS["pose"]
    assert read_config(resolve_model("keypoint-warp-face")).mode == "face"


# ---- crops: camera map between two boxes ------------------------------------------------------------------
@pytest.mark.parametrize("flip", [False, True])
def test_box_transform_maps_crop_pixels_of_one_scene(flip):
    from fewshotv2v.data.augment import flip_keypoints
    from fewshotv2v.semantics.crops import box_transform, transform_keypoints

    out_hw = (64, 32)
    target, ref = np.array([10, 20, 42, 84.0]), np.array([4, 30, 52, 126.0])
    point = np.zeros((137, 3), np.float32)
    point[0] = (30.0, 50.0, 1.0)  # one scene point in frame pixels
    in_t, in_r = transform_keypoints(point, target, out_hw), transform_keypoints(point, ref, out_hw)
    if flip:
        in_t, in_r = flip_keypoints(in_t, out_hw[1]), flip_keypoints(in_r, out_hw[1])
    a, cx, cy = box_transform(target, ref, out_hw, flip=flip)
    assert a * in_t[0, 0] + cx == pytest.approx(in_r[0, 0], abs=1e-4)
    assert a * in_t[0, 1] + cy == pytest.approx(in_r[0, 1], abs=1e-4)


# ---- full-resolution pipeline -----------------------------------------------------------------------------
def _photo(size=(192, 160), pose=None, identity=0):
    image, kps, mask = render_person(make_identity(identity), pose or Pose(), size)
    return image, kps, mask


def _pipeline(name="keypoint-warp", **kw):
    from fewshotv2v.hub import resolve_model
    from fewshotv2v.models.io import load_pretrained
    from fewshotv2v.pipeline import Pipeline

    model, _ = load_pretrained(resolve_model(name))
    return Pipeline(model, backend="none", device="cpu", **kw)


def test_output_is_the_photo_at_its_own_resolution_and_the_same_pose_gives_the_photo_back(one_thread):
    image, kps, mask = _photo()
    pipe = _pipeline()
    pipe.set_references([image], keypoints=[kps], masks=[mask])
    assert pipe.output_size == image.shape[:2]
    frames = list(pipe.stream([image] * 2, keypoints=[kps, kps]))
    assert frames[0].shape == image.shape
    err = np.abs(frames[1].astype(np.float32) - image).mean()
    assert err < 4.0, err  # identical keypoints: the photo comes back (up to the resampling)


def test_a_half_body_photo_with_keypoints_below_its_edge_is_not_moved_by_its_own_pose(one_thread):
    """A detector places a half-body photo's unseen knees and feet below the frame, with some confidence
    (mediapipe does). Driven by its own keypoints the photo must come back where it is: the body is kept
    inside the canvas by the points the photo shows, not lifted until its feet fit (the cameraman photo
    jumped 31 px up on frame 0)."""
    from fewshotv2v.semantics import keypoints as kp

    image, kps, mask = _photo((240, 120))
    cut = 150  # the photo ends at the thighs
    image, mask = image[:cut].copy(), mask[:cut].copy()
    assert (kps[kp.BODY][:, 1] > cut).any() and (kps[kp.BODY][:, 2] > 0).all()  # legs below the edge
    pipe = _pipeline()
    pipe.set_references([image], keypoints=[kps], masks=[mask])
    place = pipe._composer.placement
    place.reset()
    target = place(kps, None)
    np.testing.assert_array_equal(target.box, place.ref_boxes[0])
    frames = list(pipe.stream([image] * 2, keypoints=[kps, kps]))
    err = np.abs(frames[1].astype(np.float32) - image).mean()
    assert err < 4.0, err
    # a driver who then walks down keeps the head in and lets the shown hips go no lower than the edge
    low = kps.copy()
    low[:, 1] += np.where(low[:, 2] > 0, 80.0, 0.0)
    kc = place.retarget(low)
    from fewshotv2v.inference.placement import keep_inside

    moved, shift = keep_inside(kc, place.canvas_hw, reference=place.ref_keypoints)
    assert shift[1] < 0 and moved[kp.NOSE, 1] < cut


def test_a_still_body_keeps_its_soft_mask_edge_as_in_the_photo(one_thread):
    """A segmentation mask is soft at the hair and the shoulders. Where the body does not move, the
    photo's own pixels are the frame: laying that soft edge over the plate mixed the plate into it (a
    light rim round a real photo's hair on every frame, frame 0 at 26 dB of the photo)."""
    image, kps, mask = _photo()
    blur = torch.nn.functional.avg_pool2d  # a 9 x 9 box, twice: an edge about 16 px wide
    soft = torch.from_numpy(mask.astype(np.float32))[None, None]
    soft = blur(blur(soft, 9, 1, 4, count_include_pad=False), 9, 1, 4, count_include_pad=False)[0, 0].numpy()
    edge = (soft > 0.1) & (soft < 0.9)
    pipe = _pipeline()
    pipe.set_references([image], keypoints=[kps], masks=[soft])
    frame = next(iter(pipe.stream([image], keypoints=[kps])))
    err = np.abs(frame.astype(np.float32) - image)
    assert err[edge].mean() < 0.5, err[edge].mean()
    assert err.mean() < 0.5, err.mean()


def test_an_arm_moved_off_the_chest_leaves_the_chest_not_a_copy_of_the_arm(one_thread):
    """The reference holds a hand on its chest; the driver holds the arm out. Where the forearm lay the
    body behind it must show (filled from the shirt round it), not the forearm again: the torso's flow
    leaves those pixels in place and used to bring the arm back with them."""
    identity = make_identity(0)
    ref, ref_kps, ref_mask = render_person(identity, Pose(r_arm=0.3, r_elbow=2.3), (192, 160))
    truth, drive_kps, drive_mask = render_person(identity, Pose(r_arm=1.5, r_elbow=0.0), (192, 160))
    pipe = _pipeline()
    pipe.set_references([ref], keypoints=[ref_kps], masks=[ref_mask])
    out = next(iter(pipe.stream([truth], keypoints=[drive_kps]))).astype(np.float32)
    still = next(iter(pipe.stream([ref], keypoints=[ref_kps]))).astype(np.float32)
    ref, truth = ref.astype(np.float32), truth.astype(np.float32)
    old_arm = (
        (drive_mask > 0.5) & (ref_mask > 0.5) & (np.abs(ref - truth).sum(-1) > 60)
    )  # arm then, shirt now
    assert old_arm.sum() > 30
    copy_error = np.abs(ref - truth)[old_arm].mean()  # what showing the arm again costs
    assert np.abs(out - truth)[old_arm].mean() < 0.6 * copy_error  # 9.1 against 21.3 (16.1 before)
    # the arm that stays where it is comes back as in the photo
    assert np.abs(still - ref).mean() < 1.0


def test_a_striped_shirt_behind_a_moved_arm_stays_striped(one_thread):
    """Where an arm lay across a striped shirt, the shirt's own texture is filled in (`inference.plate`
    with the torso as the only source), not the smooth mean of its stripes (a grey slab; on a
    footballer's red and blue jersey, purple patches at his shoulders)."""
    identity = dataclasses.replace(make_identity(2), shirt_pattern="stripes", pattern_period=0.06)
    ref, ref_kps, ref_mask = render_person(identity, Pose(r_arm=0.3, r_elbow=2.3), (256, 192))
    truth, drive_kps, drive_mask = render_person(identity, Pose(r_arm=1.5, r_elbow=0.0), (256, 192))
    pipe = _pipeline()
    pipe.set_references([ref], keypoints=[ref_kps], masks=[ref_mask])
    out = next(iter(pipe.stream([truth], keypoints=[drive_kps]))).astype(np.float32)
    ref, truth = ref.astype(np.float32), truth.astype(np.float32)
    old_arm = (drive_mask > 0.5) & (ref_mask > 0.5) & (np.abs(ref - truth).sum(-1) > 60)
    assert old_arm.sum() > 100
    copy_error = np.abs(ref - truth)[old_arm].mean()
    # 49.2 against 90.8 for the arm again; the smooth fill gave 58.9, and its spread 27.0 of the truth's 57.2
    assert np.abs(out - truth)[old_arm].mean() < 0.6 * copy_error
    assert out[old_arm].std(0).mean() > 0.6 * truth[old_arm].std(0).mean()


def test_keypoint_warp_gets_no_label_maps_drawn_and_the_same_frames(one_thread, monkeypatch):
    """keypoint-warp reads only the keypoints: the producer skips the skeleton drawing (the costliest
    part of it), the frames are those with the maps drawn, and --side-by-side still shows them."""
    from fewshotv2v.inference import placement

    image, kps, mask = _photo()
    drive = [kps, _photo(pose=Pose(r_arm=1.0, r_elbow=1.2))[1], kps]
    pipe = _pipeline()
    pipe.set_references([image], keypoints=[kps], masks=[mask])
    drawn = []
    real = placement.build_label_map
    monkeypatch.setattr(placement, "build_label_map", lambda *a, **k: drawn.append(1) or real(*a, **k))
    frames = list(pipe.stream([image] * 3, keypoints=drive))
    assert drawn == []
    side = list(pipe.stream([image] * 3, keypoints=drive, side_by_side=True))
    assert len(drawn) == 3
    w = image.shape[1]
    for f, s in zip(frames, side, strict=True):
        np.testing.assert_array_equal(f, s[:, -w:])  # the synthesized panel is the same
    assert side[1][:, w : 2 * w].max() > 0  # the label panel shows the skeleton


def test_size_caps_the_long_side_and_huge_sizes_are_refused():
    image, kps, mask = _photo((192, 160))
    pipe = _pipeline(size=96)
    pipe.set_references([image], keypoints=[kps], masks=[mask])
    assert pipe.output_size == (96, 80)
    with pytest.raises(InputError, match="size"):
        _pipeline(size=100_000)


def test_a_driver_walking_across_stays_inside_the_canvas_and_keep_centered_stays_put(one_thread):
    from fewshotv2v.inference.placement import CORE, SIDE_MARGIN, UPRIGHT, keep_inside

    image, kps, mask = _photo((160, 160))
    drive = []
    for step in range(6):  # walks right, far past the frame edge
        k = kps.copy()
        k[:, 0] += np.where(k[:, 2] > 0, 40.0 * step, 0.0)
        drive.append(k)
    for keep_centered in (False, True):
        pipe = _pipeline(keep_centered=keep_centered)
        pipe.set_references([image], keypoints=[kps], masks=[mask])
        place = pipe._composer.placement
        place.reset()
        boxes = [place(k, None).box for k in drive]
        xs = [b[0] for b in boxes]
        if keep_centered:
            assert max(xs) - min(xs) <= 1
        else:
            assert xs[1] > xs[0] and xs[-1] == xs[-2]  # followed, then held at the edge
        kc, _ = keep_inside(place.retarget(drive[-1]), place.canvas_hw)
        assert kc[kc[:, 2] > 0, 0].max() <= 160
        # the core held clear of the edge by part of the body's height: the shoulders' flesh stays in
        core = kc[CORE & (kc[:, 2] > 0)]
        upright = kc[UPRIGHT & (kc[:, 2] > 0)]
        assert core[:, 0].max() <= 159 - 0.9 * SIDE_MARGIN * (upright[:, 1].max() - upright[:, 1].min())
    assert pipe.last_stats.frames_empty == 0


def test_a_body_taller_than_the_canvas_keeps_its_head_in_and_loses_its_feet():
    from fewshotv2v.inference.placement import keep_inside
    from fewshotv2v.semantics import keypoints as kp

    _, kps, _ = _photo((400, 160))  # a standing person about 360 px tall
    hw = (200, 160)  # a canvas half as tall (a crouching reference's photo)
    kc, shift = keep_inside(kps, hw)
    head_top = 2 * kc[kp.NOSE, 1] - kc[kp.NECK, 1]
    assert 0 <= head_top < 0.05 * hw[0]  # the head just inside the top edge
    assert kc[kp.R_ANKLE, 1] > hw[0]  # the feet below the bottom
    # a person who fits but whose head is above the top edge comes down by the head, not by the eyes
    small = kps.copy()
    small[:, :2] = kps[:, :2] * 0.4
    small[:, 1] -= 2 * small[kp.NOSE, 1] - small[kp.NECK, 1] + 10  # head top 10 px above the canvas
    kc, _ = keep_inside(small, hw)
    assert 2 * kc[kp.NOSE, 1] - kc[kp.NECK, 1] >= 0.02 * hw[0] - 1e-3


def test_a_head_bent_forward_keeps_its_hair_inside_the_canvas():
    """A reference whose hair reaches far above its nose (a head bent forward: a short nose-to-neck
    height), measured in its person mask by `head_rise`: a driver raised above the top edge comes down
    until that hair is inside, not only one nose-to-neck height above the nose."""
    from fewshotv2v.inference.placement import head_rise, keep_inside
    from fewshotv2v.semantics import keypoints as kp

    _, kps, mask = _photo((240, 160))
    nose = kps[kp.NOSE, :2]
    neck_height = float(kps[kp.NECK, 1] - nose[1])
    hair = mask.astype(np.float32).copy()
    top = int(round(nose[1] - 2.5 * neck_height))  # a tall hairdo, 2.5 nose-to-neck heights above the nose
    hair[max(top, 0) : int(nose[1]), int(nose[0]) - 5 : int(nose[0]) + 6] = 1.0
    rise = head_rise(kps, hair)
    assert abs(rise - (nose[1] - max(top, 0))) <= 1
    assert head_rise(kps, None) == 0.0
    high = kps.copy()
    high[kps[:, 2] > 0, 1] -= nose[1]  # the nose on the top edge
    plain, _ = keep_inside(high, (240, 160))
    tall, _ = keep_inside(high, (240, 160), head_rise=rise)
    assert plain[kp.NOSE, 1] - neck_height == pytest.approx(0.02 * 240, abs=1e-3)  # only its estimate in
    assert tall[kp.NOSE, 1] - rise == pytest.approx(0.02 * 240, abs=1e-3)  # its hair in


def test_arms_leaving_the_canvas_do_not_push_the_body():
    """A hand swung past the edge of a narrow photo, or raised above the head, leaves the canvas; the
    body stays where it is (it was pushed 30 px aside by a swinging arm, leaving a ghost on the plate)."""
    from fewshotv2v.inference.placement import keep_inside
    from fewshotv2v.semantics import keypoints as kp

    _, kps, _ = _photo((240, 100))
    arm = [kp.R_ELBOW, kp.R_WRIST, *range(kp.RIGHT_HAND.start, kp.RIGHT_HAND.stop)]
    out_left = kps.copy()
    out_left[arm, 0] -= kps[kp.R_WRIST, 0] + 25  # the wrist 25 px beyond the left edge
    up = kps.copy()
    up[arm, 1] -= kps[kp.R_WRIST, 1] + 30  # the hand above the top edge
    for drive in (out_left, up):
        moved, shift = keep_inside(drive, (240, 100), reference=kps)
        np.testing.assert_array_equal(shift, [0, 0])
    # the core still counts: the whole body past the edge is brought back
    gone = kps.copy()
    gone[:, 0] -= 80
    moved, shift = keep_inside(gone, (240, 100), reference=kps)
    assert shift[0] > 0 and moved[kp.NECK, 0] > 0


def test_synthesize_keeps_frame_count_and_writes_the_photo_resolution(tmp_path, one_thread):
    from fewshotv2v.video import probe

    image, kps, mask = _photo((128, 96))
    poses = motion("wave", 6, seed=0)
    drive = [render_person(make_identity(1), p, (128, 96)) for p in poses]
    pipe = _pipeline()
    result = pipe.synthesize(
        ref=[image], ref_keypoints=[kps], drive=[d[0] for d in drive],
        drive_keypoints=[d[1] for d in drive], output=tmp_path / "out.mp4",
    )  # fmt: skip
    info = probe(tmp_path / "out.mp4")
    assert result.frames == 6 and info.num_frames == 6 and (info.height, info.width) == (128, 96)


def test_face_result_is_pasted_back_into_the_whole_photo(one_thread):
    from fewshotv2v.semantics.face_motion import animate_face

    image, kps, _ = render_person(make_identity(2), Pose(), (160, 160), framing="face")
    pipe = _pipeline("keypoint-warp-face")
    pipe.set_references([image], keypoints=[kps])
    moving = animate_face(kps, 8, 25.0, tilt_deg=10)
    frames = list(pipe.stream([image] * 8, keypoints=list(moving)))
    assert frames[0].shape == image.shape
    box = pipe.references[0].box.astype(int)
    outside = np.ones(image.shape[:2], bool)
    outside[max(0, box[1]) : box[3], max(0, box[0]) : box[2]] = False
    changed = [np.abs(f.astype(int) - image)[~outside].mean() for f in frames]
    assert max(changed) > 2  # the face moved
    for f in frames:  # outside the face box the photo is untouched
        assert np.abs(f.astype(int) - image)[outside].max() <= 2


def test_a_face_near_the_photos_top_edge_keeps_the_edge_the_photos_colour(one_thread):
    """The face crop reaches above a portrait cut at the hair: the warp samples beyond the photo there.
    Black beyond it darkened the top rows (the astronaut's by 31 levels in every frame) and drew a black
    arc where the head moved down; the crop continues the photo's border instead."""
    from fewshotv2v.semantics.face_motion import animate_face

    full, kps, _ = render_person(make_identity(2), Pose(), (200, 160), framing="face")
    cut = 40  # the photo starts at the forehead's top: the face box reaches above it
    image = np.ascontiguousarray(full[cut:])
    kps = kps.copy()
    kps[kps[:, 2] > 0, 1] -= cut
    pipe = _pipeline("keypoint-warp-face")
    pipe.set_references([image], keypoints=[kps])
    assert pipe.references[0].box[1] < 0
    moving = animate_face(kps, 8, 25.0, tilt_deg=10)
    frames = np.stack(list(pipe.stream([image] * 8, keypoints=list(moving)))).astype(int)
    box = pipe.references[0].box.astype(int)
    columns = slice(max(0, box[0]), min(image.shape[1], box[2]))
    darker = (image[:3, columns] - frames[:, :3, columns]).mean(axis=(1, 2, 3))
    assert darker.max() < 2, darker  # with black beyond the edge: up to 7.7 levels darker as the head nods


def test_the_face_crop_at_full_resolution_leaves_the_head_room_to_move():
    from fewshotv2v.inference.placement import FACE_FRAME_GROW
    from fewshotv2v.semantics.crops import face_crop_box

    image, kps, _ = render_person(make_identity(2), Pose(), (200, 200), framing="face")
    pipe = _pipeline("keypoint-warp-face")
    pipe.set_references([image], keypoints=[kps])
    trained = face_crop_box(kps, image.shape[:2], clamp=False)  # the crop the face models train on
    box = pipe.references[0].box
    side = float(trained[3] - trained[1])
    assert abs(float(box[3] - box[1]) - FACE_FRAME_GROW * side) <= 1 and FACE_FRAME_GROW > 1
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, (trained[:2] + trained[2:]) / 2, atol=1)


def test_animate_face_opens_the_mouth_and_blinks():
    from fewshotv2v.semantics.face_motion import animate_face
    from fewshotv2v.semantics.keypoints import FACE

    _, kps, _ = render_person(make_identity(2), Pose(), (160, 160), framing="face")
    seq = animate_face(kps, 50, 25.0)
    face = seq[:, FACE]
    mouth = face[:, 57, 1] - face[:, 51, 1]
    assert seq.shape == (50, 137, 3) and mouth.max() - mouth.min() > 1.0
    lid = np.linalg.norm(face[:, 37, :2] - face[:, 41, :2], axis=1)
    assert lid.min() < 0.5 * lid.max()
    # without the roll, the mouth opens symmetrically: its inner corners (60, 64) move alike, as do the
    # outer ones (48, 54)
    level = animate_face(kps, 50, 25.0, tilt_deg=0.0)[:, FACE, 1]
    for left, right in ((48, 54), (60, 64)):
        moved_left, moved_right = level[:, left] - level[0, left], level[:, right] - level[0, right]
        np.testing.assert_allclose(moved_left, moved_right, atol=1e-3)


def test_keypoint_warp_picks_the_reference_in_the_closest_pose():
    from fewshotv2v.models.prior import closest_reference

    cfg = ModelConfig.preset("tiny-prior")
    poses = torch.cat([example_keypoints(cfg, i) for i in (0, 9, 18)])  # (3, 137, 3) different poses
    target = poses[1].clone()
    target[:, :2] += torch.tensor([5.0, -3.0])  # same pose elsewhere in the crop
    assert int(closest_reference(poses[None], target[None])[0]) == 1


def test_export_half_stores_fp16_that_loads_into_the_model(tmp_path, one_thread):
    from safetensors import safe_open

    from fewshotv2v.hub_publish import export_model
    from fewshotv2v.models.io import load_pretrained, save_pretrained

    gen = Generator(ModelConfig.preset("tiny-prior"))
    save_pretrained(tmp_path / "full", gen)
    out = export_model(tmp_path / "full", tmp_path / "half", half=True, discriminator=False)
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118
    loaded, _ = load_pretrained(out)
    ref = dict(gen.state_dict())
    for key, value in loaded.state_dict().items():
        assert value.dtype == ref[key].dtype and torch.allclose(value, ref[key].half().float())
    assert (tmp_path / "full" / "model.safetensors").stat().st_size > 1.9 * (
        out / "model.safetensors"
    ).stat().st_size


def test_shipped_models_resolve_offline_and_fit_the_wheel_budget(monkeypatch):
    """`fsv2v synth` uses these for --mode pose / face when no model is named: packaged, the prior and
    the composite, resolved offline; all packaged weights together at most 25 MB."""
    from importlib.resources import files

    from fewshotv2v.hub import resolve_model
    from fewshotv2v.models.io import load_pretrained
    from fewshotv2v.registry import DEFAULT_MODELS, load_registry

    monkeypatch.setenv("FSV2V_HUB__OFFLINE", "1")
    registry = load_registry()
    for mode, name in DEFAULT_MODELS.items():
        assert registry[name].packaged and registry[name].mode == mode
        folder = resolve_model(name)
        model, _ = load_pretrained(folder)
        assert model.config.mode == mode and model.config.composite == "warp"
        assert model.config.architecture == "keypoint-warp" or (folder / "README.md").is_file()
    # the trained lite models ship too (selectable, and a starting point for --init), with a model card
    for name, mode in (("pose-lite", "pose"), ("face-lite", "face")):
        assert registry[name].packaged and registry[name].mode == mode
        folder = resolve_model(name)
        model, _ = load_pretrained(folder)
        assert model.config.uses_keypoints and model.config.composite == "warp"
        assert "## Evaluation" in (folder / "README.md").read_text()
    assets = files("fewshotv2v") / "assets"
    total = sum(p.stat().st_size for p in Path(str(assets)).rglob("*.safetensors"))
    assert total <= 25 * 10**6, total


def _walker_video(path, n=8, hw=(128, 96)):
    from fewshotv2v.video import write_test_video

    drive = [render_person(make_identity(1), p, hw) for p in motion("walk", n, seed=0)]
    write_test_video(path, [d[0] for d in drive], 10.0)
    return path, [d[1] for d in drive]


def test_a_producer_process_places_the_frames_as_a_thread_does(tmp_path, one_thread):
    """At full resolution the producer also places each frame on the canvas (`Placement`, with its
    retargeting state): pickled into a process, it gives the same frames."""
    image, kps, mask = _photo((128, 96))
    video, drive_kps = _walker_video(tmp_path / "walk.mp4")
    frames = {}
    for producer in ("thread", "process"):
        pipe = _pipeline(producer=producer)
        pipe.set_references([image], keypoints=[kps], masks=[mask])
        frames[producer] = list(pipe.stream(video, keypoints=drive_kps))
        assert pipe.last_producer == producer
    assert len(frames["thread"]) == 8
    for a, b in zip(frames["thread"], frames["process"], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_mediapipe_detects_in_a_producer_process_as_in_a_thread(tmp_path):
    """The detector is made in the child by name; its keypoints (and so the frames) are those of the
    detector in a thread."""
    pytest.importorskip("mediapipe")
    from fewshotv2v.pipeline import Pipeline

    image, kps, mask = _photo((256, 192))
    video, _ = _walker_video(tmp_path / "walk.mp4", n=6, hw=(256, 192))
    model = _pipeline().generator
    frames = {}
    for producer in ("thread", "process"):
        pipe = Pipeline(model, backend="mediapipe", device="cpu", producer=producer)
        pipe.set_references([image], keypoints=[kps], masks=[mask])
        frames[producer] = list(pipe.stream(video))
        assert pipe.last_producer == producer and pipe.last_stats.frames_without_person == 0
    for a, b in zip(frames["thread"], frames["process"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_producer_process_never_imports_torch(one_thread):
    """The plan (with its `Placement`) unpickles in the child without torch: it starts in a fraction of a
    second and stays small."""
    import child_jobs
    from fewshotv2v.inference.overlap import prefetch_process

    image, kps, mask = _photo()
    pipe = _pipeline()
    pipe.set_references([image], keypoints=[kps], masks=[mask])
    plan = pipe._input_plan()
    assert type(plan.frames).__name__ == "Placement"
    assert list(prefetch_process(child_jobs.loaded_modules, (plan,))) == [False]


def test_the_crown_is_measured_in_the_references_own_crop_when_it_lies_outside_the_targets():
    """The generator's prior runs in the target's crop, where a reference that stood elsewhere is out of
    view: the head's top is measured in the reference's own crop (`prior.reference_crown`). A tall bun
    then still moves with the head; measured in the target's crop it would be missed."""
    import dataclasses

    cfg = dataclasses.replace(ModelConfig.preset("pose-lite"), height=256, width=128)
    _, kps, mask = render_person(make_identity(3), Pose(), cfg.size)
    ref = torch.from_numpy(kps)[None]
    nose, neck = ref[0, 0, :2], ref[0, 1, :2]
    length = float((nose - neck).norm())
    ys, xs = torch.meshgrid(torch.arange(256.0), torch.arange(128.0), indexing="ij")
    bun = ((xs - nose[0]).abs() < 0.5 * length) & (ys < nose[1]) & (ys > nose[1] - 2.5 * length)
    plain = torch.from_numpy(mask)[None, None].float()
    tall = torch.maximum(plain, bun.float()[None, None])
    transform = torch.tensor([[1.0, 100.0, 0.0]])  # target-crop p is reference-crop p + 100 px: out of view
    x, y = int(round(float(nose[0]))), int(round(float(nose[1]) - 2.2 * length))  # the bun, in the target
    covered = [float(keypoint_prior(cfg, ref, ref, transform, m, None)[1][0, 0, y, x]) for m in (plain, tall)]
    assert covered[0] < 0.5 < 0.85 < covered[1]


@pytest.mark.parametrize("r", [1, 2, 3, 5, 8, 13, 40])
def test_the_dilation_and_the_box_mean_equal_torchs_pooling(r):
    """`grow_mask` (window maxima by doubling) and `box_mean` (running sums) stand in for CPU pooling that
    was slow at 1024 px; they must give its values, at the edges and for windows wider than the image."""
    from fewshotv2v.models.composite import box_mean, grow_mask

    x = torch.rand(2, 3, 23, 37, generator=torch.Generator().manual_seed(r))
    k = 2 * r + 1
    pooled = F.max_pool2d(F.max_pool2d(x, (k, 1), stride=1, padding=(r, 0)), (1, k), stride=1, padding=(0, r))
    assert torch.equal(grow_mask(x, r), pooled)
    mean = F.avg_pool2d(x, k, stride=1, padding=r, count_include_pad=False)
    torch.testing.assert_close(box_mean(x, r), mean, atol=1e-6, rtol=0)

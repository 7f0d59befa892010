"""PersonTracker: choose a person and keep it across frames."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.backends.base import Detection
from fewshotv2v.semantics.tracking import PersonTracker, box_iou


def person_at(x: float, y: float = 100.0, h: float = 100.0) -> Detection:
    k = kp.empty()
    k[kp.NOSE] = (x, y - h / 2, 1)
    k[kp.NECK] = (x, y - h / 2 + 10, 1)
    k[kp.R_ANKLE] = (x - 0.15 * h, y + h / 2, 1)
    k[kp.L_ANKLE] = (x + 0.15 * h, y + h / 2, 1)
    return Detection(k)


def test_box_iou():
    assert box_iou(np.array([0, 0, 10, 10.0]), np.array([0, 0, 10, 10.0])) == 1.0
    assert box_iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 15, 10.0])) == 1 / 3
    assert box_iou(np.array([0, 0, 1, 1.0]), np.array([5, 5, 6, 6.0])) == 0.0


def test_largest_person_is_followed_when_people_swap_order():
    tr = PersonTracker()
    # Frame 0: the tall person (h = 160) at x = 100 is chosen.
    first = tr.update([person_at(300, h=80), person_at(100, h=160)])
    assert first.bbox[0] < 200
    # The followed person walks right and shrinks; the other one grows: still the same track.
    x = 100.0
    for step in range(1, 10):
        x += 8
        me = person_at(x, h=160 - 3 * step)
        other = person_at(300 - 5 * step, h=80 + 10 * step)
        got = tr.update([other, me])
        assert got is me
    assert tr.lost_frames == []


def test_person_index_left_to_right_and_lost_frames():
    tr = PersonTracker(person_index=1)
    a, b, c = person_at(50), person_at(200), person_at(350)
    assert tr.update([c, a, b]) is b  # second from the left
    assert tr.update([]) is None  # nobody
    assert tr.update([person_at(600)]) is None  # someone else, far away
    back = person_at(205)
    assert tr.update([person_at(40), back]) is back
    assert tr.lost_frames == [1, 2] and tr.num_lost == 2


def test_keypoint_distance_fallback_and_reacquire():
    tr = PersonTracker(iou_threshold=0.9, max_distance=0.25, reacquire_after=2)
    tr.update([person_at(100)])
    moved = person_at(115)  # IoU < 0.9 but keypoints ~15 px away, well under 0.25 x diagonal
    assert tr.update([moved]) is moved
    tr.update([])
    tr.update([])
    far = person_at(500)  # after 2 lost frames the largest person is picked again
    assert tr.update([far]) is far
    assert tr.lost_frames == [2, 3]


def test_index_beyond_people_is_lost():
    tr = PersonTracker(person_index=3)
    assert tr.update([person_at(10), person_at(200)]) is None
    assert tr.lost_frames == [0]


def test_switched_only_when_someone_else_is_picked_up_again():
    tr = PersonTracker(reacquire_after=2)
    tr.update([person_at(100)])
    assert not tr.switched  # the first person is no switch
    tr.update([])
    tr.update([])
    back = person_at(104)  # found again where they were lost: the same person
    assert tr.update([back]) is back and not tr.switched
    tr.update([])
    tr.update([])
    other = person_at(500, h=200)  # someone else, elsewhere
    assert tr.update([other]) is other and tr.switched
    assert tr.update([person_at(505, h=200)]) is not None and not tr.switched  # followed from here on


def test_following_and_matches_do_not_change_the_track():
    tr = PersonTracker(reacquire_after=2)
    assert tr.following is None and tr.matches([person_at(100)]) is None  # nobody chosen yet
    me = tr.update([person_at(100)])
    assert np.array_equal(tr.following, me.bbox)
    near, far = person_at(104), person_at(500)
    assert tr.matches([far, near]) is near and tr.matches([far]) is None
    assert tr.frame == 0 and tr.lost_frames == []  # nothing was updated
    tr.update([])
    assert tr.following is not None  # lost one frame: still followed
    tr.update([])
    assert tr.following is None  # given up: the next person found is picked afresh


def test_someone_who_walked_out_of_the_frame_is_replaced_sooner():
    """Last seen touching the frame's edge, lost for `left_after` frames: they walked out, and the next
    person is picked then; lost in the middle of the frame, the tracker still waits `reacquire_after`."""
    hw = (400, 600)
    for first, waits in ((person_at(20), 3), (person_at(300), 10)):  # box x0 = 5: at the left edge
        tr = PersonTracker(reacquire_after=10, left_after=3)
        tr.update([first], frame_hw=hw)
        newcomer = person_at(450, h=60)
        got = [tr.update([newcomer], frame_hw=hw) for _ in range(waits + 1)]
        assert got[:waits] == [None] * waits and got[waits] is newcomer and tr.switched
    tr = PersonTracker(reacquire_after=10, left_after=3)  # without the frame size: the long wait
    tr.update([person_at(20)])
    assert [tr.update([person_at(450, h=60)]) for _ in range(4)] == [None] * 4


def test_height_jump_guard_ignores_a_glitch_for_at_most_hold_detections():
    from fewshotv2v.semantics.keypoints import person_height
    from fewshotv2v.semantics.tracking import HeightJumpGuard

    def person(height: float) -> np.ndarray:
        k = np.zeros((137, 3), np.float32)
        k[:25, 0], k[:25, 1], k[:25, 2] = 50.0, np.linspace(100 - height, 100, 25), 1.0
        return k

    tall, short = person(80), person(60)
    assert person_height(short) / person_height(tall) < 1 / 1.2
    guard = HeightJumpGuard(1.2, hold=2)
    assert [guard(k) for k in [tall, short, tall, person(85)]] == [False, True, False, False]
    assert [guard(k) for k in [short, short, short, short]] == [True, True, False, False]  # it lasts: real
    guard.reset()
    assert guard(tall) is False  # after a reset the next one is taken at its height
    assert [HeightJumpGuard(0.0)(k) for k in [tall, short]] == [False, False]  # 0: no check


def test_face_jump_guard_watches_the_face_place_and_reports_a_jump_that_lasts():
    from fewshotv2v.semantics.keypoints import FACE
    from fewshotv2v.semantics.tracking import HeightJumpGuard, face_measure

    def face(x: float, radius: float = 10.0) -> np.ndarray:
        k = np.zeros((137, 3), np.float32)
        angle = np.linspace(0, 2 * np.pi, 70, endpoint=False)
        k[FACE, 0], k[FACE, 1], k[FACE, 2] = x + radius * np.cos(angle), 50 + radius * np.sin(angle), 1.0
        return k

    centre, size = face_measure(face(40))
    np.testing.assert_allclose(centre, (40, 50), atol=1e-4)
    assert size == pytest.approx(10.0)
    guard = HeightJumpGuard.for_mode("face")  # 1.2 x in size, 0.8 radii in place
    assert [guard(k) for k in [face(40), face(47), face(60), face(47)]] == [False, False, True, False]
    assert not guard.lasted  # the jump to 60 did not last
    assert [guard(k) for k in [face(47, 13), face(47, 13), face(47, 13)]] == [True, True, False]
    assert guard.lasted  # the jump in size lasted: a new shot
    assert guard(face(48, 13)) is False and not guard.lasted
    body = HeightJumpGuard.for_mode("pose")
    assert body.shift == 0 and body.limit == 1.2  # pose: height only, as before


def test_a_person_not_where_they_were_after_a_cut_is_picked_afresh_at_once():
    tr = PersonTracker()
    tr.update([person_at(100)])
    elsewhere = person_at(400, h=160)
    assert tr.update([elsewhere]) is None  # without a cut: lost (until reacquire_after frames)
    tr = PersonTracker()
    tr.update([person_at(100)])
    assert tr.update([elsewhere], cut=True) is elsewhere and tr.new_shot and not tr.switched
    assert tr.update([person_at(404, h=160)]) is not None and not tr.new_shot  # followed from here on
    still = PersonTracker()
    still.update([person_at(100)])
    assert (
        still.update([person_at(103)], cut=True) is not None and not still.new_shot
    )  # found where they were


def _shot(seed: int, hw=(90, 120)) -> np.ndarray:
    """A frame of one "shot": smooth random blobs, the same for the same seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: hw[0], : hw[1]] / 20.0
    image = sum(
        np.sin(x * rng.uniform(0.5, 2) + rng.uniform(0, 6)) * np.cos(y * rng.uniform(0.5, 2))
        for _ in range(3)
    )
    image = (image - image.min()) / (image.max() - image.min()) * 200 + 20
    return np.repeat(image[..., None], 3, axis=2).astype(np.uint8)


def test_scene_cuts_are_found_and_motion_light_and_noise_are_not():
    from fewshotv2v.semantics.tracking import SceneCuts

    a, b = _shot(1), _shot(2)
    rng = np.random.default_rng(0)
    frames = [
        a,
        np.roll(a, 3, axis=1),  # a camera pan
        np.clip(a.astype(int) + 35, 0, 255).astype(np.uint8),  # the light comes on
        np.clip(a.astype(int) + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8),  # sensor noise
        b,  # the cut
        b,
        np.zeros_like(b),  # a cut to black
        np.zeros_like(b),
    ]
    cuts = SceneCuts()
    assert [cuts(f) for f in frames] == [False, False, False, False, True, False, True, False]
    cuts.reset()
    assert cuts(b) is False  # after a reset the next frame starts afresh

"""The library `Pipeline`: references -> streaming synthesis (tiny random-weight model, exact keypoints)."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

from fewshotv2v.errors import CheckpointError, ConfigError, InputError, NoPersonError, OutputExistsError
from fewshotv2v.semantics.backends.base import Detection
from fewshotv2v.semantics.keypoints import BODY, FACE, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND

# ---- synthetic people with exact keypoints (shared with test_synth_cli.py) ---------------------------

# A standing person (BODY_25), neck at the origin, about 7.7 units tall, y down.
STAND = np.array(
    [(0, -1.0), (0, 0), (-0.8, 0), (-1.0, 1.2), (-1.1, 2.3), (0.8, 0), (1.0, 1.2), (1.1, 2.3), (0, 2.8),
     (-0.5, 2.8), (-0.55, 4.5), (-0.6, 6.2), (0.5, 2.8), (0.55, 4.5), (0.6, 6.2), (-0.2, -1.2), (0.2, -1.2),
     (-0.45, -1.1), (0.45, -1.1), (0.8, 6.5), (0.95, 6.45), (0.55, 6.35), (-0.8, 6.5), (-0.95, 6.45),
     (-0.55, 6.35)], np.float32,
)  # fmt: skip


def person_keypoints(hw: tuple[int, int], phase: float = 0.0) -> np.ndarray:
    """(137, 3) keypoints of a person filling ~70 % of an image `hw`, right arm swinging with `phase`."""
    h, w = hw
    scale = 0.7 * h / 7.7
    body = STAND.copy()
    angle = 0.6 * np.sin(phase)
    c, s = np.cos(angle), np.sin(angle)
    for j in (3, 4):  # rotate the right arm about the shoulder
        body[j] = (body[j] - body[2]) @ np.array([[c, s], [-s, c]], np.float32) + body[2]
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    kps[BODY, :2] = body * scale + (w / 2, 0.2 * h)
    kps[BODY, 2] = 0.9
    rng = np.random.default_rng(0)
    kps[FACE, :2] = kps[0, :2] + rng.normal(size=(70, 2)) * 0.15 * scale
    kps[FACE, 2] = 0.8
    for part, wrist in ((LEFT_HAND, 7), (RIGHT_HAND, 4)):
        kps[part, :2] = kps[wrist, :2] + rng.normal(size=(21, 2)) * 0.1 * scale
        kps[part, 2] = 0.7
    return kps


def scene_image(hw=(96, 64), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: hw[0], : hw[1]]
    img = np.stack([x * 255 // hw[1], y * 255 // hw[0], np.full_like(x, 90)], -1).astype(np.uint8)
    img[hw[0] // 4 : 3 * hw[0] // 4, hw[1] // 3 : 2 * hw[1] // 3] = rng.integers(0, 255, 3, dtype=np.uint8)
    return img


class FakeBackend:
    """A keypoint "detector" that returns the synthetic person (animated frame by frame), or nobody.

    `fail_at`: raise this exception on that call (interruption tests). `empty`: never find anyone.
    """

    def __init__(self, *, empty: bool = False, fail_at: int | None = None, exc: BaseException | None = None):
        self.calls = 0
        self.empty, self.fail_at, self.exc = empty, fail_at, exc or RuntimeError("injected failure")
        self.closed = False

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise self.exc
        if self.empty:
            return []
        kps = person_keypoints(image.shape[:2], phase=0.5 * self.calls)
        mask = np.zeros(image.shape[:2], np.float32)
        mask[int(kps[0, 1]) :, image.shape[1] // 3 : 2 * image.shape[1] // 3] = 1.0
        return [Detection(kps, mask=mask, score=0.9)]

    def close(self) -> None:
        self.closed = True


def make_model(folder, *, with_discriminators: bool = True, preset: str = "tiny"):
    """Save a tiny random-weight model folder (config.json + model.safetensors [+ discriminator])."""
    import torch

    from fewshotv2v.config import ModelConfig
    from fewshotv2v.models.discriminators import Discriminators
    from fewshotv2v.models.generator import Generator
    from fewshotv2v.models.io import save_pretrained

    torch.manual_seed(0)
    config = ModelConfig.preset(preset)
    d = Discriminators(config) if with_discriminators else None
    return save_pretrained(folder, Generator(config), discriminators=d)


# ---- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def pipe(model_dir):
    from fewshotv2v import Pipeline

    p = Pipeline.from_pretrained(model_dir, device="cpu", backend="none")
    img = scene_image()
    p.set_references([img], keypoints=[person_keypoints(img.shape[:2])])
    return p


def _frames_and_kps(n=None, hw=(80, 60)):
    """(frames, keypoints) iterators, infinite when n is None; counts how many frames were pulled."""
    pulled = {"n": 0}

    def frames():
        for i in itertools.count() if n is None else range(n):
            pulled["n"] += 1
            yield scene_image(hw, seed=i)

    def kps():
        for i in itertools.count():
            yield person_keypoints(hw, phase=0.4 * i)

    return frames(), kps(), pulled


# ---- tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [0, 2])
def test_stream_is_lazy_on_an_infinite_drive(pipe, prefetch):
    pipe.prefetch = prefetch
    frames, kps, pulled = _frames_and_kps()
    out = list(itertools.islice(pipe.stream(frames, keypoints=kps), 5))
    # Nothing accumulated: in series nothing is read ahead; overlapped, at most `prefetch` frames wait
    # in the queue plus the one the producer is making.
    assert len(out) == 5 and 5 <= pulled["n"] <= 5 + prefetch + 1
    assert prefetch or pulled["n"] == 5
    assert all(o.shape == (64, 32, 3) and o.dtype == np.uint8 for o in out)  # model size (tiny: 64 x 32)
    assert not np.array_equal(out[0], out[4])  # the arm moves, the previous frame feeds back


@pytest.mark.parametrize("prefetch", [0, 2])
def test_memory_stays_flat_with_video_length(pipe, prefetch):
    pipe.prefetch = prefetch
    hw = (240, 180)  # 130 kB per driving frame: keeping the frames would show at once
    frames, kps, _ = _frames_and_kps(hw=hw)
    stream = pipe.stream(frames, keypoints=kps)
    for _ in range(3):
        next(stream)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    measured = 32
    for _ in range(measured):
        next(stream)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    stream.close()
    label = pipe.config.label_nc * pipe.config.height * pipe.config.width * 4  # float32 label map
    frame_bytes = hw[0] * hw[1] * 3 + label  # what one frame in flight holds: its image and label map
    # Frames in flight: the current one, and overlapped also the queue, the producer's hand, the one it
    # is decoding and, depending on where the producer thread is when the count is read, one more (a CI
    # run once measured 6.3 frames' worth against a bound of 6). 32 frames kept would be 2x more than
    # the overlapped bound.
    in_flight = 2 if not prefetch else 2 + prefetch + 3
    assert grown < in_flight * frame_bytes, grown
    assert measured * hw[0] * hw[1] * 3 > 2 * in_flight * frame_bytes  # the bound would catch a leak


def test_k3_references_and_side_by_side(model_dir):
    from fewshotv2v import Pipeline

    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend=FakeBackend())
    refs = pipe.set_references([scene_image(seed=s) for s in range(3)])
    assert len(refs) == 3 and pipe._state.num_refs == 3
    assert refs[0].label.shape == (4, 64, 32) and refs[0].image.shape == (64, 32, 3)
    frames = [scene_image((80, 60), seed=i) for i in range(3)]
    out = list(pipe.stream(frames, side_by_side=True))
    # driving frame resized to height 64 (80x60 -> 64x48) | skeleton 32 | result 32
    assert len(out) == 3 and out[0].shape == (64, 48 + 32 + 32, 3)
    skeleton = out[1][:, 48:80]
    assert skeleton.max() > 0  # the retargeted skeleton is drawn


def test_no_person_policy_holds_then_empties(pipe):
    hw = (80, 60)
    kps = [person_keypoints(hw)] + [None] * 8 + [person_keypoints(hw, 1.0)]
    frames = [scene_image(hw, seed=i) for i in range(len(kps))]
    pipe.hold_frames = 3
    out = list(pipe.stream(frames, keypoints=kps))
    assert len(out) == 10
    s = pipe.last_stats
    assert (s.frames, s.frames_without_person, s.frames_held, s.frames_empty) == (10, 8, 3, 5)


def test_driving_video_without_anyone_is_an_error(pipe):
    frames = [scene_image((80, 60), seed=i) for i in range(3)]
    with pytest.raises(NoPersonError, match="no person detected in any frame of the driving video"):
        list(pipe.stream(frames, keypoints=[None] * 3))


def test_reference_without_a_person(model_dir):
    from fewshotv2v import Pipeline

    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend=FakeBackend(empty=True))
    with pytest.raises(NoPersonError, match="no person detected in reference 0"):
        pipe.set_references([scene_image()])
    none = Pipeline.from_pretrained(model_dir, device="cpu", backend="none")
    with pytest.raises(InputError, match="keypoints"):
        none.set_references([scene_image()])


def test_synthesize_writes_video_with_fps_and_audio(model_dir, tmp_path):
    from fewshotv2v import Pipeline
    from fewshotv2v.video import probe, write_test_video

    drive = write_test_video(
        tmp_path / "drive.mp4", [scene_image((80, 60), i) for i in range(8)], 10.0, tone_hz=440
    )
    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend=FakeBackend())
    result = pipe.synthesize(ref=scene_image(), drive=drive, output=tmp_path / "out.mp4", max_frames=6)
    info = probe(tmp_path / "out.mp4")
    assert result.frames == 6 and result.video_fps == pytest.approx(10.0)
    assert (info.width, info.height, info.num_frames, info.has_audio) == (32, 64, 6, True)
    assert info.fps == pytest.approx(10.0)
    assert "6 frames" in result.summary() and str(tmp_path / "out.mp4") in result.summary()
    with pytest.raises(OutputExistsError):
        pipe.synthesize(drive=drive, output=tmp_path / "out.mp4")


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_interrupted_run_leaves_no_file(model_dir, tmp_path, exc):
    from fewshotv2v import Pipeline
    from fewshotv2v.video import write_test_video

    drive = write_test_video(tmp_path / "drive.mp4", [scene_image((80, 60), i) for i in range(6)], 10.0)
    backend = FakeBackend(fail_at=4, exc=exc)  # call 1 = the reference, 4 = driving frame 3
    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend=backend)
    with pytest.raises(type(exc)):
        pipe.synthesize(ref=scene_image(), drive=drive, output=tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive.mp4"]  # no output, no temp file


def test_finetune_trains_only_ep_and_h(model_dir):
    import torch

    from fewshotv2v import Pipeline

    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend="none")
    img = scene_image()
    pipe.set_references([img, scene_image(seed=1)], keypoints=[person_keypoints(img.shape[:2])] * 2)
    before = {k: v.clone() for k, v in pipe.generator.state_dict().items()}
    stats = pipe.finetune(2)
    after = pipe.tuned_generator.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert stats.steps == 2 and np.isfinite(stats.g_loss) and np.isfinite(stats.d_loss)
    assert any(k.startswith("decoder.") for k in changed) and any(
        k.startswith("weight_generator.") for k in changed
    )
    # frozen parts (W, E_F, E_A, the label embedder, the warp UNets) do not change at all
    frozen = [k for k in changed if not k.startswith(("decoder.", "weight_generator."))]
    assert not frozen, frozen
    assert all(p.requires_grad for p in pipe.tuned_generator.parameters())  # flags restored


def test_finetune_tunes_a_copy_and_the_next_person_gets_the_original(model_dir):
    import torch

    from fewshotv2v import Pipeline

    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend="none")
    before = {k: v.clone() for k, v in pipe.generator.state_dict().items()}
    img, other = scene_image(), scene_image(seed=7)
    kps = [person_keypoints(img.shape[:2])]

    def run(p):
        frames, drive_kps, _ = _frames_and_kps(2)
        return list(p.stream(frames, keypoints=drive_kps))

    pipe.set_references([img], keypoints=kps)
    plain = run(pipe)
    pipe.finetune(2)
    tuned = run(pipe)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, tuned, strict=True))  # synthesis uses it
    after = pipe.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the pipeline's generator is unchanged
    # another person: the original weights, exactly as a fresh pipeline gives them
    pipe.set_references([other], keypoints=kps)
    assert pipe.tuned_generator is None
    fresh = Pipeline.from_pretrained(model_dir, device="cpu", backend="none")
    fresh.set_references([other], keypoints=kps)
    assert all(np.array_equal(a, b) for a, b in zip(run(pipe), run(fresh), strict=True))


def test_finetune_needs_discriminator_weights(tmp_path):
    from fewshotv2v import Pipeline

    folder = make_model(tmp_path / "g-only", with_discriminators=False)
    pipe = Pipeline.from_pretrained(folder, device="cpu", backend="none")
    img = scene_image()
    pipe.set_references([img], keypoints=[person_keypoints(img.shape[:2])])
    with pytest.raises(CheckpointError, match="discriminator.safetensors"):
        pipe.finetune(1)


def test_bf16_autocast_runs_on_cpu(model_dir):
    from fewshotv2v import Pipeline

    pipe = Pipeline.from_pretrained(model_dir, device="cpu", dtype="bf16", backend="none")
    img = scene_image()
    pipe.set_references([img], keypoints=[person_keypoints(img.shape[:2])])
    frames, kps, _ = _frames_and_kps(2)
    out = list(pipe.stream(frames, keypoints=kps))
    assert len(out) == 2 and out[0].dtype == np.uint8


def test_drive_from_a_preprocessed_clip_folder(pipe, tmp_path):
    """A clip folder (dataset layout) drives without any detector: its keypoints.npy is used."""
    from fewshotv2v.data.layout import DatasetWriter
    from fewshotv2v.video import probe

    hw = (80, 60)
    writer = DatasetWriter(tmp_path / "ds", "pose")
    clip = writer.clip("walk", fps=12.0)
    for i in range(4):
        clip.add_frame(scene_image(hw, seed=i), person_keypoints(hw, 0.5 * i) if i != 2 else None)
    clip.close()
    result = pipe.synthesize(drive=tmp_path / "ds" / "walk", output=tmp_path / "out.mp4", start=1 / 12)
    assert (result.frames, result.frames_without_person, result.frames_held) == (3, 1, 1)
    info = probe(tmp_path / "out.mp4")
    assert info.num_frames == 3 and info.fps == pytest.approx(12.0) and not info.has_audio


def test_face_mode_streams_edge_maps(tmp_path):
    from fewshotv2v import Pipeline

    folder = make_model(tmp_path / "face", with_discriminators=False, preset="tiny-face")
    pipe = Pipeline.from_pretrained(folder, device="cpu", backend="none")
    img = scene_image((96, 96))
    refs = pipe.set_references([img], keypoints=[person_keypoints((96, 96))])
    assert refs[0].label.shape == (1, 64, 64) and refs[0].label.max() > 0  # face edge map
    frames, kps, _ = _frames_and_kps(3, hw=(96, 96))
    out = list(pipe.stream(frames, keypoints=kps, side_by_side=True))
    assert len(out) == 3 and out[0].shape == (64, 64 + 64 + 64, 3)
    with pytest.raises(ConfigError, match="pose model"):
        pipe.check_mode("pose")
    with pytest.raises(NoPersonError, match="no face detected in any frame of the driving video"):
        list(pipe.stream([img] * 3, keypoints=[None] * 3))


def test_reference_frames_spread_over_the_video_and_prefer_confident_ones(tmp_path):
    """K slots over the video; in each, the candidate with the most confident detection wins."""
    from fewshotv2v.inference.references import pick_reference_frames
    from fewshotv2v.video import write_test_video

    n, hw = 12, (48, 32)
    # The frame index is painted into the red channel so the detector stub can read it back.
    video = write_test_video(
        tmp_path / "ref.mp4", [np.full((*hw, 3), 10 * i, np.uint8) for i in range(n)], 10.0
    )
    confidence = {0: 0.3, 2: 0.9, 3: 0.2, 4: 0.0, 6: 0.4, 7: 0.2, 8: 0.5, 10: 0.2, 11: 0.8}

    def detect(image):
        i = int(round(image[..., 0].mean() / 10))
        c = confidence.get(i, 0.1)
        if c == 0:
            return None
        kps = person_keypoints(hw)
        kps[:, 2] = c
        return Detection(kps)

    picked = pick_reference_frames(video, 3, detect, "pose")
    names = [name for _, _, name in picked]
    # slots [0, 4) [4, 8) [8, 12); candidates 0/2/3, 4/6/7, 8/10/11 (centred in thirds of each slot)
    assert names == ["ref.mp4 frame 2", "ref.mp4 frame 6", "ref.mp4 frame 11"]
    with pytest.raises(NoPersonError):
        pick_reference_frames(video, 2, lambda image: None, "pose")


def test_upper_body_reference_warns(model_dir):
    """A pose reference without legs (e.g. a portrait) still works, with a one-line warning."""
    import warnings

    from fewshotv2v import Pipeline
    from fewshotv2v.errors import FewShotV2VWarning

    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend="none")
    img = scene_image()
    whole = person_keypoints(img.shape[:2])
    portrait = whole.copy()
    portrait[[10, 11, 13, 14, 19, 20, 21, 22, 23, 24], 2] = 0.0  # no knees, ankles or feet
    with pytest.warns(FewShotV2VWarning, match="no legs visible in reference"):
        pipe.set_references([img], keypoints=[portrait])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewShotV2VWarning)
        pipe.set_references([img], keypoints=[whole])  # a whole body: no warning


def test_one_pass_writes_result_and_side_by_side(model_dir, tmp_path):
    """`side_by_side_output` writes both videos from one pass: the detector runs once per frame."""
    from fewshotv2v import Pipeline
    from fewshotv2v.video import probe, write_test_video

    drive = write_test_video(tmp_path / "drive.mp4", [scene_image((80, 60), i) for i in range(5)], 10.0)
    backend = FakeBackend()
    pipe = Pipeline.from_pretrained(model_dir, device="cpu", backend=backend)
    pipe.set_references([scene_image()])
    calls_for_references = backend.calls
    out, side = tmp_path / "out.mp4", tmp_path / "side.mp4"
    result = pipe.synthesize(drive=drive, output=out, side_by_side_output=side)
    assert result.frames == 5 and backend.calls - calls_for_references == 5
    main, composite = probe(out), probe(side)
    assert (main.width, main.height, main.num_frames) == (32, 64, 5)
    assert composite.num_frames == 5 and composite.width > main.width and composite.height == 64
    with pytest.raises(OutputExistsError):  # either existing output is refused before any work
        pipe.synthesize(drive=drive, output=tmp_path / "new.mp4", side_by_side_output=side)
    assert not (tmp_path / "new.mp4").exists()


def test_someone_else_followed_starts_at_the_references_place_and_size(tmp_path):
    """Lost for good, then a bigger person elsewhere: their first frame is retargeted as frame 0 was (the
    reference's place and scale), not by their size and place relative to the first person."""
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.inference.driving import LabelMaker, drive_source
    from fewshotv2v.inference.producer import InputPlan, frame_inputs
    from fewshotv2v.semantics.tracking import PersonTracker

    hw = (160, 120)
    small = person_keypoints((80, 60))  # a person filling 70 % of 80 px, at the frame's left half
    big = person_keypoints(hw)  # the same pose twice as big, in the middle
    big[:, :2] += (30, 0)
    gap = PersonTracker().reacquire_after
    people = [small, small] + [None] * gap + [big, big]

    class Detector:
        calls = 0

        def detect(self, image):
            kps = people[self.calls]
            self.calls += 1
            return [] if kps is None else [Detection(kps, score=0.9)]

    config = ModelConfig.preset("tiny")
    maker = LabelMaker(config, person_keypoints((config.height, config.width)))
    plan = InputPlan(frames=maker, hold_frames=0)
    source = drive_source([np.zeros((*hw, 3), np.uint8)] * len(people))
    items = list(frame_inputs(plan, source, Detector()))
    first, switched = items[0], items[2 + gap]
    assert switched.counts.person_changes == 1 and items[-1].counts.person_changes == 1
    np.testing.assert_allclose(switched.label, first.label, atol=1e-5)

    # Picked up on a frame whose detection is unusable (too faint): they start at their next usable one.
    faint = big.copy()
    faint[:, 2] = 0.02  # tracked (> 0.01), but too few points for a usable pose (>= 0.05)
    faint[:3, 2] = 0.9
    people = [small, small] + [None] * gap + [faint, big, big]
    maker.reset()
    items = list(frame_inputs(plan, drive_source([np.zeros((*hw, 3), np.uint8)] * len(people)), Detector()))
    np.testing.assert_allclose(items[3 + gap].label, first.label, atol=1e-5)
    assert items[-1].counts.person_changes == 1


def test_a_cut_in_the_driving_video_starts_the_new_shot_at_the_references_place_and_size():
    """A cut (the frames change) to a shot with the person elsewhere and bigger: they are picked afresh on
    the cut's own frame (not lost for 30 frames, as before) and retargeted as frame 0 was; a cut to a shot
    that zooms in on them where they stand is a new shot too (not a glitch held over)."""
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.inference.driving import LabelMaker, drive_source
    from fewshotv2v.inference.producer import InputPlan, frame_inputs

    hw = (160, 120)
    small = person_keypoints((80, 60))
    elsewhere = person_keypoints(hw)  # twice as big, in the middle
    elsewhere[:, :2] += (30, 0)
    zoomed = small.copy()
    zoomed[:, :2] = (small[:, :2] - small[1, :2]) * 1.6 + small[1, :2]  # the same place, 1.6 x as big

    for after in (elsewhere, zoomed):
        people = [small, small, after, after]
        images = [scene_image(hw, seed=0)] * 2 + [scene_image(hw, seed=1)[::-1].copy()] * 2

        class Detector:
            def __init__(self, people):
                self.people = iter(people)

            def detect(self, image):
                return [Detection(next(self.people), score=0.9)]

        config = ModelConfig.preset("tiny")
        maker = LabelMaker(config, person_keypoints((config.height, config.width)))
        plan = InputPlan(frames=maker, hold_frames=0)
        items = list(frame_inputs(plan, drive_source(images), Detector(people)))
        np.testing.assert_allclose(items[2].label, items[0].label, atol=1e-5)
        counts = items[-1].counts
        assert counts.new_shots == 1 and counts.person_changes == 0 and counts.frames_without_person == 0
        assert counts.jumps_ignored == 0


def test_the_person_followed_is_looked_for_near_their_last_place_when_the_detector_reports_another():
    """A single-person detector that slides to a passer-by: DrivingKeypoints asks it (`detect_near`)
    for the followed person around their last box, and the frame keeps them."""
    from fewshotv2v.inference.driving import DrivingKeypoints

    hw = (160, 240)
    me = person_keypoints((80, 60))  # on the left
    other = person_keypoints((80, 60))
    other[:, 0] += 150  # someone else, on the right

    class SlidingDetector:
        def __init__(self):
            self.calls, self.near = 0, []

        def detect(self, image):
            self.calls += 1
            return [Detection(me if self.calls == 1 else other, score=0.9)]

        def detect_near(self, image, box):
            self.near.append(np.asarray(box).copy())
            return [Detection(me, score=0.9)]

    detector = SlidingDetector()
    keypoints = DrivingKeypoints(detector, mode="pose", smoothing=False)
    image = np.zeros((*hw, 3), np.uint8)
    for _ in range(3):
        kps, _ = keypoints(image, False, None)
        np.testing.assert_array_equal(kps, me)
    assert len(detector.near) == 2 and keypoints.stats.frames_without_person == 0
    assert detector.near[0][2] < 100  # asked around the left person's box


def test_summary_counts_frames_without_a_person_and_person_changes():
    from fewshotv2v.pipeline import SynthesisResult

    base = dict(output="out.mp4", frames=10, seconds=2.0, fps=5.0, video_fps=25.0)
    clean = SynthesisResult(**base, frames_without_person=0, frames_held=0, frames_empty=0).summary()
    assert clean == "10 frames in 2.0 s (5.00 frames/s) -> out.mp4"
    once = SynthesisResult(**base, frames_without_person=4, frames_held=1, frames_empty=3, person_changes=1)
    assert once.summary().endswith(
        "; 4 frames without a person (1 held, 3 empty); the driving person was lost and someone else "
        "followed once"
    )
    twice = SynthesisResult(**base, frames_without_person=0, frames_held=0, frames_empty=0, person_changes=2)
    assert twice.summary().endswith("someone else followed 2 times")
    jumps = SynthesisResult(**base, frames_without_person=0, frames_held=0, frames_empty=0, jumps_ignored=3)
    assert jumps.summary().endswith(
        "; 3 detections ignored as glitches (a sudden jump in size or place), last keypoints kept"
    )
    one = SynthesisResult(**base, frames_without_person=0, frames_held=0, frames_empty=0, jumps_ignored=1)
    assert "; 1 detection ignored as glitches" in one.summary()
    cut = SynthesisResult(**base, frames_without_person=0, frames_held=0, frames_empty=0, new_shots=2)
    assert cut.summary().endswith(
        "; 2 cuts in the driving video, each new shot started at the reference's place"
    )


def test_a_detection_whose_height_jumps_is_held_over_as_a_glitch():
    """vtest.avi frame 60: mediapipe folded a walker to 80 % of their height for one frame and the
    retargeted body leapt off the top of the canvas. Such a jump is held over (the last keypoints kept,
    counted), for at most JUMP_HOLD frames: a change that lasts is the person's (a crouch)."""
    from fewshotv2v.inference.driving import DrivingKeypoints
    from fewshotv2v.semantics.keypoints import person_height
    from fewshotv2v.semantics.tracking import JUMP_HOLD

    me = person_keypoints((160, 80))
    squashed = me.copy()
    feet = squashed[:, 1].max()
    squashed[:, 1] = feet - 0.75 * (feet - squashed[:, 1])  # folded to 3/4 of the height, feet in place
    assert person_height(squashed) < 0.8 * person_height(me)
    image = np.zeros((160, 80, 3), np.uint8)

    keypoints = DrivingKeypoints(None, mode="pose", smoothing=False)
    out = [keypoints(image, k, None)[0] for k in [me, squashed, me]]
    np.testing.assert_array_equal(out[1], me)  # the glitch frame keeps the last keypoints
    np.testing.assert_array_equal(out[2], me)
    assert keypoints.stats.jumps_ignored == 1 and keypoints.stats.frames_without_person == 0

    lasting = DrivingKeypoints(None, mode="pose", smoothing=False)
    out = [lasting(image, k, None)[0] for k in [me] + [squashed] * (JUMP_HOLD + 2)]
    assert all((o == me).all() for o in out[1 : 1 + JUMP_HOLD])
    np.testing.assert_array_equal(out[1 + JUMP_HOLD], squashed)  # then it is taken as real
    np.testing.assert_array_equal(out[-1], squashed)
    assert lasting.stats.jumps_ignored == JUMP_HOLD

    assert not lasting.new_shot  # a pose jump that lasts is the person's own: no new shot


def _face_at(centre: tuple[float, float], radius: float) -> np.ndarray:
    """(137, 3) keypoints of one 70-point face (a fixed random shape) of RMS `radius` px at `centre`."""
    pts = np.random.default_rng(0).normal(size=(70, 2))
    pts = (pts - pts.mean(0)) / np.sqrt((pts**2).sum(1).mean())
    kps = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    kps[FACE, :2] = pts * radius + centre
    kps[FACE, 2] = 1.0
    return kps


def test_a_cut_in_the_driving_video_starts_the_face_at_the_references_place_and_size():
    """A talking-head clip that cuts to another shot (the face elsewhere, 1.5 x as big): after the
    glitch hold, the new shot's face is retargeted as frame 0 was, not shrunk and moved by its size and
    place relative to the first shot's (the astronaut's face shrank and slid up after such a cut). Small
    moves are motion, not cuts."""
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.inference.driving import LabelMaker, drive_source
    from fewshotv2v.inference.producer import InputPlan, frame_inputs
    from fewshotv2v.semantics.tracking import JUMP_HOLD

    config = ModelConfig.preset("tiny-face")
    maker = LabelMaker(config, _face_at((config.width / 2, config.height / 2), 10))
    first, moved = _face_at((60, 50), 12), _face_at((64, 52), 12.3)  # 0.36 radii, 1.025 x: motion
    cut = _face_at((110, 90), 18)
    faces = [first, moved, first] + [cut] * (JUMP_HOLD + 2)
    plan = InputPlan(frames=maker, hold_frames=0, smoothing=False)
    source = drive_source([np.zeros((160, 160, 3), np.uint8)] * len(faces), keypoints=faces)
    items = list(frame_inputs(plan, source, None))
    labels = [item.label for item in items]
    assert not np.allclose(labels[1], labels[0])  # the small move is drawn
    for held in labels[3 : 3 + JUMP_HOLD]:
        np.testing.assert_array_equal(held, labels[2])  # the cut's first frames: a glitch, held over
    np.testing.assert_allclose(labels[3 + JUMP_HOLD], labels[0], atol=1e-5)  # then taken afresh
    np.testing.assert_allclose(labels[-1], labels[0], atol=1e-5)
    counts = items[-1].counts
    assert counts.new_shots == 1 and counts.jumps_ignored == JUMP_HOLD and counts.person_changes == 0


def test_a_4k_driving_video_is_decoded_at_most_1920_wide_unless_keypoints_come_with_it(tmp_path):
    """A phone's 4K video gains nothing for detection and costs 4x to decode and convert: it is read with
    its long side at 1920 (`DRIVE_MAX_SIZE`). Keypoints given with it are in its own pixels, so then the
    frames keep their size."""
    from fewshotv2v.inference.driving import DRIVE_MAX_SIZE, drive_source
    from fewshotv2v.video import write_test_video

    frame = np.zeros((64, 2400, 3), np.uint8)
    path = write_test_video(tmp_path / "wide.mp4", iter([frame] * 2), fps=10, tone_hz=0)
    source = drive_source(path)
    sizes = [image.shape for image, _, _ in source]
    assert sizes == [(51, DRIVE_MAX_SIZE, 3)] * 2 and source.num_frames == 2
    given = drive_source(path, keypoints=[np.zeros((137, 3), np.float32)] * 2)
    assert [image.shape for image, _, _ in given] == [(64, 2400, 3)] * 2

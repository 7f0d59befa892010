"""Training and evaluation datasets over the dataset layout (`data.layout`), SPEC §4.

A training sample is a window of `clip_len` consecutive frames of one clip (the targets of the sequential
generator) plus `k_max` reference frames of the *same* clip taken away from the window, as few-shot
vid2vid trains: FSV draws pose references 14-60 frames away from the target. Here the gap is scaled to the
length n of the clip (`ref_gap`): at least `min(14, max(1, n // 10))` and at most `min(60, max(lo, n // 2))`
frames from the nearest window frame; when a clip is too short for that, the references fall back to any
frame outside the window, then to any frame at all.

Pose samples are cropped around the person (SPEC §1; one jittered box for the whole window so the camera
does not shake between consecutive frames, one per reference), face samples around the face; street frames
are resized whole. Label maps come from `semantics.label_maps.build_label_map`.

Per-item randomness comes from `np.random.default_rng([seed, epoch, index])`, so data-loader workers are
deterministic whatever their number; call `set_epoch(e)` each epoch (use non-persistent workers, or
the change will not reach them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fewshotv2v.data.augment import Augmentation, ColorJitter, flip_image, flip_keypoints
from fewshotv2v.data.layout import Clip, open_dataset
from fewshotv2v.errors import ConfigError, InputError, NoPersonError
from fewshotv2v.modes import get_mode
from fewshotv2v.semantics import crops
from fewshotv2v.semantics.label_maps import build_label_map

FACE_MIN_POINTS = 10  # fewer valid face landmarks than this: no face box (-1)


# --------------------------------------------------------------------------------------------------
# Splits (held-out identities for evaluation)
# --------------------------------------------------------------------------------------------------


def clip_identity(clip: Clip) -> str:
    """Identity of a clip: `meta["identity"]`, else the name without a `_clipNN` suffix (`id0003_clip01`)."""
    ident = clip.meta.get("identity")
    if ident is not None:
        return str(ident)
    name = clip.name
    head, sep, tail = name.rpartition("_clip")
    return head if sep and tail.isdigit() else name


def split_clips(
    dataset_root: str | Path, held_out: float | Sequence[str] = 0.1, *, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Split clip names into `(train, held_out)` by identity, so no person is in both parts.

    `held_out` is a fraction of the identities (drawn with `seed`; at least one when > 0 and there are two
    or more identities) or explicit names; a name matches a clip or an identity."""
    clips = open_dataset(dataset_root).clips
    idents = sorted({clip_identity(c) for c in clips})
    if isinstance(held_out, str | bytes):
        held_out = [str(held_out)]
    if isinstance(held_out, int | float):
        if not 0.0 <= float(held_out) < 1.0:
            raise ConfigError(f"held-out fraction must be in [0, 1), got {held_out}")
        n = int(round(float(held_out) * len(idents)))
        if held_out > 0 and len(idents) > 1:
            n = min(max(n, 1), len(idents) - 1)
        rng = np.random.default_rng([seed, 31337])
        chosen = {idents[i] for i in rng.permutation(len(idents))[:n]}
        out = [c.name for c in clips if clip_identity(c) in chosen]
    else:
        names = set(held_out)
        unknown = names - {c.name for c in clips} - set(idents)
        if unknown:
            raise InputError(f"unknown held-out clip or identity: {', '.join(sorted(unknown))}")
        out = [c.name for c in clips if c.name in names or clip_identity(c) in names]
    return [c.name for c in clips if c.name not in out], out


# --------------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------------


def ref_gap(num_frames: int, min_gap: int | None = None, max_gap: int | None = None) -> tuple[int, int]:
    """Reference distance range `(lo, hi)` in frames for a clip of `num_frames` (FSV: 14..60 at 30 fps,
    scaled down for short clips so that references can still be found)."""
    lo = min(14, max(1, num_frames // 10)) if min_gap is None else max(1, int(min_gap))
    hi = min(60, max(lo, num_frames // 2)) if max_gap is None else max(lo, int(max_gap))
    return lo, hi


def _clamp(start: float, size: float, limit: float) -> float:
    """Shift a 1-D interval inside `[0, limit]` when it fits; a larger one stays centred (padded later)."""
    return float(np.clip(start, 0.0, limit - size)) if size <= limit else float(start)


def _union_box(boxes: np.ndarray, frame_hw: tuple[int, int], aspect: float | None) -> np.ndarray:
    """The smallest box `(4,)` holding the per-frame boxes `(N, 4)`, grown to `aspect` (width / height)
    about its centre, then shifted into the frame where it fits (same rule as `semantics.crops`)."""
    lo, hi = boxes[:, :2].min(0), boxes[:, 2:].max(0)
    centre, wh = (lo + hi) / 2, hi - lo
    if aspect is not None:  # grow the smaller side so the crop is not distorted by the resize
        wh = np.array([max(wh[0], wh[1] * aspect), max(wh[1], wh[0] / aspect)])
    x0 = _clamp(float(centre[0] - wh[0] / 2), float(wh[0]), frame_hw[1])
    y0 = _clamp(float(centre[1] - wh[1] / 2), float(wh[1]), frame_hw[0])
    return np.array([x0, y0, x0 + wh[0], y0 + wh[1]], np.float32)


def face_box(kps_out: np.ndarray, out_hw: tuple[int, int], *, margin: float = 1.3) -> np.ndarray:
    """Square box `(4,)` around the face landmarks in output pixels (the face discriminator's crop), or all
    -1 when fewer than `FACE_MIN_POINTS` landmarks are valid or the box falls outside the image."""
    face = kps_out[25:93]
    ok = face[:, 2] > 0.1
    none = np.full(4, -1.0, np.float32)
    if ok.sum() < FACE_MIN_POINTS:
        return none
    p = face[ok, :2] + 0.5
    centre = (p.min(0) + p.max(0)) / 2
    side = max(float((p.max(0) - p.min(0)).max()) * margin, 4.0)
    box = np.concatenate([centre - side / 2, centre + side / 2])
    box[[0, 2]] = np.clip(box[[0, 2]], 0, out_hw[1])
    box[[1, 3]] = np.clip(box[[1, 3]], 0, out_hw[0])
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return none
    return box.astype(np.float32)


def _to_image_tensor(image: np.ndarray) -> torch.Tensor:
    """float/uint8 `(H, W, 3)` in [0, 255] -> `(3, H, W)` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 0, 1)))
    return x / 127.5 - 1.0


@dataclass
class _Plan:
    """What one sample reads: the clip, target frames, reference frames and the random draws."""

    clip_index: int
    frames: np.ndarray  # (T,)
    refs: np.ndarray  # (K,)
    flip: bool = False
    jitter: ColorJitter = field(default_factory=ColorJitter)


# --------------------------------------------------------------------------------------------------
# Shared sample builder
# --------------------------------------------------------------------------------------------------


class _ClipSource:
    """Reads frames of a dataset's clips and turns them into model tensors for one `ModelConfig`."""

    def __init__(self, root, config, clips: Sequence[str] | None, held_out, train: bool, split_seed: int):
        self.root = Path(root)
        self.config = config
        dataset = open_dataset(self.root)
        if dataset.mode != config.mode:
            raise ConfigError(f"dataset {self.root} is {dataset.mode} data but the model is {config.mode}")
        names = [c.name for c in dataset.clips]
        if held_out is not None:
            train_names, held = split_clips(self.root, held_out, seed=split_seed)
            names = train_names if train else held
        if clips is not None:
            names = [n for n in names if n in set(clips)]
        self.clips = [c for c in dataset.clips if c.name in set(names)]
        if not self.clips:
            raise InputError(f"no clips to use in dataset {self.root}")
        self.mode = dataset.mode
        self.mode_info = get_mode(dataset.mode)
        self.out_hw = (int(config.height), int(config.width))

    def _box(self, clip: Clip, idx: Sequence[int], rng, aug: Augmentation) -> np.ndarray:
        """One crop box for frames `idx` (frame pixels), jittered when `rng` is given."""
        hw = (clip.height, clip.width)
        if not self.mode_info.keypoint_driven:
            return self.mode_info.crop_box(None, hw)  # the whole frame
        aspect = self.out_hw[1] / self.out_hw[0]
        boxes = []
        for i in idx:
            try:
                boxes.append(self.mode_info.crop_box(clip.keypoints[i], hw, aspect=aspect, clamp=False))
            except NoPersonError:
                stored = np.asarray(clip.crops[i], np.float32)
                if np.isfinite(stored).all():
                    boxes.append(stored)
        if not boxes:  # no person anywhere: the whole frame
            return np.array([0, 0, clip.width, clip.height], np.float32)
        box = _union_box(np.stack(boxes), hw, self.out_hw[1] / self.out_hw[0])
        if rng is not None and self.mode == "pose":
            lo, hi = aug.crop_scale
            scale = float(rng.uniform(lo, hi)) / 1.5
            size = (box[2:] - box[:2]) * scale
            centre = (box[:2] + box[2:]) / 2 + rng.uniform(-1, 1, 2) * aug.crop_offset * size
            box = _union_box(np.concatenate([centre - size / 2, centre + size / 2])[None], hw, None)
        elif rng is not None and aug.crop_offset > 0:
            size = box[2:] - box[:2]
            box = box + np.tile(rng.uniform(-1, 1, 2) * aug.crop_offset * size, 2).astype(np.float32)
        return box

    def frame(self, clip: Clip, i: int, box, *, flip=False, jitter=None, rng=None, limb_drop=0.0):
        """Frame `i` cropped to `box`: `(image (3, H, W), label (C, H, W), face_box (4,))` tensors.

        `frame_keypoints` gives the keypoints too (the flow prior needs them)."""
        return self.frame_keypoints(clip, i, box, flip=flip, jitter=jitter, rng=rng, limb_drop=limb_drop)[:3]

    def frame_keypoints(self, clip: Clip, i: int, box, *, flip=False, jitter=None, rng=None, limb_drop=0.0):
        """`frame` plus the keypoints `(137, 3)` in output pixels (flipped with the image)."""
        out_hw = self.out_hw
        image = crops.crop_image(clip.frame(i), box, out_hw)  # uint8 (H, W, 3)
        kps = crops.transform_keypoints(clip.keypoints[i], box, out_hw)  # (137, 3) output pixels
        mask = label = None
        if self.mode_info.has_person_mask and self.config.use_person_mask:
            raw = clip.mask(i)
            mask = np.zeros(out_hw, np.uint8) if raw is None else crops.crop_image(raw, box, out_hw)
        if not self.mode_info.keypoint_driven:
            raw = clip.label(i)
            if raw is None:
                raise InputError(f"street clip {clip.name} has no label map for frame {i}")
            label = crops.crop_image(raw, box, out_hw, interpolation="nearest", fill=255)
        if flip:
            image, kps = flip_image(image), flip_keypoints(kps, out_hw[1])
            mask = None if mask is None else flip_image(mask)
            label = None if label is None else flip_image(label)
        if jitter is not None:
            image = jitter(image)
        lab = build_label_map(
            self.mode,
            kps if self.mode_info.keypoint_driven else None,
            out_hw,
            config=self.config,
            mask=mask,
            label=label,
            rng=rng,
            limb_drop=limb_drop,
        )
        fbox = face_box(kps, out_hw) if self.mode_info.keypoint_driven else np.full(4, -1.0, np.float32)
        return _to_image_tensor(image), torch.from_numpy(lab), torch.from_numpy(fbox), torch.from_numpy(kps)


# --------------------------------------------------------------------------------------------------
# Training dataset
# --------------------------------------------------------------------------------------------------


class TrainingDataset(torch.utils.data.Dataset):
    """Windows of `clip_len` frames + `k_max` same-clip references (SPEC §4), as the contract dict:

    `ref_images (K, 3, H, W)` and `images (T, 3, H, W)` in [-1, 1]; `ref_labels (K, C, H, W)` and
    `labels (T, C, H, W)` in [0, 1]; `face_boxes (T, 4)`, `ref_face_boxes (K, 4)` in output pixels
    (-1 without a face); `keypoints (T, 137, 3)`, `ref_keypoints (K, 137, 3)` in output pixels and
    `ref_transforms (K, 3)` (the camera map from the window's crop to each reference's crop,
    `crops.box_transform`) for the keypoint flow prior; plus `frame_indices (T,)`, `ref_indices (K,)`
    and `clip_index ()` for inspection.

    `held_out` (fraction or names, see `split_clips`; a fraction is drawn with `split_seed`, by default
    `seed`) keeps held-out identities out of training; with `train=False` the dataset serves exactly
    those held-out clips, without augmentation.
    `length` is the number of samples per epoch (default: frames in the clips // 8, at least one per clip).
    """

    def __init__(
        self,
        root: str | Path,
        config,
        *,
        clip_len: int = 1,
        k_max: int | None = None,
        train: bool = True,
        seed: int = 0,
        ref_min_gap: int | None = None,
        ref_max_gap: int | None = None,
        held_out: float | Sequence[str] | None = None,
        clips: Sequence[str] | None = None,
        augmentation: Augmentation | None = None,
        length: int | None = None,
        split_seed: int | None = None,
    ):
        split = seed if split_seed is None else split_seed
        self.source = _ClipSource(root, config, clips, held_out, train, split)
        self.config = config
        self.k_max = int(k_max if k_max is not None else config.k_max)
        if self.k_max < 1:
            raise ConfigError(f"k_max must be at least 1, got {self.k_max}")
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        self.ref_min_gap, self.ref_max_gap = ref_min_gap, ref_max_gap
        self.aug = (augmentation or Augmentation()) if train else Augmentation.off()
        total = sum(c.num_frames for c in self.source.clips)
        self.length = int(length) if length else max(len(self.source.clips), total // 8)
        self.clip_len = 1
        self.set_clip_len(clip_len)

    @property
    def clips(self) -> list[Clip]:
        return self.source.clips

    def set_clip_len(self, clip_len: int) -> None:
        """Number of consecutive target frames per sample (the progressive temporal schedule grows it)."""
        if int(clip_len) < 1:
            raise ConfigError(f"clip length must be at least 1, got {clip_len}")
        self.clip_len = int(clip_len)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def plan(self, index: int, rng: np.random.Generator | None = None) -> _Plan:
        """Choose the clip, the window and the references of sample `index` (no pixels read)."""
        rng = rng if rng is not None else self.rng(index)
        T, clips = self.clip_len, self.source.clips
        long_enough = [i for i, c in enumerate(clips) if c.num_frames > T]
        pool = long_enough or list(range(len(clips)))  # short clips only: windows repeat the last frame
        ci = int(pool[rng.integers(len(pool))])
        n = clips[ci].num_frames
        start = int(rng.integers(max(n - T, 0) + 1))
        frames = np.minimum(start + np.arange(T), n - 1)
        end = int(frames[-1])
        j = np.arange(n)
        dist = np.where(j < start, start - j, np.where(j > end, j - end, 0))  # distance to the window
        lo, hi = ref_gap(n, self.ref_min_gap, self.ref_max_gap)
        for ok in ((dist >= lo) & (dist <= hi), dist > 0, np.ones(n, bool)):  # graceful fallbacks
            cand = j[ok]
            if len(cand):
                break
        refs = rng.choice(cand, size=self.k_max, replace=len(cand) < self.k_max)
        flip = bool(rng.random() < self.aug.flip_p)
        jitter = ColorJitter.sample(rng, self.aug) if self.train else ColorJitter()
        return _Plan(ci, frames.astype(np.int64), np.asarray(refs, np.int64), flip, jitter)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        rng = self.rng(index)
        p = self.plan(index, rng)
        clip, src = self.source.clips[p.clip_index], self.source
        aug_rng = rng if self.train else None
        drop = self.aug.limb_drop if self.train else 0.0
        box = src._box(clip, p.frames, aug_rng, self.aug)  # one box for the whole window
        targets = [
            src.frame_keypoints(clip, int(i), box, flip=p.flip, jitter=p.jitter, rng=rng, limb_drop=drop)
            for i in p.frames
        ]
        refs, transforms = [], []
        for i in p.refs:
            ref_box = src._box(clip, [int(i)], aug_rng, self.aug)
            refs.append(
                src.frame_keypoints(
                    clip, int(i), ref_box, flip=p.flip, jitter=p.jitter, rng=rng, limb_drop=0.0
                )
            )
            transforms.append(crops.box_transform(box, ref_box, src.out_hw, flip=p.flip))
        images, labels, fboxes, kps = (torch.stack(x) for x in zip(*targets, strict=True))
        ref_images, ref_labels, ref_fboxes, ref_kps = (torch.stack(x) for x in zip(*refs, strict=True))
        return {
            "ref_images": ref_images,
            "ref_labels": ref_labels,
            "ref_face_boxes": ref_fboxes,
            "ref_keypoints": ref_kps,
            "ref_transforms": torch.from_numpy(np.stack(transforms)),
            "images": images,
            "labels": labels,
            "face_boxes": fboxes,
            "keypoints": kps,
            "frame_indices": torch.from_numpy(p.frames),
            "ref_indices": torch.from_numpy(p.refs),
            "clip_index": torch.tensor(p.clip_index),
        }


# --------------------------------------------------------------------------------------------------
# Evaluation: whole clips in order
# --------------------------------------------------------------------------------------------------


@dataclass
class EvalClip:
    """One evaluation clip: K references and a frame iterator (streams; never holds the whole clip)."""

    name: str
    num_frames: int
    fps: float
    ref_indices: list[int]
    ref_images: torch.Tensor  # (K, 3, H, W) in [-1, 1]
    ref_labels: torch.Tensor  # (K, C, H, W) in [0, 1]
    box: np.ndarray  # (4,) crop box in frame pixels, fixed for the clip
    _source: _ClipSource = field(repr=False)
    _clip: Clip = field(repr=False)
    ref_keypoints: torch.Tensor | None = None  # (K, 137, 3) in output pixels (same box as the frames)

    def frames(self, *, skip_refs: bool = False) -> Iterator[dict]:
        """Yield `{"index", "image" (3, H, W), "label" (C, H, W), "face_box" (4,), "keypoints" (137, 3)}` for
        every frame in order (`skip_refs`: leave out the reference frames, which would be trivially
        reconstructed)."""
        for i in range(self.num_frames):
            if skip_refs and i in self.ref_indices:
                continue
            image, label, fbox, kps = self._source.frame_keypoints(self._clip, i, self.box)
            yield {"index": i, "image": image, "label": label, "face_box": fbox, "keypoints": kps}


class EvalDataset:
    """Whole clips in order for `fsv2v eval` (self-reconstruction): references = `k` frames spread over the
    clip (`k=1`: the first frame), one fixed crop box per clip, no augmentation.

    `held_out` with `seed` selects the held-out clips exactly as `TrainingDataset(held_out=, seed=)` left
    them out of training; `clips` picks clips by name; `max_frames` limits the frames per clip."""

    def __init__(
        self,
        root,
        config,
        *,
        k: int = 1,
        clips: Sequence[str] | None = None,
        held_out: float | Sequence[str] | None = None,
        seed: int = 0,
        max_frames: int | None = None,
    ):
        self.source = _ClipSource(root, config, clips, held_out, False, seed)
        if k < 1:
            raise ConfigError(f"number of references must be at least 1, got {k}")
        self.k = int(k)
        self.max_frames = max_frames

    def __len__(self) -> int:
        return len(self.source.clips)

    def __iter__(self) -> Iterator[EvalClip]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int) -> EvalClip:
        clip, src = self.source.clips[i], self.source
        n = clip.num_frames if self.max_frames is None else min(clip.num_frames, int(self.max_frames))
        refs = sorted({int(r) for r in np.linspace(0, n - 1, self.k + 1)[:-1].round()}) if self.k > 1 else [0]
        box = src._box(clip, range(n), None, Augmentation.off())
        ref_t = [src.frame_keypoints(clip, r, box) for r in refs]
        return EvalClip(
            clip.name,
            n,
            clip.fps,
            refs,
            torch.stack([r[0] for r in ref_t]),
            torch.stack([r[1] for r in ref_t]),
            box,
            src,
            clip,
            torch.stack([r[3] for r in ref_t]),
        )

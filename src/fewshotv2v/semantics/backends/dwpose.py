"""DWPose whole-body keypoints with onnxruntime (extra ``[dwpose]``), multi-person.

Two ONNX models, as released by the DWPose authors (Hub repo ``yzd-v/DWPose``):

1. ``yolox_l.onnx`` person detector. Input ``(1, 3, 640, 640)`` float32, the image letterboxed: resized by
   ``r = min(640 / H, 640 / W)`` (bilinear), placed top-left on a 114-grey canvas, BGR channel order
   (mmdet's YOLOX is trained on OpenCV's BGR images), values 0..255. Output ``(1, 8400, 85)`` raw per-anchor
   predictions on the stride 8 / 16 / 32 grids: ``(dx, dy, log w, log h, objectness, 80 class scores)``,
   decoded here (``(d + grid) * stride``, ``exp(.) * stride``), score = objectness x person score, then
   NMS (IoU 0.45) and a 0.3 score threshold.
2. ``dw-ll_ucoco_384.onnx`` top-down pose model (SimCC head). For each person box: centre and size x 1.25
   padding, widened to the 288 x 384 aspect, cropped with an axis-aligned affine map (no rotation) to
   ``(1, 3, 384, 288)``, RGB normalised with the ImageNet mean / std (mmpose ``bgr_to_rgb=True``). Outputs
   ``simcc_x (1, 133, 576)`` and ``simcc_y (1, 133, 768)``: per keypoint 1-D classifications at twice the
   input resolution (split ratio 2); position = argmax / 2, score = min of the two maxima.

COCO-WholeBody 133 -> canonical 137: body 17 + feet 6 -> BODY_25 (neck = mid-shoulders, mid-hip =
mid-hips), face 68 -> face 0..67, pupils = centres of the eye contours (36-41, 42-47), hands 21 + 21.
Keypoints below ``kpt_threshold`` (0.3, DWPose's own drawing threshold) get confidence 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fewshotv2v.errors import ConfigError, InputError, require
from fewshotv2v.semantics import keypoints as kp
from fewshotv2v.semantics.backends.base import Backend, Detection, check_image
from fewshotv2v.semantics.crops import crop_image

DET_FILE, POSE_FILE = "yolox_l.onnx", "dw-ll_ucoco_384.onnx"
DET_SIZE = 640
POSE_W, POSE_H = 288, 384
SIMCC_SPLIT = 2.0
STRIDES = (8, 16, 32)
MEAN = np.array([123.675, 116.28, 103.53], np.float32)  # RGB
STD = np.array([58.395, 57.12, 57.375], np.float32)

# BODY_25 index -> COCO-WholeBody index (neck and mid-hip are derived).
WHOLEBODY_TO_BODY25 = {
    kp.NOSE: 0, kp.R_SHOULDER: 6, kp.R_ELBOW: 8, kp.R_WRIST: 10, kp.L_SHOULDER: 5, kp.L_ELBOW: 7,
    kp.L_WRIST: 9, kp.R_HIP: 12, kp.R_KNEE: 14, kp.R_ANKLE: 16, kp.L_HIP: 11, kp.L_KNEE: 13, kp.L_ANKLE: 15,
    kp.R_EYE: 2, kp.L_EYE: 1, kp.R_EAR: 4, kp.L_EAR: 3, kp.L_BIG_TOE: 17, kp.L_SMALL_TOE: 18, kp.L_HEEL: 19,
    kp.R_BIG_TOE: 20, kp.R_SMALL_TOE: 21, kp.R_HEEL: 22,
}  # fmt: skip
WB_FACE, WB_LEFT_HAND, WB_RIGHT_HAND = slice(23, 91), slice(91, 112), slice(112, 133)


# ----------------------------------------------------------------------------------------- detector
def letterbox(image: np.ndarray, size: int = DET_SIZE, *, bgr: bool = True) -> tuple[np.ndarray, float]:
    """YOLOX input ``(1, 3, size, size)`` float32 and the resize ratio ``r`` (source px x r = input px)."""
    h, w = image.shape[:2]
    r = min(size / h, size / w)
    nh, nw = int(h * r), int(w * r)
    resized = crop_image(image, (0, 0, w, h), (nh, nw), antialias=False)  # plain bilinear, as cv2
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[:nh, :nw] = resized
    if bgr:
        canvas = canvas[..., ::-1]
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], np.float32), r


def decode_yolox(raw: np.ndarray, size: int = DET_SIZE) -> np.ndarray:
    """Raw YOLOX output ``(N, 5 + classes)`` -> ``(N, 4 + 1 + classes)``: boxes x0, y0, x1, y1 in input
    pixels, objectness, class scores."""
    grids, strides = [], []
    for s in STRIDES:
        n = size // s
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), s))
    grid = np.concatenate(grids).astype(np.float32)  # (N, 2), row-major per level
    stride = np.concatenate(strides).astype(np.float32)  # (N, 1)
    if len(raw) != len(grid):
        raise InputError(f"detector output has {len(raw)} anchors; expected {len(grid)} for {size} px input")
    centre = (raw[:, :2] + grid) * stride
    wh = np.exp(raw[:, 2:4]) * stride
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], 1)
    return np.concatenate([boxes, raw[:, 4:]], 1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        ix = (np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])).clip(0)
        iy = (np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])).clip(0)
        inter = ix * iy
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def person_boxes(
    raw: np.ndarray, ratio: float, image_hw: tuple[int, int], *, nms_threshold=0.45, score_threshold=0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes ``(P, 4)`` in source pixels and their scores ``(P,)`` from raw YOLOX output."""
    dec = decode_yolox(np.asarray(raw, np.float32).reshape(-1, raw.shape[-1]))
    scores = dec[:, 4] * dec[:, 5]  # objectness x person (class 0)
    cand = scores > score_threshold
    boxes, scores = dec[cand, :4] / ratio, scores[cand]
    keep = nms(boxes, scores, nms_threshold)
    boxes, scores = boxes[keep], scores[keep]
    h, w = image_hw
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    good = (boxes[:, 2] > boxes[:, 0] + 1) & (boxes[:, 3] > boxes[:, 1] + 1)
    return boxes[good].astype(np.float32), scores[good].astype(np.float32)


# -------------------------------------------------------------------------------------------- pose
def pose_input(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-down crop for the pose model: ``((1, 3, 384, 288) float32, centre (2,), scale (2,))``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)
    w, h = (x1 - x0) * 1.25, (y1 - y0) * 1.25
    aspect = POSE_W / POSE_H
    w, h = (w, w / aspect) if w > h * aspect else (h * aspect, h)
    scale = np.array([w, h], np.float32)
    # Output pixel u reads source x = cx + (u - W/2) * w / W (the affine map of mmpose's top_down_affine);
    # in crop_image's convention that is the box below.
    sx, sy = w / POSE_W, h / POSE_H
    bx0, by0 = centre[0] - w / 2 + 0.5 - 0.5 * sx, centre[1] - h / 2 + 0.5 - 0.5 * sy
    crop = crop_image(image, (bx0, by0, bx0 + w, by0 + h), (POSE_H, POSE_W), antialias=False)
    x = (crop.astype(np.float32) - MEAN) / STD  # (384, 288, 3) RGB
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), centre, scale


def decode_simcc(
    simcc_x: np.ndarray, simcc_y: np.ndarray, centre: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """SimCC outputs ``(133, 576)``, ``(133, 768)`` -> keypoints ``(133, 2)`` in source pixels, scores."""
    x_loc, y_loc = simcc_x.argmax(1), simcc_y.argmax(1)
    score = np.minimum(simcc_x.max(1), simcc_y.max(1))
    locs = np.stack([x_loc, y_loc], 1).astype(np.float32) / SIMCC_SPLIT  # (133, 2) in input pixels
    pts = locs / np.array([POSE_W, POSE_H], np.float32) * scale + centre - scale / 2
    return pts, score.astype(np.float32)


def wholebody_to_canonical(points: np.ndarray, scores: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """COCO-WholeBody ``(133, 2)`` + scores ``(133,)`` -> canonical ``(137, 3)``."""
    conf = np.where(scores > threshold, np.clip(scores, 0.0, 1.0), 0.0).astype(np.float32)
    wb = np.concatenate([points, conf[:, None]], 1).astype(np.float32)
    out = kp.empty()
    for b, c in WHOLEBODY_TO_BODY25.items():
        out[b] = wb[c]
    for b, (i, j) in ((kp.NECK, (5, 6)), (kp.MID_HIP, (11, 12))):
        out[b] = (*(wb[i, :2] + wb[j, :2]) / 2, min(wb[i, 2], wb[j, 2]))
    out[25:93] = wb[WB_FACE]
    for p, eye in ((kp.R_PUPIL, slice(36, 42)), (kp.L_PUPIL, slice(42, 48))):
        pts = wb[WB_FACE][eye]
        out[25 + p] = (*pts[:, :2].mean(0), pts[:, 2].min())
    out[kp.LEFT_HAND], out[kp.RIGHT_HAND] = wb[WB_LEFT_HAND], wb[WB_RIGHT_HAND]
    out[out[:, 2] <= 0, :2] = 0.0
    return out


# ---------------------------------------------------------------------------------------- backend
def _default_models(settings=None) -> tuple[Path, Path]:
    try:
        from fewshotv2v.hub import download
    except ImportError as exc:  # pragma: no cover - hub is part of the package
        raise ConfigError("pass det_model= and pose_model= (no download support available)") from exc
    folder = Path(download("dwpose", settings=settings))
    return folder / DET_FILE, folder / POSE_FILE


class DWPoseBackend(Backend):
    """Multi-person whole-body keypoints: YOLOX-L person boxes, then DWPose on each box.

    ``det_model`` / ``pose_model``: ONNX file paths; when both are omitted the pinned ``dwpose`` registry
    entry is fetched through :func:`fewshotv2v.hub.download`. ``providers``: onnxruntime execution
    providers (default: CUDA when available, then CPU). ``threads``: onnxruntime intra-op threads (default:
    :func:`fewshotv2v.threads.detector_threads`, the detector's share of the ``threads`` setting; the
    onnxruntime default of one per core would fight the model's threads).
    """

    name = "dwpose"

    def __init__(
        self,
        *,
        det_model: str | Path | None = None,
        pose_model: str | Path | None = None,
        providers: list[str] | None = None,
        det_score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        kpt_threshold: float = 0.3,
        threads: int | None = None,
        settings=None,
    ) -> None:
        ort = require("onnxruntime", "dwpose")
        if det_model is None and pose_model is None:
            det_model, pose_model = _default_models(settings)
        elif det_model is None or pose_model is None:
            raise ConfigError("give both det_model= and pose_model= (or neither, to download them)")
        if providers is None:
            avail = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads is None:
            from fewshotv2v.threads import detector_threads

            threads = detector_threads()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1  # the graphs run sequentially: no second pool
        self._det = self._session(ort, det_model, providers, opts)
        self._pose = self._session(ort, pose_model, providers, opts)
        self.det_score_threshold, self.nms_threshold = det_score_threshold, nms_threshold
        self.kpt_threshold = kpt_threshold

    @staticmethod
    def _session(ort, path, providers, opts):
        path = Path(path)
        if not path.is_file():
            raise InputError(f"DWPose model file not found: {path}")
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0]}") from exc

    def boxes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes ``(P, 4)`` and scores ``(P,)`` for an RGB uint8 image."""
        img = check_image(image)
        x, ratio = letterbox(img)
        raw = self._det.run(None, {self._det.get_inputs()[0].name: x})[0]  # (1, 8400, 85)
        return person_boxes(
            raw[0], ratio, img.shape[:2], nms_threshold=self.nms_threshold,
            score_threshold=self.det_score_threshold,
        )  # fmt: skip

    def detect(self, image: np.ndarray) -> list[Detection]:
        """``image`` uint8 RGB ``(H, W, 3)`` -> one :class:`Detection` per person (best score first)."""
        img = check_image(image)
        boxes, scores = self.boxes(img)
        in_name = self._pose.get_inputs()[0].name
        out_names = [o.name for o in self._pose.get_outputs()]
        found = []
        for box, score in zip(boxes, scores, strict=True):
            x, centre, scale = pose_input(img, box)
            outs = dict(zip(out_names, self._pose.run(None, {in_name: x}), strict=True))
            sx, sy = outs.get("simcc_x", outs[out_names[0]]), outs.get("simcc_y", outs[out_names[1]])
            pts, kscore = decode_simcc(sx[0], sy[0], centre, scale)
            kps = wholebody_to_canonical(pts, kscore, self.kpt_threshold)
            found.append(Detection(kps, mask=None, score=float(score), bbox=box))
        return found

    def close(self) -> None:
        self._det = self._pose = None

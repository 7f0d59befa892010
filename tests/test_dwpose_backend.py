"""DWPose backend: pre/post-processing and the onnxruntime plumbing, on small stand-in ONNX models whose
constant outputs are crafted so the decoded boxes and keypoints are known (the real weights are large and
cannot be downloaded in tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fewshotv2v.errors import ConfigError, InputError
from fewshotv2v.semantics import keypoints as kp

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fewshotv2v.semantics.backends import dwpose as D  # noqa: E402
from fewshotv2v.semantics.backends import get_backend  # noqa: E402

IMG_H, IMG_W = 240, 320  # letterbox ratio r = min(640 / 240, 640 / 320) = 2
PERSON_A = (100.0, 40.0, 180.0, 220.0)  # source pixels
PERSON_B = (256.0, 80.0, 304.0, 240.0)


def _constant_model(path, in_name, in_shape, outputs: dict[str, np.ndarray]) -> None:
    """An ONNX graph mapping ``in_name`` to constant outputs (output = const + 0 * mean(input))."""
    nodes = [helper.make_node("ReduceMean", [in_name], ["m"], keepdims=0)]
    nodes.append(helper.make_node("Mul", ["m", "zero"], ["z"]))
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "z"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes, "stand_in", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)], outs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _anchor(stride: int, cx: float, cy: float) -> tuple[int, float, float]:
    """Row of the (1, 8400, 85) output for a box centre in letterboxed pixels, and its raw offsets."""
    base = {8: 0, 16: 80 * 80, 32: 80 * 80 + 40 * 40}[stride]
    n = 640 // stride
    gx, gy = int(cx // stride), int(cy // stride)
    return base + gy * n + gx, cx / stride - gx, cy / stride - gy


def detector_output() -> np.ndarray:
    raw = np.zeros((1, 8400, 85), np.float32)

    def put(stride, box_src, obj, cls_scores):
        x0, y0, x1, y1 = (v * 2 for v in box_src)  # letterbox ratio 2
        row, dx, dy = _anchor(stride, (x0 + x1) / 2, (y0 + y1) / 2)
        raw[0, row, :4] = (dx, dy, math.log((x1 - x0) / stride), math.log((y1 - y0) / stride))
        raw[0, row, 4] = obj
        for c, s in cls_scores.items():
            raw[0, row, 5 + c] = s

    put(32, PERSON_A, 0.9, {0: 0.95})  # score 0.855
    put(16, (101, 41, 181, 221), 0.8, {0: 0.9})  # near-duplicate of A, lower score: removed by NMS
    put(8, (234, 34, 266, 66), 0.9, {0: 0.1, 2: 0.9})  # a car: person score 0.09 < 0.3
    put(32, PERSON_B, 0.5, {0: 0.9})  # score 0.45
    return raw


def crop_points() -> np.ndarray:
    """Known keypoint positions in pose-model input pixels (u, v) for the 133 COCO-WholeBody points."""
    j = np.arange(133, dtype=np.float32)
    return np.stack([10 + 2 * j, 20 + 2.5 * j], 1)


def pose_outputs() -> dict[str, np.ndarray]:
    uv = crop_points()
    sx, sy = np.zeros((1, 133, 576), np.float32), np.zeros((1, 133, 768), np.float32)
    for j, (u, v) in enumerate(uv):
        sx[0, j, int(u * 2)] = 0.9
        sy[0, j, int(v * 2)] = 0.8
    sy[0, 3, int(uv[3, 1] * 2)] = 0.2  # left ear below the 0.3 keypoint threshold
    return {"simcc_x": sx, "simcc_y": sy}


@pytest.fixture
def models(tmp_path):
    det, pose = tmp_path / "yolox_l.onnx", tmp_path / "dw-ll_ucoco_384.onnx"
    _constant_model(det, "images", [1, 3, 640, 640], {"output": detector_output()})
    _constant_model(pose, "input", [1, 3, 384, 288], pose_outputs())
    return det, pose


def expected_source(box) -> np.ndarray:
    """Where the crop points land in the source image for a detector box (mmpose's top-down mapping)."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 1.25, (y1 - y0) * 1.25
    w, h = (w, w / 0.75) if w > h * 0.75 else (h * 0.75, h)
    return crop_points() / [288, 384] * [w, h] + [cx - w / 2, cy - h / 2]


def test_letterbox_layout():
    img = np.zeros((IMG_H, IMG_W, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30
    x, r = D.letterbox(img)
    assert x.shape == (1, 3, 640, 640) and x.dtype == np.float32 and r == 2.0
    assert x[0, 0, 0, 0] == 30 and x[0, 2, 0, 0] == 10  # BGR
    assert (x[0, :, 480:, :] == 114).all() and (x[0, :, :480, :] != 114).all()  # image top-left, grey pad


def test_decode_and_nms():
    boxes, scores = D.person_boxes(detector_output()[0], 2.0, (IMG_H, IMG_W))
    assert boxes.shape == (2, 4)
    np.testing.assert_allclose(boxes[0], PERSON_A, atol=1e-3)
    np.testing.assert_allclose(boxes[1], PERSON_B, atol=1e-3)
    np.testing.assert_allclose(scores, (0.855, 0.45), atol=1e-5)
    keep = D.nms(
        np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]]), np.array([0.5, 0.9, 0.1]), 0.45
    )
    assert keep.tolist() == [1, 2]


def test_pose_input_affine():
    yy, xx = np.mgrid[0:IMG_H, 0:IMG_W]
    img = np.stack([np.rint(xx * 0.75), np.rint(yy * 0.75), np.zeros_like(xx)], -1).astype(np.uint8)
    x, centre, scale = D.pose_input(img, np.array(PERSON_A))
    assert x.shape == (1, 3, 384, 288)
    np.testing.assert_allclose(centre, (140, 130))
    np.testing.assert_allclose(scale, (168.75, 225))
    rgb = x[0].transpose(1, 2, 0) * D.STD + D.MEAN  # undo the normalisation
    # Output pixel (u, v) reads source (cx + (u - 144) * s, cy + (v - 192) * s), s = 225 / 384.
    s = 225 / 384
    for u, v in ((144, 192), (20, 300)):
        sx, sy = 140 + (u - 144) * s, 130 + (v - 192) * s
        assert abs(rgb[v, u, 0] - 0.75 * sx) <= 1.0 and abs(rgb[v, u, 1] - 0.75 * sy) <= 1.0


def test_backend_on_stand_in_models(models):
    det, pose = models
    with get_backend("dwpose", det_model=det, pose_model=pose) as backend:
        found = backend.detect(np.full((IMG_H, IMG_W, 3), 128, np.uint8))
    assert len(found) == 2
    a, b = found
    assert a.score == pytest.approx(0.855, abs=1e-5) and a.mask is None
    np.testing.assert_allclose(a.bbox, PERSON_A, atol=1e-3)
    for det_, box in ((a, PERSON_A), (b, PERSON_B)):
        wb = expected_source(box)  # (133, 2)
        k = det_.keypoints
        np.testing.assert_allclose(k[kp.NOSE], (*wb[0], 0.8), atol=1e-3)
        np.testing.assert_allclose(k[kp.NECK, :2], (wb[5] + wb[6]) / 2, atol=1e-3)
        np.testing.assert_allclose(k[kp.MID_HIP, :2], (wb[11] + wb[12]) / 2, atol=1e-3)
        np.testing.assert_allclose(k[kp.R_EYE, :2], wb[2], atol=1e-3)
        np.testing.assert_allclose(k[kp.L_SHOULDER, :2], wb[5], atol=1e-3)
        np.testing.assert_allclose(k[kp.R_KNEE, :2], wb[14], atol=1e-3)
        assert (k[kp.L_EAR] == 0).all()  # score 0.2 < 0.3: missing
        np.testing.assert_allclose(k[kp.L_BIG_TOE, :2], wb[17], atol=1e-3)
        np.testing.assert_allclose(k[kp.R_HEEL, :2], wb[22], atol=1e-3)
        np.testing.assert_allclose(k[25, :2], wb[23], atol=1e-3)  # jaw start
        np.testing.assert_allclose(k[25 + 67, :2], wb[90], atol=1e-3)
        np.testing.assert_allclose(k[25 + 68, :2], wb[23 + 36 : 23 + 42].mean(0), atol=1e-3)  # right pupil
        np.testing.assert_allclose(k[kp.LEFT_HAND][0, :2], wb[91], atol=1e-3)
        np.testing.assert_allclose(k[kp.RIGHT_HAND][20, :2], wb[132], atol=1e-3)


def test_model_errors(tmp_path, models):
    det, pose = models
    with pytest.raises(ConfigError):
        get_backend("dwpose", det_model=det)
    with pytest.raises(InputError, match="not found"):
        get_backend("dwpose", det_model=tmp_path / "nope.onnx", pose_model=pose)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(InputError, match="cannot load"):
        get_backend("dwpose", det_model=bad, pose_model=pose)
    with pytest.raises(InputError):
        get_backend("dwpose", det_model=det, pose_model=pose).detect(np.zeros((4, 4), np.uint8))


def test_default_models_come_from_the_hub_folder(models, monkeypatch):
    hub = pytest.importorskip("fewshotv2v.hub")
    det, _ = models
    calls = []

    def fake_download(name, **kw):
        calls.append(name)
        return det.parent  # the folder holding yolox_l.onnx and dw-ll_ucoco_384.onnx

    monkeypatch.setattr(hub, "download", fake_download)
    backend = get_backend("dwpose")
    assert calls == ["dwpose"] and len(backend.detect(np.zeros((IMG_H, IMG_W, 3), np.uint8))) == 2


def test_sessions_use_the_detector_thread_budget(models):
    det, pose = models
    explicit = get_backend("dwpose", det_model=det, pose_model=pose, threads=3)
    for session in (explicit._det, explicit._pose):
        opts = session.get_session_options()
        assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (3, 1)
    from fewshotv2v.threads import detector_threads

    default = get_backend("dwpose", det_model=det, pose_model=pose)  # the `threads` setting's share
    assert default._pose.get_session_options().intra_op_num_threads == detector_threads()

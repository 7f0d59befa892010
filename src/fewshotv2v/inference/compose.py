"""Output frames: tensors -> uint8 images, label maps -> viewable skeletons, the side-by-side compositor.

`fsv2v synth --side-by-side` writes `driving frame | skeleton | result` per frame: the driving frame is
resized to the model height (aspect kept), the skeleton is the retargeted label map the generator saw.
"""

from __future__ import annotations

import numpy as np

from fewshotv2v.video import resize_image


def tensor_to_image(image) -> np.ndarray:
    """`(3, H, W)` or `(1, 3, H, W)` float tensor in [-1, 1] -> `uint8 (H, W, 3)`."""
    import torch

    if image.ndim == 4:
        image = image[0]
    x = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to("cpu")
    return x.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def image_to_tensor(image: np.ndarray):
    """`uint8 (H, W, 3)` -> float tensor `(3, H, W)` in [-1, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0


def label_to_image(label: np.ndarray) -> np.ndarray:
    """A label map `float32 (C, H, W)` in [0, 1] -> `uint8 (H, W, 3)` for display.

    pose: the skeleton RGB channels (the person mask channel is not shown); face: the edge map as grey;
    other channel counts: the first channel as grey.
    """
    rgb = label[:3] if label.shape[0] >= 3 else np.repeat(label[:1], 3, axis=0)
    return (np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8).transpose(1, 2, 0).copy()


def resize_to_height(image: np.ndarray, height: int) -> np.ndarray:
    """Resize keeping the aspect ratio so that the image is `height` pixels tall (width rounded to even)."""
    h, w = image.shape[:2]
    width = max(2, int(round(w * height / h / 2)) * 2)
    return resize_image(image, width, height)


def side_by_side(drive: np.ndarray, skeleton: np.ndarray, result: np.ndarray) -> np.ndarray:
    """`drive (h, w, 3)` | `skeleton (H, W, 3)` | `result (H, W, 3)` -> `uint8 (H, w' + 2W, 3)`."""
    height = result.shape[0]
    panels = [resize_to_height(drive, height), resize_image(skeleton, result.shape[1], height), result]
    return np.concatenate(panels, axis=1)

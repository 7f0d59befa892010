"""Networks of fewshotv2v: generator (E_F, E_A, E_P, label embedder, W, H), discriminators, VGG, io.

Submodules import torch; import them explicitly (`from fewshotv2v.models.generator import Generator`)
or through the lazy attributes below.
"""

from __future__ import annotations

from fewshotv2v._lazy import lazy_getattr

_LAZY = {
    "Generator": "fewshotv2v.models.generator",
    "ReferenceState": "fewshotv2v.models.generator",
    "GeneratorOutput": "fewshotv2v.models.generator",
    "save_pretrained": "fewshotv2v.models.io",
    "load_pretrained": "fewshotv2v.models.io",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)

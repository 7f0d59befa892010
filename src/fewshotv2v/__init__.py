"""fewshotv2v: few-shot video-to-video synthesis (Wang et al., NeurIPS 2019) in pure PyTorch.

Importing the package is cheap: torch and the heavy modules load on first use of an attribute.
"""

from __future__ import annotations

from fewshotv2v._lazy import lazy_getattr

__version__ = "0.1.0"

# Public names -> the module that defines them, imported lazily (PEP 562) so that
# `import fewshotv2v` and `fsv2v --help` do not pay for importing torch.
_LAZY = {
    "ModelConfig": "fewshotv2v.config",
    "Generator": "fewshotv2v.models.generator",
    "FewShotV2VError": "fewshotv2v.errors",
    "Settings": "fewshotv2v.settings",
    "Pipeline": "fewshotv2v.pipeline",
}

__all__ = ["__version__", "ModelConfig", "Generator", "FewShotV2VError", "Settings", "Pipeline"]


__getattr__ = lazy_getattr(__name__, _LAZY)

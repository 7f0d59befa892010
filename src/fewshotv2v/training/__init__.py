"""Training of few-shot vid2vid (SPEC §3-4): the loop, checkpoints, EMA, distributed helpers, run-folder logs.

Modules: `config` (TrainConfig), `trainer` (Trainer), `steps` (per-frame D / G computations), `checkpoint`
(atomic checkpoint folders, RNG state), `ema`, `distributed` (torchrun / DDP, resumable sampler), `logging`
(JSONL log, loss curves, sample grids), `run` (what `fsv2v train` calls). Attributes load lazily.
"""

from __future__ import annotations

from fewshotv2v._lazy import lazy_getattr

_LAZY = {
    "TrainConfig": "fewshotv2v.training.config",
    "Trainer": "fewshotv2v.training.trainer",
    "TrainResult": "fewshotv2v.training.trainer",
    "CheckpointManager": "fewshotv2v.training.checkpoint",
    "EMA": "fewshotv2v.training.ema",
    "plan_run": "fewshotv2v.training.run",
    "run_training": "fewshotv2v.training.run",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)

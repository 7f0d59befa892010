"""Atomic training checkpoints under `RUN/checkpoints/step-XXXXXXXX/` (keep the last N).

A checkpoint folder is written under a temporary name (`.tmp-step-...`) and renamed into place with
`os.replace`: a folder named `step-XXXXXXXX` is complete by construction, so a crash mid-write leaves only a
temporary folder that `--resume auto` ignores (and the next save removes). Contents:

```
step-00002000/
  config.json, model.safetensors      EMA generator (models.io.save_pretrained: a usable model folder)
  discriminator.safetensors           discriminators (written by save_pretrained as well)
  generator_raw.safetensors           the raw (non-EMA) generator the optimizer trains
  training_state.pt                   optimizers, grad scalers, step, epoch, RNG states, non-finite count
```

`training_state.pt` holds only plain Python types and tensors and loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewshotv2v.errors import CheckpointError

STATE_FILE = "training_state.pt"
RAW_GENERATOR_FILE = "generator_raw.safetensors"
_STEP_RE = re.compile(r"^step-(\d{8,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


class CheckpointManager:
    """Lists, writes (atomically) and prunes the checkpoints of one run folder. Only rank 0 uses it."""

    def __init__(self, run_dir: str | Path, keep_last: int = 3):
        self.root = Path(run_dir) / "checkpoints"
        self.keep_last = max(1, int(keep_last))

    def complete(self) -> list[tuple[int, Path]]:
        """(step, folder) of every complete checkpoint, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            m = _STEP_RE.match(p.name)
            if m and p.is_dir() and (p / STATE_FILE).is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1][1] if done else None

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """Call `write(tmp_folder)` to fill a temporary folder, then rename it to `step-XXXXXXXX`."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-step-*"):  # left by a crash: never complete
            shutil.rmtree(stale, ignore_errors=True)
        final = self.root / checkpoint_name(step)
        tmp = self.root / f".tmp-{final.name}-{os.getpid()}"
        tmp.mkdir()
        try:
            write(tmp)
            if final.exists():  # re-saving a step (e.g. after a resume): swap, then drop the old one
                old = self.root / f".old-{final.name}-{os.getpid()}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.prune()
        return final

    def prune(self) -> None:
        """Keep only the newest `keep_last` complete checkpoints."""
        done = self.complete()
        for _, folder in done[: max(0, len(done) - self.keep_last)]:
            shutil.rmtree(folder, ignore_errors=True)


def resolve_resume(value: str, run_dir: str | Path) -> Path | None:
    """`--resume auto` -> the newest complete checkpoint of `run_dir` (None if there is none);
    `--resume PATH` -> that checkpoint folder, or the newest checkpoint of that run folder."""
    if value == "auto":
        return CheckpointManager(run_dir).latest()
    path = Path(value).expanduser()
    if (path / STATE_FILE).is_file():
        return path
    if (path / "checkpoints").is_dir():
        latest = CheckpointManager(path).latest()
        if latest is not None:
            return latest
    raise CheckpointError(f"no complete checkpoint at {path} (expected a folder with {STATE_FILE})")


# ---- RNG state as plain types (loadable with weights_only=True) ---------------------------------------


def capture_rng_state() -> dict[str, Any]:
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [
            np_name,
            torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            np_pos,
            np_has_gauss,
            np_gauss,
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(folder: Path, state: dict[str, Any]) -> None:
    torch.save(state, folder / STATE_FILE)


def load_training_state(folder: str | Path) -> dict[str, Any]:
    """Load `training_state.pt` safely (`weights_only=True`, onto the CPU)."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"not a training checkpoint (no {STATE_FILE}): {folder}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have many types
        raise CheckpointError(f"cannot read {path}: {' '.join(str(exc).split())[:200]}") from exc

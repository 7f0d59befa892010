"""CPU thread counts: torch, onnxruntime and mediapipe together within the cores the user gave.

Why: torch's CPU kernels run on an OpenMP pool whose threads spin at each barrier. With as many threads as
cores and one core busy with something else (a neighbour's job, or our own decode / encode threads), every
parallel region waits for the thread that lost its core: 10x slower, not 10 %. So the default leaves a core
free and stays modest; `--threads N` / `FSV2V_THREADS` / `threads = N` in the TOML file give the budget.

The budget, first found wins: the `threads` setting; `OMP_NUM_THREADS` (what users of torch already set);
else automatic: `max(1, min(cores - 1, 8))` where cores are the CPUs this process may run on
(`os.sched_getaffinity`), one being left to the producer and encoder threads (`inference.overlap`).

How it is split (`plan_threads`): the model alone (demo, training, evaluation) gets the whole budget;
synthesis with a detector runs the detector (producer thread) and the model (caller's thread) at the same
time, so they share it, each at least one thread. What applies it (`apply_threads`):

- torch: `torch.set_num_threads` (intra-op) and `torch.set_num_interop_threads(1)` (nothing here runs
  independent ops in parallel; settable once per process, before any parallel work).
- onnxruntime (the DWPose backend): `SessionOptions.intra_op_num_threads` / `inter_op_num_threads = 1`,
  read from `detector_threads()` when a session is made.
- mediapipe 0.10.21: its legacy `mp.solutions` API has no thread setting (the graph and its TFLite /
  XNNPACK interpreter pick their own). Its threads block instead of spinning, so they degrade gracefully;
  the budget counts one thread for it.
- PyAV / FFmpeg decode and libx264 encode keep FFmpeg's own threading (frame threads that wait on
  condition variables, not spin); they are the cores the automatic budget leaves free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass

from fewshotv2v.errors import ConfigError

MAX_AUTO_THREADS = 8  # beyond this, per-frame kernels at batch 1 gain little and the risk grows


@dataclass(frozen=True)
class ThreadPlan:
    """Thread counts of one process."""

    cores: int  # CPUs this process may run on
    budget: int  # threads torch + detector may use together (at least one each)
    torch: int  # torch intra-op threads (the generator, training)
    detector: int  # intra-op threads of a keypoint detector (onnxruntime)
    source: str  # where the budget came from: "setting", "OMP_NUM_THREADS" or "auto"

    def describe(self) -> str:
        return (
            f"threads: torch {self.torch}, detector {self.detector} "
            f"({self.source}; {self.cores} cores available)"
        )


_APPLIED: dict[str, ThreadPlan | None] = {"plan": None}


def available_cores() -> int:
    """CPUs this process may run on (affinity / cgroup cpusets), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _env_threads(environ) -> int | None:
    value = environ.get("OMP_NUM_THREADS", "").strip()
    try:
        n = int(value)
    except ValueError:
        return None  # unset, or a list such as "4,2" (nested OpenMP): not a budget we can read
    return n if n >= 1 else None


def plan_threads(
    threads: int | None = None,
    *,
    detector: bool = False,
    cores: int | None = None,
    environ=None,
) -> ThreadPlan:
    """The thread counts for `threads` (None = automatic, see the module docstring).

    detector: a keypoint detector runs at the same time as the model (synthesis from raw video), so the
    budget is shared between them.
    """
    cores = available_cores() if cores is None else cores
    environ = os.environ if environ is None else environ
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        budget, source = threads, "setting"
    elif (env := _env_threads(environ)) is not None:
        budget, source = env, "OMP_NUM_THREADS"
    else:
        budget, source = max(1, min(cores - 1, MAX_AUTO_THREADS)), "auto"
    if detector:
        torch_n = max(1, (budget + 1) // 2)
        det_n = max(1, budget - torch_n)
    else:
        torch_n = det_n = budget  # one stage at a time: each may use the whole budget
    return ThreadPlan(cores=cores, budget=budget, torch=torch_n, detector=det_n, source=source)


def apply_threads(threads: int | None = None, *, detector: bool = False) -> ThreadPlan:
    """Plan (`plan_threads`) and apply: torch now, onnxruntime sessions made from now on."""
    import torch

    plan = plan_threads(threads, detector=detector)
    torch.set_num_threads(plan.torch)
    # Settable once per process, before any parallel work: later calls keep what is there.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    _APPLIED["plan"] = plan
    return plan


def applied_plan() -> ThreadPlan | None:
    """The plan of the last `apply_threads` call (None if there was none)."""
    return _APPLIED["plan"]


def use_detector_threads(n: int) -> None:
    """In a producer process (no torch there): the detector's share of the caller's plan."""
    base = _APPLIED["plan"] or plan_threads(detector=True)
    _APPLIED["plan"] = dataclasses.replace(base, detector=max(1, int(n)))


def detector_threads() -> int:
    """Intra-op threads for a detector session: the applied plan's, else the automatic plan's."""
    plan = _APPLIED["plan"] or plan_threads(detector=True)
    return plan.detector


__all__ = [
    "MAX_AUTO_THREADS",
    "ThreadPlan",
    "applied_plan",
    "apply_threads",
    "available_cores",
    "detector_threads",
    "plan_threads",
    "use_detector_threads",
]

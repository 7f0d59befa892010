"""Distributed data parallel helpers (`torchrun -m fewshotv2v train ...`) and the resumable step sampler.

The process group comes from the environment torchrun sets (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
`MASTER_ADDR`, `MASTER_PORT`): NCCL on CUDA, gloo on CPU. Without those variables training runs in one
process and every helper here is a no-op. Only rank 0 writes files and prints.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler, Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by the torchrun environment (if any).

    On CUDA each process uses `cuda:LOCAL_RANK`. Returns the rank layout; a single process gets the
    default `DistInfo()`.
    """
    world_size = env_world_size()
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_finite(value: torch.Tensor, info: DistInfo) -> bool:
    """True if `value` is finite on *every* rank (a rank that skips its backward alone would hang the
    others' gradient all-reduce, so the skip decision must be shared)."""
    ok = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if info.enabled:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average a dict of scalars over ranks (for the log only)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= info.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def broadcast_int(value: int, info: DistInfo, device: torch.device) -> int:
    """Rank 0's `value` on every rank."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


# ---- data order that depends only on (seed, step, rank): resumable mid-epoch ---------------------------


class StepBatchSampler(Sampler):
    """Yields, for each step `start_step .. total_steps - 1`, this rank's batch as a list of keys
    `(epoch, index, clip_len)`.

    Within an epoch the order is `torch.utils.data.DistributedSampler`'s (a permutation seeded by
    `seed + epoch` via `set_epoch`, strided over ranks), so ranks see disjoint samples. Because each batch
    is a pure function of the step, a resumed run sees exactly the batches an uninterrupted one would.
    `clip_len(step)` is carried in the key so that the dataset renders the right number of frames.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        info: DistInfo,
        seed: int,
        start_step: int,
        total_steps: int,
        clip_len: Callable[[int], int],
    ):
        self.num_items = num_items
        self.batch_size = batch_size
        self.start_step, self.total_steps = start_step, total_steps
        self.clip_len = clip_len
        self.sampler = DistributedSampler(
            range(num_items), num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed
        )
        self.steps_per_epoch = max(1, len(self.sampler) // batch_size)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        cached_epoch, order = -1, []
        for step in range(self.start_step, self.total_steps):
            epoch, j = divmod(step, self.steps_per_epoch)
            if epoch != cached_epoch:
                self.sampler.set_epoch(epoch)
                order = list(self.sampler)
                while len(order) < self.batch_size:  # fewer items than a batch: repeat them
                    order = order + order
                cached_epoch = epoch
            t = self.clip_len(step)
            yield [(epoch, i, t) for i in order[j * self.batch_size : (j + 1) * self.batch_size]]


class SeededItems(Dataset):
    """Wraps a training dataset so that loading item `(epoch, index, clip_len)` depends on nothing else,
    whichever worker process loads it: data stays reproducible across resumes, worker counts and ranks.

    `load(epoch, index, clip_len)` returns the sample dict (`TrainingDataset` draws its own randomness from
    `(seed, epoch, index)`); the global `random`, `numpy` and `torch` RNGs are also seeded from
    `(seed, epoch, index)` for the duration of the call (and restored afterwards), for any code that uses
    them.
    """

    def __init__(self, load: Callable[[int, int, int], dict[str, Any]], size: int, seed: int):
        self.load = load
        self.size = size
        self.seed = seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, Any]:
        epoch, index, clip_len = key
        item_seed = int(
            np.random.SeedSequence([self.seed, epoch, index]).generate_state(1, dtype=np.uint32)[0]
        )
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(item_seed)
            np.random.seed(item_seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(item_seed)
                return self.load(epoch, index, clip_len)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)

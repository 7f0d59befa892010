"""Two-process DistributedDataParallel training on gloo (CPU): it finishes, both ranks end with the same
weights, ranks see different data, and only rank 0 writes the run folder."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, run_dir: str, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    from fewshotv2v.config import ModelConfig
    from fewshotv2v.data.dataset import TrainingDataset
    from fewshotv2v.training import distributed
    from fewshotv2v.training.config import TrainConfig
    from fewshotv2v.training.trainer import Trainer, dataset_loader

    info = distributed.init_distributed("cpu")
    assert info.rank == rank and info.world_size == world
    mcfg = ModelConfig.preset("tiny")
    tcfg = TrainConfig(
        steps=2, batch_size=1, perceptual="none", workers=0, log_every=1, single_frame_steps=1,
        clip_len_max=2, checkpoint_every=2, sample_every=2, seed=1,
    )  # fmt: skip
    ds = TrainingDataset(data, mcfg, k_max=mcfg.k_max, seed=tcfg.seed)
    trainer = Trainer(mcfg, tcfg, dataset_loader(ds), len(ds), run_dir, device="cpu", info=info)
    trainer.fit(on_step=None)
    seen = [[key[1] for key in batch] for batch in trainer_sampler(trainer, info)]  # item indices per step
    torch.save(
        {"g": trainer.generator.state_dict(), "ema": trainer.ema.state_dict(),
         "d": trainer.discriminators.state_dict(), "seen": seen},
        os.path.join(out_dir, f"rank{rank}.pt"),
    )  # fmt: skip
    distributed.barrier(info)  # both done before the group goes (as `training.run` does)
    distributed.cleanup()


def trainer_sampler(trainer, info):
    from fewshotv2v.training.distributed import StepBatchSampler

    return StepBatchSampler(
        trainer.num_items, trainer.tcfg.batch_size, info=info, seed=trainer.tcfg.seed, start_step=0,
        total_steps=trainer.tcfg.steps, clip_len=trainer.tcfg.clip_len,
    )  # fmt: skip


def test_two_process_gloo_training(tmp_path):
    from fewshotv2v.data.synthetic import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, identities=2, frames=8, size=(64, 64), seed=0)
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(data), str(run_dir), str(out_dir)), nprocs=2, join=True)
    r0 = torch.load(out_dir / "rank0.pt", weights_only=True)
    r1 = torch.load(out_dir / "rank1.pt", weights_only=True)
    for part in ("g", "ema", "d"):
        assert r0[part].keys() == r1[part].keys()
        for key in r0[part]:
            assert torch.equal(r0[part][key], r1[part][key]), (part, key)
    # each step, the ranks train on different samples (DistributedSampler order)
    assert len(r0["seen"]) == 2
    for a, b in zip(r0["seen"], r1["seen"], strict=True):
        assert set(a).isdisjoint(b)
    # rank 0 wrote the run folder once
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-00000002"]
    assert len((run_dir / "log.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_torchrun_cli(tmp_path):
    """`python -m torch.distributed.run --nproc-per-node 2 -m fewshotv2v train ...` (the documented form)."""
    import subprocess
    import sys

    from fewshotv2v.data.synthetic import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, identities=2, frames=6, size=(64, 64), seed=0)
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "fewshotv2v", "train", "--data", str(data), "--preset", "tiny", "--run-dir", str(run_dir),
        "--steps", "2", "--batch-size", "1", "--perceptual", "none", "--workers", "0", "--device", "cpu",
        "--checkpoint-every", "2", "--log-every", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("step-00000002")  # printed once, by rank 0
    assert len((run_dir / "log.jsonl").read_text().splitlines()) == 2

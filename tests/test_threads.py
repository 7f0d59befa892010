"""CPU thread counts (`fewshotv2v.threads`): the budget, its split, and how the setting reaches torch."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fewshotv2v.cli import app
from fewshotv2v.errors import ConfigError
from fewshotv2v.threads import MAX_AUTO_THREADS, available_cores, plan_threads


@pytest.mark.parametrize(
    ("cores", "expected"), [(1, 1), (2, 1), (4, 3), (16, MAX_AUTO_THREADS), (64, MAX_AUTO_THREADS)]
)
def test_automatic_budget_leaves_a_core_and_stays_modest(cores, expected):
    plan = plan_threads(cores=cores, environ={})
    assert (plan.budget, plan.torch, plan.source) == (expected, expected, "auto")


def test_the_setting_wins_over_omp_num_threads_which_wins_over_auto():
    env = {"OMP_NUM_THREADS": "3"}
    assert plan_threads(5, cores=16, environ=env).torch == 5
    assert plan_threads(None, cores=16, environ=env).source == "OMP_NUM_THREADS"
    assert plan_threads(None, cores=16, environ=env).torch == 3
    for unreadable in ("", "4,2", "0", "many"):  # nested lists, zero, junk: ignored
        assert plan_threads(None, cores=4, environ={"OMP_NUM_THREADS": unreadable}).source == "auto"


@pytest.mark.parametrize(("budget", "torch_n", "det_n"), [(1, 1, 1), (2, 1, 1), (3, 2, 1), (8, 4, 4)])
def test_detector_and_model_share_the_budget(budget, torch_n, det_n):
    plan = plan_threads(budget, detector=True, cores=16, environ={})
    assert (plan.torch, plan.detector) == (torch_n, det_n)
    assert plan.torch + plan.detector <= max(budget, 2)  # each stage needs one thread at least


def test_invalid_thread_counts():
    with pytest.raises(ConfigError, match="at least 1"):
        plan_threads(0)
    from fewshotv2v.settings import load_settings

    with pytest.raises(ConfigError, match="threads"):
        load_settings(threads=0)


def test_available_cores_is_the_affinity_set():
    import os

    assert available_cores() == len(os.sched_getaffinity(0))


def test_setting_from_env_and_toml(tmp_path, monkeypatch):
    from fewshotv2v.settings import load_settings

    toml = tmp_path / "config.toml"
    toml.write_text("threads = 3\n", encoding="utf-8")
    assert load_settings(toml).threads == 3
    monkeypatch.setenv("FSV2V_THREADS", "2")
    assert load_settings(toml).threads == 2  # env over file
    assert load_settings(toml, threads=1).threads == 1  # CLI over env
    assert load_settings(toml, threads=None).threads == 2  # an unset flag never overrides


@pytest.mark.parametrize("command", ["demo", "synth", "train", "preprocess", "eval"])
def test_commands_have_a_threads_option(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--threads" in result.output


def test_demo_applies_the_thread_setting(tmp_path, monkeypatch, one_thread):
    import torch

    monkeypatch.setenv("FSV2V_THREADS", "2")
    out = tmp_path / "demo.mp4"
    args = ["-v", "demo", "-o", str(out), "--frames", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "threads: torch 2" in result.output and torch.get_num_threads() == 2
    result = CliRunner().invoke(app, [*args, "--overwrite", "--threads", "1"])  # the flag wins
    assert result.exit_code == 0 and "threads: torch 1" in result.output
    assert torch.get_num_threads() == 1


def test_a_producer_process_takes_the_callers_detector_share(monkeypatch):
    """A producer process has no torch to apply a plan to; it is given the detector's share of the
    caller's plan, which its detector sessions then read (`detector_threads`)."""
    from fewshotv2v import threads

    monkeypatch.setitem(threads._APPLIED, "plan", plan_threads(4, detector=True, cores=8))
    threads.use_detector_threads(3)
    plan = threads.applied_plan()
    assert threads.detector_threads() == 3 and (plan.torch, plan.budget) == (2, 4)
    threads.use_detector_threads(0)  # never below one thread
    assert threads.detector_threads() == 1

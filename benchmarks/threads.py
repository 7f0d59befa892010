"""Thread-count benchmark: `fsv2v demo` with a busy neighbour on one core, against the same without it.
Prints JSON.

A busy neighbour is a process spinning on core 0 (`while True: pass`, pinned with `sched_setaffinity`),
as another job on a shared machine would be. Each `fsv2v demo` runs in a fresh process, in three variants,
alternated so that the machine's drift hits all of them alike:

- `default`: no `OMP_NUM_THREADS`, no `FSV2V_THREADS`: what a user gets (`fewshotv2v.threads`);
- `omp1`: `OMP_NUM_THREADS=1`, the known-good reference;
- `all_cores`: `--threads <cores>`, one torch thread per core (torch's own default before the setting).

Issue 12's goals: with the neighbour, `default` within 1.3x of `omp1`, and at most 2x slower than without
it. `synth_s` is the synthesis time the demo prints; `wall_s` adds the start-up (imports, model load).

    python benchmarks/threads.py --runs 3
    python benchmarks/threads.py --runs 3 --frames 72 --conditions busy
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("default", "omp1", "all_cores")
_SYNTH_LINE = re.compile(r"(\d+) frames at [\d.]+ fps, ([\d.]+) s")


def _spin_on_core_0() -> subprocess.Popen:
    code = "import os\nos.sched_setaffinity(0, {0})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def _env(variant: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FSV2V_THREADS")}
    if variant == "omp1":
        env["OMP_NUM_THREADS"] = "1"
    return env


def run_demo(variant: str, folder: Path, frames: int, cores: int) -> dict:
    """One `fsv2v demo` in a fresh process: wall seconds and the synthesis seconds it reports."""
    cmd = [sys.executable, "-m", "fewshotv2v", "-v", "demo", "-o", str(folder / "demo.mp4")]
    cmd += ["--overwrite", "--frames", str(frames), "--device", "cpu"]
    if variant == "all_cores":
        cmd += ["--threads", str(cores)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=_env(variant), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    match = _SYNTH_LINE.search(proc.stderr)
    plan = re.search(r"threads: torch (\d+)", proc.stderr)
    return {
        "wall_s": round(wall, 2),
        "synth_s": float(match.group(2)) if match else None,
        "torch_threads": int(plan.group(1)) if plan else None,
    }


def _summary(runs: list[dict]) -> dict:
    return {
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "synth_s": round(statistics.median(r["synth_s"] for r in runs), 2),
        "torch_threads": runs[0]["torch_threads"],
        "synth_s_runs": [r["synth_s"] for r in runs],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per variant and condition")
    parser.add_argument("--frames", type=int, default=72, help="demo frames (the demo's default: 72)")
    parser.add_argument("--conditions", nargs="*", default=["idle", "busy"], choices=["idle", "busy"])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)

    from fewshotv2v.threads import available_cores

    cores = available_cores()
    report: dict = {"cores": cores, "frames": args.frames, "runs": args.runs, "conditions": {}}
    report["loadavg_1min_before"] = round(os.getloadavg()[0], 2)  # a shared machine: how busy it was
    with tempfile.TemporaryDirectory(prefix="fsv2v-threads-") as tmp:
        for condition in args.conditions:
            spinner = _spin_on_core_0() if condition == "busy" else None
            try:
                runs: dict[str, list[dict]] = {v: [] for v in args.variants}
                for i in range(args.runs):
                    order = args.variants if i % 2 == 0 else list(reversed(args.variants))
                    for variant in order:
                        runs[variant].append(run_demo(variant, Path(tmp), args.frames, cores))
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            report["conditions"][condition] = {v: _summary(r) for v, r in runs.items()}
    conditions = report["conditions"]

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> float | None:
        try:
            return round(conditions[a[0]][a[1]]["synth_s"] / conditions[b[0]][b[1]]["synth_s"], 3)
        except KeyError:
            return None

    report["ratios_synth_s"] = {
        "busy_default_over_busy_omp1": ratio(("busy", "default"), ("busy", "omp1")),  # goal <= 1.3
        "busy_default_over_idle_default": ratio(("busy", "default"), ("idle", "default")),  # goal <= 2
        "busy_all_cores_over_busy_default": ratio(("busy", "all_cores"), ("busy", "default")),
        "idle_default_over_idle_all_cores": ratio(("idle", "default"), ("idle", "all_cores")),
    }
    report["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()

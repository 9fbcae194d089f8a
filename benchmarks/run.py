"""Run every benchmark script of the project, one after another, and print one table of their
figures with the machine they ran on (the table in docs/performance.md comes from here).

Usage: python benchmarks/run.py [SCRIPT ...]   (GUI benchmarks go under xvfb-run when there is no
display). Each script prints ``measure: figure`` lines; every such line becomes a row.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "mrc_open.py",
    "simulate.py",
    "picking.py",
    "cancel.py",
    "embedding.py",
    "model.py",
    "training.py",
    "scatter.py",
    "projection.py",
    "project_embedding.py",
    "project_gui.py",
    "zarr_extraction.py",
    "template_matching.py",
    "explanations.py",
    "fine_tune.py",
)
NEEDS_DISPLAY = {"scatter.py", "cancel.py", "project_gui.py"}
NOT_FIGURES = ("machine", "torch", "model", "file")  # context lines, not measurements
TIMEOUT = 1800


def machine() -> str:
    """CPU, cores, memory and accelerator, in a line."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        import torch

        accelerator = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        accelerator = "torch not installed"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{memory:.0f} GiB, {accelerator}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def command(script: str) -> list[str]:
    run = [sys.executable, str(HERE / script)]
    if script in NEEDS_DISPLAY and not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        return ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *run]
    return run


def figures(script: str) -> tuple[list[tuple[str, str]], float]:
    """The (measure, figure) lines a script prints, and how long it took to run."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command(script), capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return [("failed", f"no result within {TIMEOUT} s")], time.perf_counter() - start
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return [("failed", f"exit code {done.returncode}: {last}")], elapsed
    rows = []
    for line in done.stdout.splitlines():
        measure, _, figure = line.partition(": ")
        if figure and not measure.startswith(NOT_FIGURES):
            rows.append((measure.strip(), figure.strip()))
    return rows, elapsed


def main(scripts: list[str]) -> int:
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d')}\n")
    print("| Benchmark | Measure | Figure |")
    print("|---|---|---|")
    failed = 0
    for script in scripts:
        rows, elapsed = figures(script)
        failed += any(measure == "failed" for measure, _ in rows)
        for measure, figure in rows:
            print(f"| `{script}` | {measure} | {figure} |", flush=True)
        print(f"| `{script}` | (script run time) | {elapsed:.0f} s |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(SCRIPTS)))

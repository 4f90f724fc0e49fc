"""The short chaos run (bench/chaos.py --duration 15): the real bot, a faulty vendor,
random SIGKILLs, then the books. Runs as its own process tree, like an operator would.
A run in which nothing happened must fail, not print OK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _chaos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chaos_short_run_loses_nothing() -> None:
    # ~25 s: 15 s of traffic and kills, 3 s to drain, then the sweep under a 5 s lease.
    proc = _chaos("--duration", "15", "--drain", "3", "--seed", "7")
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "OK: no violations" in proc.stdout, report
    assert "JOB_LEASE_SECONDS=5" in proc.stdout, report  # the shortened lease is said
    assert "SUCCEEDED" in proc.stdout, report  # the run did real work, not only failures


def test_chaos_run_with_no_traffic_fails() -> None:
    proc = _chaos("--duration", "0", "--drain", "0", "--seed", "7")
    report = proc.stdout + proc.stderr
    assert proc.returncode != 0, report
    assert "no jobs ran" in proc.stdout, report
    assert "OK: no violations" not in proc.stdout, report

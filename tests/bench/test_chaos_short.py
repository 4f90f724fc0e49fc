"""The short chaos run (bench/chaos.py --duration 20): the real bot, a faulty vendor,
random SIGKILLs, then the books. Runs as its own process tree, like an operator would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_chaos_short_run_loses_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), "--duration", "20", "--seed", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "OK: no violations" in proc.stdout, report
    assert "SUCCEEDED" in proc.stdout, report  # the run did real work, not only failures

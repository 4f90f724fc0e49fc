"""What an operator mistypes at the command line gets one sentence and an exit code,
never a traceback, and nothing is created or charged on the way."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.cli import main


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("VENDOR", "VENDOR_BASE_URL", "VENDOR_API_KEY", "VENDOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite3")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MOCK_LATENCY", "0")
    return tmp_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("user", ["bogus", ":5", "telegram:", "nosuchplatform:7", "tg:5"])
def test_user_ids_that_name_nobody_are_refused(
    capsys: pytest.CaptureFixture[str], user: str
) -> None:
    code, out, err = _run(capsys, "credits", "topup", user, "5")
    assert code == 2 and out == ""
    assert "no user id" in err and "console:local" in err and "Traceback" not in err
    # Nobody was created with a welcome grant on the way.
    code, _, err = _run(capsys, "credits", "show", f"cli:{user.replace(':', '')}")
    assert code == 1 and "don't know that user" in err


def test_amounts_are_bounded_and_deductions_checked(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "credits", "topup", "telegram:5", "1" * 23)
    assert code == 1 and "1,000,000,000,000" in err and "Traceback" not in err
    code, out, _ = _run(capsys, "credits", "topup", "telegram:5", "10")
    assert code == 0 and "New balance" in out
    code, _, err = _run(capsys, "credits", "deduct", "telegram:5", "100000")
    assert code == 1 and "Cannot deduct 100000" in err and "Traceback" not in err


def test_an_unwritable_out_folder_is_found_before_the_vendor_is_paid(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    blocker = workdir / "file-not-folder"
    blocker.write_text("x")
    code, _, err = _run(capsys, "imagine", "a fox", "--out", str(blocker / "sub"))
    assert code == 2 and "cannot write results" in err
    code, out, _ = _run(capsys, "credits", "history", "cli:operator")
    assert "charge" not in out.lower()  # nothing was held or charged

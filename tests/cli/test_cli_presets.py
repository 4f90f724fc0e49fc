"""Every preset end to end through the command-line entry point: generate and edit
against its fake vendor on a real socket, files saved, paths printed, and the
right one-line reason with a non-zero exit on failure."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bots.cli import main
from core.bootstrap import build_app
from core.ports import UserRef
from core.settings import load_settings
from tests.fakes.images import png_bytes
from tests.fakes.threaded import threaded
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_envelope import FakeEnvelopeVendor
from tests.fakes.vendor_openai import FakeOpenAIVendor
from tests.fakes.vendor_tasks import FakeTaskVendor


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env, results land here
    for name in ("VENDOR", "VENDOR_BASE_URL", "VENDOR_API_KEY", "VENDOR_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "source.png").write_bytes(png_bytes(640, 480))
    (tmp_path / "mask.png").write_bytes(png_bytes(640, 480, (0, 0, 0)))
    (tmp_path / "fast.toml").write_text(
        "poll_initial = 0.01\npoll_max = 0.05\nretry_after_cap = 0.05\n"
    )
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/db.sqlite3")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VENDOR_CONFIG", str(tmp_path / "fast.toml"))
    monkeypatch.setenv("WELCOME_CREDITS", "5000")
    return tmp_path


def _vendor(monkeypatch: pytest.MonkeyPatch, name: str, fake: Any) -> None:
    monkeypatch.setenv("VENDOR", name)
    monkeypatch.setenv("VENDOR_BASE_URL", fake.base_url)
    monkeypatch.setenv("VENDOR_API_KEY", "sk-test")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [line for line in out.splitlines() if line], err


def _assert_saved(paths: list[str], count: int) -> None:
    assert len(paths) == count
    for p in paths:
        assert Path(p).is_file() and Path(p).stat().st_size > 100


FLAVORS = ["openai", "compat-sizes", "compat-b64", "aiearth"]


@pytest.fixture(params=FLAVORS)
def openai_style(request: pytest.FixtureRequest) -> Iterator[FakeOpenAIVendor]:
    with threaded(FakeOpenAIVendor(request.param, key="sk-test")) as fake:
        yield fake


def test_openai_style_generate_and_edit(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    openai_style: FakeOpenAIVendor,
) -> None:
    _vendor(monkeypatch, openai_style.flavor, openai_style)
    aspect = "16:9" if openai_style.flavor == "compat-sizes" else "3:2"
    code, paths, err = _run(
        capsys, "imagine", "a red fox", "--aspect", aspect, "--n", "2", "--user", "telegram:42"
    )
    assert code == 0, err
    _assert_saved(paths, 2)
    generation = openai_style.requests[-1]
    assert generation.path.endswith("/images/generations")
    edit_args = ["edit", "make it night", "--image", "source.png"]
    if openai_style.flavor in ("openai", "aiearth"):
        edit_args += ["--image", "source.png", "--mask", "mask.png"]
    code, paths, err = _run(capsys, *edit_args)
    assert code == 0, err
    _assert_saved(paths, 1)
    edit = openai_style.requests[-1]
    assert edit.path.endswith("/images/edits")
    assert "sk-test" not in edit.path and "sk-test" not in (edit.query or "")
    assert len(openai_style.billed) == 2


def test_compat_sizes_refuses_what_its_matrix_lacks(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded(FakeOpenAIVendor("compat-sizes", key="sk-test")) as fake:
        _vendor(monkeypatch, "compat-sizes", fake)
        code, paths, err = _run(capsys, "imagine", "x", "--aspect", "4:3", "--resolution", "4K")
        assert code == 1 and paths == []
        assert "1:1, 16:9, 9:16" in err and len(err.strip().splitlines()) == 1
        assert fake.requests == []


def test_envelope_vendor_edits_and_reports_code_errors(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded(FakeEnvelopeVendor(key="sk-test")) as fake:
        _vendor(monkeypatch, "gptimageapi", fake)
        code, paths, err = _run(
            capsys,
            "edit",
            "studio light",
            "--image",
            "source.png",
            "--aspect",
            "4:3",
            "--quality",
            "high",
        )
        assert code == 0, err
        _assert_saved(paths, 1)
        body = fake.requests[-1].json
        assert body["size"] == "4:3" and body["image"].startswith("data:image/png;base64,")
        fake.inject(Fault("envelope_error", message="prompt rejected by policy"))
        code, paths, err = _run(capsys, "edit", "x", "--image", "source.png")
        # One fixed sentence and the vendor's code; the vendor's own words go to the log.
        assert code == 1 and "(error 1001)" in err and "not charged" in err
        assert "prompt rejected by policy" not in err
        code, paths, err = _run(capsys, "imagine", "a cat")
        assert code == 1 and "only edits" in err


def test_task_vendor_edits_from_public_urls(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with threaded(FakeTaskVendor(key="sk-test")) as fake:
        _vendor(monkeypatch, "aigptimage", fake)
        url = fake.publish(png_bytes(640, 480))
        code, paths, err = _run(
            capsys, "edit", "premium ad", "--image", url, "--aspect", "16:9", "--resolution", "2K"
        )
        assert code == 0, err
        _assert_saved(paths, 1)
        create = next(r for r in fake.requests if r.path.endswith("createTask"))
        assert create.json["input"]["image_urls"] == [url]
        assert create.json["input"]["resolution"] == "2K"
        # A local file has no public URL: refused before any call, with the reason.
        before = len(fake.requests)
        code, paths, err = _run(capsys, "edit", "x", "--image", "source.png")
        assert code == 1 and "public" in err.lower()
        assert len(fake.requests) == before
        fake.inject(Fault("task_fail", message="content flagged"))
        code, paths, err = _run(capsys, "edit", "x", "--image", url)
        assert code == 1 and "(error 500)" in err and "content flagged" not in err


def test_mock_vendor_needs_nothing(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VENDOR_CONFIG")
    monkeypatch.setenv("MOCK_LATENCY", "0")
    code, paths, err = _run(capsys, "imagine", "a lighthouse", "--n", "2")
    assert code == 0 and "mock vendor" in err
    _assert_saved(paths, 2)
    code, paths, err = _run(capsys, "edit", "add a moon", "--image", "source.png")
    assert code == 0
    _assert_saved(paths, 1)


def test_credits_commands(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELCOME_CREDITS", "0")
    code, out, _ = _run(capsys, "credits", "topup", "telegram:7", "30", "launch gift")
    assert code == 0 and "30" in out[0]
    code, out, _ = _run(capsys, "credits", "set", "telegram:7", "12")
    assert code == 0 and "12" in out[0]
    code, out, _ = _run(capsys, "credits", "history", "telegram:7")
    assert "balance 12" in out[0] and any("launch gift" in line for line in out)
    monkeypatch.setenv("MOCK_LATENCY", "0")
    monkeypatch.delenv("VENDOR_CONFIG")
    code, _, err = _run(
        capsys, "imagine", "x", "--quality", "high", "--n", "4", "--user", "telegram:7"
    )
    assert code == 1 and "16" in err and "12" in err


def test_credits_history_names_a_purchase_by_its_charge_id(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELCOME_CREDITS", "0")
    monkeypatch.setenv("CREDIT_PACKS", "100:50")
    monkeypatch.delenv("VENDOR_CONFIG")

    async def buy() -> None:
        settings = load_settings(dict(os.environ), env_file=None)
        async with build_app(settings, sweep=False) as app:
            [pack] = app.payments.packs("telegram")
            buyer = UserRef("telegram", "7")
            await app.payments.credit_stars(buyer, "stars-charge-1", pack.payload, 50, "XTR")

    asyncio.run(buy())
    code, out, _ = _run(capsys, "credits", "history", "telegram:7")
    assert code == 0 and "balance 100" in out[0]
    [line] = [line for line in out if "purchase" in line]
    assert "+100" in line and "stars-charge-1" in line


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"VENDOR": "nope"}, "VENDOR"),
        ({"VENDOR": "aiearth"}, "VENDOR_API_KEY"),
        ({"VENDOR": "compat-sizes", "VENDOR_API_KEY": "k"}, "VENDOR_BASE_URL"),
        ({"VENDOR_CONCURRENCY_MAX": "many"}, "VENDOR_CONCURRENCY_MAX"),
        ({"ADMIN_USER_IDS": "123"}, "ADMIN_USER_IDS"),
        ({"VENDOR_CONFIG": "missing.toml"}, "VENDOR_CONFIG"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ],
)
def test_bad_settings_stop_with_one_sentence(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    needle: str,
) -> None:
    monkeypatch.delenv("VENDOR_CONFIG")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = _run(capsys, "doctor")
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_format_and_background_reach_the_result(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VENDOR_CONFIG")
    monkeypatch.setenv("MOCK_LATENCY", "0")
    code, paths, _ = _run(
        capsys, "imagine", "a glass", "--format", "webp", "--background", "transparent"
    )
    assert code == 0 and paths[0].endswith(".webp")
    with threaded(FakeOpenAIVendor("aiearth", key="sk-test")) as fake:
        _vendor(monkeypatch, "aiearth", fake)
        code, paths, err = _run(
            capsys, "imagine", "a glass", "--format", "png", "--background", "transparent"
        )
        assert code == 0, err
        body = fake.requests[-1].json
        assert body["background"] == "transparent" and body["output_format"] == "png"

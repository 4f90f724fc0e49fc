"""The README's quickstart is what CI runs: keep the two in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quickstart_has_exactly_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert commands[0].endswith("imagine-bot run")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _quickstart_commands()[1] in ci


def settings_read() -> set[str]:
    """Every setting core/settings.py reads (``_env(merged, "NAME")``, ``_int(env, ...)``)."""
    source = (ROOT / "core" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r"_[a-z]+\((?:merged|env), \"([A-Z][A-Z0-9_]+)\"", source))


def test_env_example_documents_every_setting() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    # A setting counts as documented when it is assigned, or shown commented out
    # ("# DATA_DIR=data": left unset on purpose so a container's own value wins).
    documented = set(re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]+)=", example, re.M))
    read = settings_read()
    assert len(read) > 20
    assert {"VENDOR", "DATABASE_URL", "VENDOR_CONCURRENCY_MAX", "QUEUE_TIMEOUT"} <= read
    assert read <= documented, f"undocumented settings: {sorted(read - documented)}"
    assert documented <= read, f"documented but never read: {sorted(documented - read)}"


def test_repository_stands_alone() -> None:
    """Operator documents name no outside material (the steering repository, its
    numbered seed documents or issues)."""
    for name in (
        "README.md",
        ".env.example",
        "docs/vendors.md",
        "docs/operations.md",
        "docs/performance.md",
        "docs/core-api.md",
    ):
        text = (ROOT / name).read_text(encoding="utf-8")
        for pattern in (r"\bseed (?:document|0\d\d)", r"shared/", r"\bissue \d", r"\.\./shared"):
            assert not re.search(pattern, text, re.I), f"{name} mentions {pattern!r}"


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#[\w-]+)?\)", text):
        assert (ROOT / target).is_file(), f"README links to missing {target}"
    for doc in ("docs/vendors.md", "docs/performance.md", "docs/operations.md"):
        assert doc in text, f"README does not point to {doc}"

"""What users are offered with several vendors (``VENDORS``): the union of what
the configured vendors can do, through the real app against two fake vendors on
real sockets, on SQLite and PostgreSQL. A request only the second vendor can do is
accepted at intake and served there; what no vendor can do is refused with one
sentence, before anything is held."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from core.app import Imagine
from core.errors import InvalidRequest, Unsupported
from core.options import Defaults
from core.ports import ChatRef, UserRef
from tests.conftest import RecordingFrontend
from tests.core.helpers import assert_books_balance, fund
from tests.fakes.vendor_openai import FakeOpenAIVendor

ALICE = UserRef("test", "alice")
CHAT = ChatRef("test", {"chat_id": 7})

# The primary: 1K only, medium/high, up to 4 images. The backup: low/medium, up to
# 2 images, and 16:9 at 2K, which the primary lacks.
CONFIG = """
[vendors.primary]
preset = "compat-sizes"
n_max = 4
qualities = ["medium", "high"]
max_retries = 1
[vendors.primary.sizes]
"1K" = {"1:1" = "1024x1024", "16:9" = "1536x864"}

[vendors.backup]
preset = "compat-sizes"
n_max = 2
qualities = ["low", "medium"]
max_retries = 1
[vendors.backup.sizes]
"1K" = {"1:1" = "1024x1024"}
"2K" = {"16:9" = "1920x1080"}
"""


async def _served_by(app: Imagine, job_id: str) -> str | None:
    async with app.store.read() as tx:
        job = await app.store.jobs.get(tx, job_id)
    assert job is not None
    return job.vendor


@pytest.fixture
async def two(
    tmp_path: Path, make_app: Callable[..., AbstractAsyncContextManager[Imagine]]
) -> AsyncIterator[tuple[Imagine, FakeOpenAIVendor, FakeOpenAIVendor]]:
    config = tmp_path / "vendors.toml"
    config.write_text(CONFIG)
    async with (
        FakeOpenAIVendor("compat-sizes", key="sk-primary") as primary,
        FakeOpenAIVendor("compat-sizes", key="sk-backup") as backup,
        make_app(
            VENDORS="primary,backup",
            VENDOR_CONFIG=str(config),
            VENDOR_PRIMARY_BASE_URL=primary.base_url,
            VENDOR_PRIMARY_API_KEY="sk-primary",
            VENDOR_BACKUP_BASE_URL=backup.base_url,
            VENDOR_BACKUP_API_KEY="sk-backup",
        ) as app,
    ):
        app.add_frontend(RecordingFrontend())
        await fund(app, ALICE, 10_000)
        yield app, primary, backup


async def test_the_offer_is_the_union_of_the_vendors(
    two: tuple[Imagine, FakeOpenAIVendor, FakeOpenAIVendor],
) -> None:
    app, _, _ = two
    offer = app.preset
    assert offer.tiers == ("1K", "2K")
    assert offer.aspects("1K") == ("1:1", "16:9")
    assert offer.aspects("2K") == ("16:9",)
    assert offer.qualities == ("low", "medium", "high")
    assert offer.n_max == 4
    # Saved defaults are fitted to the union, not to the first vendor.
    assert Defaults(aspect="16:9", resolution="2K", quality="low").fitted(offer) == Defaults(
        aspect="16:9", resolution="2K", quality="low"
    )
    # The flags' range and its error name the union too.
    with pytest.raises(InvalidRequest) as caught:
        app.parse_prompt("a fox --n 5", Defaults())
    assert "1 to 4" in app.text.error(caught.value, "en")
    assert app.parse_prompt("a fox --n 4", Defaults()).defaults.n == 4


@pytest.mark.parametrize(
    ("flags", "vendor"),
    [
        ("--res 2K --ar 16:9", "backup"),  # a size only the backup has
        ("--q low", "backup"),  # a quality only the backup has
        ("--n 3 --q high", "primary"),  # the primary's own options
    ],
)
async def test_a_request_some_vendor_can_do_is_accepted_and_routed_there(
    two: tuple[Imagine, FakeOpenAIVendor, FakeOpenAIVendor], flags: str, vendor: str
) -> None:
    app, primary, backup = two
    parsed = app.parse_prompt(f"a red fox {flags}", Defaults())
    req = app.build_request(parsed.prompt, parsed.defaults)
    receipt = await app.run_job(ALICE, req, CHAT)
    assert await _served_by(app, receipt.job_id) == vendor
    other = primary if vendor == "backup" else backup
    assert other.requests == []
    await assert_books_balance(app)


async def test_what_no_vendor_offers_is_refused_naming_the_union(
    two: tuple[Imagine, FakeOpenAIVendor, FakeOpenAIVendor],
) -> None:
    app, primary, backup = two
    parsed = app.parse_prompt("a red fox --res 4K", Defaults())
    with pytest.raises(Unsupported) as caught:
        app.build_request(parsed.prompt, parsed.defaults)
    assert caught.value.params["kind"] == "unsupported_vendors"
    text = app.text.error(caught.value, "en")
    assert "None of the configured image services" in text and "1K, 2K" in text
    for locale in ("ja", "ru"):
        assert "1K, 2K" in app.text.error(caught.value, locale)
    assert primary.requests == [] and backup.requests == []


async def test_options_no_single_vendor_offers_together_are_refused(
    two: tuple[Imagine, FakeOpenAIVendor, FakeOpenAIVendor],
) -> None:
    app, primary, backup = two
    # Low quality is the backup's; three images only the primary takes.
    parsed = app.parse_prompt("a red fox --q low --n 3", Defaults())
    with pytest.raises(Unsupported) as caught:
        app.build_request(parsed.prompt, parsed.defaults)
    assert caught.value.params["kind"] == "vendor_combination"
    assert "no single service" in app.text.error(caught.value, "en")
    assert await app.balance(ALICE) == 10_000
    assert primary.requests == [] and backup.requests == []


async def test_one_vendor_offers_exactly_its_preset(
    make_app: Callable[..., AbstractAsyncContextManager[Imagine]],
) -> None:
    async with make_app() as app:
        assert app.preset is app.jobs.preset
        with pytest.raises(Unsupported) as caught:
            app.build_request("a fox", Defaults(quality="high", n=app.preset.n_max + 1))
        # One vendor keeps its own refusal, worded as before.
        assert "kind" not in caught.value.params

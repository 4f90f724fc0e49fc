"""The dashboard in a real headless Chromium (Debian's package), on a month of
seeded history: without the token the browser gets the login form and no figure;
after logging in the charts are drawn, the numbers are the ledger's and the job
rows', it fits a phone's width, and the screenshot shows it (set
DASHBOARD_SCREENSHOT=docs/dashboard.png to keep a copy)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bots.dashboard.svg import SUCCEEDED
from tests.dashboard.cdp import CHROMIUM, chromium
from tests.dashboard.conftest import SECRETS, TOKEN, Served
from tests.dashboard.expected import expected
from tests.dashboard.month import DAYS, VENDORS

# CI installs it (.ci/run) and must not skip silently.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Debian's chromium package"
)

CHART_SHAPES = """
[...document.querySelectorAll('svg.chart')].map(svg => ({
  label: svg.getAttribute('aria-label'),
  bars: [...svg.querySelectorAll('rect.bar')].filter(r => {
    const box = r.getBoundingClientRect(); return box.width > 0 && box.height > 0;
  }).length,
  lines: [...svg.querySelectorAll('polyline.line')].filter(
    p => p.getTotalLength() > 0).length,
}))
"""


async def test_the_page_in_a_browser(served: Served, tmp_path: Path) -> None:
    want = await expected(served.app, served.now, DAYS)
    assert want.jobs > 20 * DAYS and want.failed > 0 and want.purchases > 0

    async with chromium(tmp_path / "profile") as page:
        # No token: the login form, and not one figure, on the page and the API.
        await page.open(served.url)
        assert await page.eval("document.querySelector('input[name=token]') !== null")
        assert await page.eval("document.querySelectorAll('svg, [data-value]').length") == 0
        await page.open(served.url + "api/stats")
        assert "unauthorized" in await page.eval("document.body.innerText")
        assert "charged" not in await page.eval("document.body.innerText")

        # Log in through the form, as an operator would.
        await page.open(served.url + "login")
        await page.eval(
            f"document.querySelector('input[name=token]').value = {TOKEN!r};"
            "document.querySelector('form').submit()"
        )
        await page.wait_for("document.getElementById('charged')")
        await page.wait_for("document.readyState === 'complete'")

        shapes = {c["label"]: c for c in await page.eval(CHART_SHAPES)}
        # One bar per day and outcome that had a job: the whole month is drawn.
        assert shapes["Jobs per day by outcome"]["bars"] == want.job_bars > DAYS
        assert shapes["Credits charged vs vendor cost"]["lines"] == 2
        assert shapes["Top users by credits charged"]["bars"] == len(want.top_users) > 3
        assert shapes["Failures by class"]["bars"] == len(want.failures) > 2
        times = shapes["Job time p50 / p95 by vendor and size tier"]
        assert times["bars"] == 2 * len(want.timed) >= 2 * 3 * len(VENDORS)

        value = "Number(document.getElementById({!r}).dataset.value)"
        for key, figure in (
            ("charged", want.charged),
            ("jobs", want.jobs),
            ("vendor-cost", want.vendor_cost),
            ("margin", want.margin),
            ("purchases", want.purchases),
            ("queued", want.queued),
            ("running", want.running),
        ):
            assert await page.eval(value.format(key)) == figure, key
        text = await page.eval("document.body.innerText")
        assert all(secret not in text for secret in SECRETS)
        assert want.top_users[0][0] in text and "paused" in text

        shot = tmp_path / "dashboard.png"
        await page.screenshot(shot)

        # A phone: nothing wider than its screen.
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=390,
            height=844,
            deviceScaleFactor=2,
            mobile=True,
        )
        await page.open(served.url)
        assert await page.eval("document.documentElement.scrollWidth") <= 390

    with Image.open(io.BytesIO(shot.read_bytes())) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(1_000_000) or []
        assert len(colours) > 50, "the screenshot is blank"
        green = tuple(int(SUCCEEDED[i : i + 2], 16) for i in (1, 3, 5))
        assert any(c == green for _, c in colours), "no succeeded bar was drawn"
    if keep := os.environ.get("DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, keep)

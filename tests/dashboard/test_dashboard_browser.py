"""The dashboard in a real headless Chromium (Debian's package): without the token
the browser gets the login form and no figure; after logging in the charts are
drawn, the numbers are the seeded ledger's, it fits a phone's width, and the
screenshot shows it (set DASHBOARD_SCREENSHOT=docs/dashboard.png to keep a copy)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bots.dashboard.svg import SUCCEEDED
from tests.dashboard.cdp import CHROMIUM, chromium
from tests.dashboard.conftest import TOKEN, Served

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
    async with served.app.store.read() as tx:
        totals = await served.app.store.ledger.totals(tx)
    loss = -totals["system:vendor_loss"]
    charged = totals["system:revenue"] - loss

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
        assert shapes["Jobs per day by outcome"]["bars"] >= 2  # succeeded + failed today
        assert shapes["Credits charged vs vendor cost"]["lines"] == 2
        assert shapes["Top users by credits charged"]["bars"] == 2
        assert shapes["Failures by class"]["bars"] == 1
        assert shapes["Job time p50 / p95 by vendor and size tier"]["bars"] == 2

        value = "Number(document.getElementById({!r}).dataset.value)"
        assert await page.eval(value.format("charged")) == charged
        assert await page.eval(value.format("jobs")) == 5
        assert await page.eval(value.format("vendor-cost")) == round((charged + loss) / 1.25)
        assert await page.eval(value.format("margin")) == charged - round((charged + loss) / 1.25)
        text = await page.eval("document.body.innerText")
        assert TOKEN not in text and "test:@alice" in text

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

"""The dashboard over HTTP with a real client: nothing without the token (401), a
wrong one refused (403), Bearer and the login cookie let in, the figures are the
ledger's and the job rows' (for the window asked, not the whole month) and no
secret is on the page."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from core.errors import ConfigError
from core.redaction import secrets_from
from core.settings import Settings, load_settings
from tests.conftest import base_env
from tests.dashboard.conftest import SECRETS, TOKEN, Served
from tests.dashboard.expected import expected
from tests.dashboard.month import VENDORS


@pytest.fixture
def month_days() -> int:
    """Enough history for a 7-day window to leave some out, and quick to write."""
    return 10


ROUTES = [("GET", "/"), ("GET", "/?days=7"), ("GET", "/api/stats"), ("POST", "/logout")]


async def test_nothing_is_served_without_the_right_token(served: Served) -> None:
    async with aiohttp.ClientSession(base_url=served.url) as http:
        for method, path in ROUTES:
            async with http.request(method, path, allow_redirects=False) as r:
                body = await r.text()
                assert r.status == 401, (method, path)
                assert "charged" not in body and "alice" not in body
            for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}"):
                async with http.request(
                    method, path, headers={"Authorization": header}, allow_redirects=False
                ) as r:
                    assert r.status == 403, (method, path, header)
                    assert "alice" not in await r.text()
        async with http.get("/", cookies={"imagine_dashboard": TOKEN}) as r:
            assert r.status == 403  # the cookie holds a session value, not the token
        async with http.get("/nope") as r:
            assert r.status == 401
        async with http.post("/login", data={"token": "wrong-token-0123456789"}) as r:
            assert r.status == 403 and "Wrong token" in await r.text()
            assert "imagine_dashboard" not in r.cookies


async def test_bearer_token_reads_the_ledgers_figures(served: Served) -> None:
    async with (
        aiohttp.ClientSession(
            base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as http,
        http.get("/api/stats?days=7") as r,
    ):
        assert r.status == 200
        assert r.headers["Cache-Control"] == "no-store"
        data = await r.json()
    want = await expected(served.app, served.now, 7)
    whole = await expected(served.app, served.now, 10)
    assert 0 < want.jobs < whole.jobs  # the window leaves the older days out
    totals = data["totals"]
    assert (totals["jobs"], totals["succeeded"], totals["failed"]) == (
        want.jobs,
        want.succeeded,
        want.failed,
    )
    assert (totals["charged"], totals["loss"]) == (want.charged, want.loss)
    assert want.charged > 0 and want.loss > 0
    # 25 % markup: the vendor billed four fifths of what was charged and lost.
    assert totals["vendor_cost"] == round((want.charged + want.loss) * 100 / 125)
    assert totals["margin"] == want.margin
    assert (totals["purchases"], totals["purchased"]) == (want.purchases, want.purchased)
    assert len(data["days"]) == 7
    assert [(u["name"], u["charged"]) for u in data["top_users"]] == want.top_users
    assert {f["error"]: f["count"] for f in data["failures"]} == want.failures
    assert {(t["vendor"], t["tier"]) for t in data["times"]} == want.timed
    assert [(v["name"], v["state"]) for v in data["vendors"]] == [
        (VENDORS[0], "paused"),
        (VENDORS[1], "healthy"),
    ]
    assert data["vendors"][0]["why"] == "vendor_out_of_credits"
    assert data["vendors"][0]["probe_at"] > served.now - 300
    queue = data["queue"]
    assert sum(q["queued"] for q in queue) == want.queued > 0
    assert sum(q["running"] for q in queue) == want.running > 0


async def test_the_login_form_sets_a_strict_httponly_cookie(served: Served) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # 127.0.0.1 is an IP address
    async with aiohttp.ClientSession(base_url=served.url, cookie_jar=jar) as http:
        async with http.post("/login", data={"token": TOKEN}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert TOKEN not in cookie
        async with http.get("/") as r:
            assert r.status == 200
            page = await r.text()
        assert 'id="charged"' in page and "<svg" in page
        for secret in SECRETS:
            assert secret not in page
        async with http.post("/logout", allow_redirects=False) as r:
            assert r.status == 303
        async with http.get("/") as r:
            assert r.status == 401


def test_settings_bind_localhost_and_refuse_a_short_token(tmp_path: Path) -> None:
    def load(**env: str) -> Settings:
        return load_settings(base_env(tmp_path, **env), env_file=None)

    assert load().dashboard_listen is None
    assert load(DASHBOARD_PORT="8091").dashboard_listen == "127.0.0.1:8091"
    assert load(DASHBOARD_LISTEN="0.0.0.0:9000").dashboard_listen == "0.0.0.0:9000"
    assert load(DASHBOARD_TOKEN=TOKEN).dashboard_token == TOKEN
    with pytest.raises(ConfigError, match="DASHBOARD_TOKEN"):
        load(DASHBOARD_TOKEN="short")
    assert TOKEN in secrets_from(load(DASHBOARD_TOKEN=TOKEN))

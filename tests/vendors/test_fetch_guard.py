"""URLs others chose never reach inside: a vendor's result link or an image URL that
names (or redirects to) a private address is refused, the vendor's own host is
allowed, and a compressed body is capped by its raw size, never inflated."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from core.errors import VendorUnavailable
from core.fetch_guard import is_public
from core.vendors.http import build_download_client, download


@pytest.fixture
async def inside() -> AsyncIterator[str]:
    """A server on loopback: what an attacker would like the bot to reach."""

    async def secret(request: web.Request) -> web.Response:
        return web.Response(body=b"internal admin page")

    async def bounce(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.query["to"]))

    async def bomb(request: web.Request) -> web.Response:
        body = gzip.compress(b"\0" * 20_000_000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    app = web.Application()
    app.router.add_get("/secret", secret)
    app.router.add_get("/bounce", bounce)
    app.router.add_get("/bomb", bomb)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_what_counts_as_public() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "::1", "fc00::1"):
        assert not is_public(address), address
    assert not is_public("::ffff:127.0.0.1")
    assert is_public("93.184.216.34") and is_public("2606:4700::1111")


async def test_private_addresses_are_refused_by_name_literal_and_redirect(inside: str) -> None:
    port = inside.split(":")[1]
    async with build_download_client() as client:
        for url in (
            f"http://{inside}/secret",  # a literal loopback address
            f"http://localhost:{port}/secret",  # a name that resolves inside
        ):
            with pytest.raises(VendorUnavailable):
                await download(client, url, max_bytes=10_000)
        with pytest.raises(VendorUnavailable):
            await download(client, "file:///etc/passwd", max_bytes=10_000)
    # The vendor's own host is the operator's choice; where it redirects is not.
    async with build_download_client(allow_hosts=["127.0.0.1"]) as client:
        assert await download(client, f"http://{inside}/secret", max_bytes=10_000) == (
            b"internal admin page"
        )
        with pytest.raises(VendorUnavailable):
            await download(
                client,
                f"http://{inside}/bounce?to=http://localhost:{port}/secret",
                max_bytes=10_000,
            )


async def test_a_compressed_body_is_capped_raw(inside: str) -> None:
    async with build_download_client(allow_hosts=["127.0.0.1"]) as client:
        data = await download(client, f"http://{inside}/bomb", max_bytes=1_000_000)
        assert len(data) < 1_000_000  # the 20 MB it would inflate to never exists
        response = await client.get(f"http://{inside}/bomb")
        assert response.request.headers["Accept-Encoding"] == "identity"
        assert isinstance(response, httpx.Response)

"""Build the configured vendor adapter: the wire style picks the class, the preset
carries every difference. The HTTP clients are owned by the returned ``VendorHandle``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from core import redaction
from core.http_transport import AiohttpTransport
from core.vendors.base import ImageVendor
from core.vendors.envelope import EnvelopeVendor
from core.vendors.http import build_client, build_download_client
from core.vendors.mock import MockVendor
from core.vendors.openai_compat import OpenAICompatVendor
from core.vendors.preset import Preset
from core.vendors.pushback import PushbackTransport
from core.vendors.tasks import TaskVendor


@dataclass
class VendorHandle:
    vendor: ImageVendor
    clients: tuple[httpx.AsyncClient, ...] = ()

    async def aclose(self) -> None:
        await self.vendor.aclose()
        for client in self.clients:
            await client.aclose()


def build_vendor(
    preset: Preset,
    *,
    api_key: str,
    concurrency: int,
    mock_latency: float = 1.0,
    on_pushback: Callable[[float | None], None] | None = None,
    allow_hosts: Iterable[str] = (),
) -> VendorHandle:
    """``on_pushback`` hears each 429/409, timeout and refused connection."""
    if preset.style == "mock":
        return VendorHandle(MockVendor(preset, latency=mock_latency))
    # A vendor may echo the key in an error body that is logged.
    redaction.add_secrets(api_key)
    # One connection per allowed concurrent call, plus headroom for task polls and
    # result downloads that overlap the next call (httpx's default pool is only 100).
    connections = concurrency + 16
    transport: httpx.AsyncBaseTransport = AiohttpTransport(connections)
    if on_pushback is not None:
        transport = PushbackTransport(transport, on_pushback)
    client = build_client(preset, api_key=api_key, max_connections=connections, transport=transport)
    # Result links may point anywhere; only the vendor's own host (and hosts the
    # operator allowed) may be private.
    vendor_host = httpx.URL(preset.base_url).host if preset.base_url else ""
    downloader = build_download_client(
        max_connections=connections, allow_hosts=(vendor_host, *allow_hosts)
    )
    vendor: ImageVendor
    if preset.style == "openai":
        vendor = OpenAICompatVendor(
            preset, client=client, downloader=downloader, user_tag_secret=api_key
        )
    elif preset.style == "envelope":
        vendor = EnvelopeVendor(preset, client=client, downloader=downloader)
    else:
        vendor = TaskVendor(preset, client=client, downloader=downloader)
    return VendorHandle(vendor, (client, downloader))

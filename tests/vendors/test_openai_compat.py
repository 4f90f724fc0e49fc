"""OpenAICompatVendor against the fake OpenAI-style vendors over real sockets.

Each of the four OpenAI-style presets (openai, compat-sizes, compat-b64,
aiearth) is pointed at ``FakeOpenAIVendor`` of the same flavor;
the fake validates what it receives the way the vendor documents it, and the tests also check
the request shape, the answers (url / b64 / mixed / streamed), usage, and that every
fault ends in the right domain error without re-sending a POST that may be billed.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from core.errors import (
    CannotResume,
    TaskFailed,
    Unsupported,
    VendorBusy,
    VendorError,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.locales import LANGUAGES
from core.messages import Messages
from core.types import (
    Background,
    ImageRequest,
    OutputFormat,
    Progress,
    Quality,
    Resolution,
    SourceImage,
)
from core.vendors import http
from core.vendors.openai_compat import OpenAICompatVendor, parse_usage
from core.vendors.preset import Preset
from core.vendors.presets import AIEARTH, COMPAT_B64, COMPAT_SIZES, OPENAI
from core.vendors.sse import SSEParser, event_type, iter_events
from tests.fakes.images import mask_png, png_bytes
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_openai import FakeOpenAIVendor

KEY = "sk-test"
PRESETS: dict[str, Preset] = {
    "openai": OPENAI,
    "compat-sizes": COMPAT_SIZES,
    "compat-b64": COMPAT_B64,
    "aiearth": AIEARTH,
}
FLAVORS = tuple(PRESETS)
STREAMING = ("openai", "aiearth")


@dataclasses.dataclass
class Rig:
    fake: FakeOpenAIVendor
    vendor: OpenAICompatVendor
    preset: Preset
    client: httpx.AsyncClient
    downloader: httpx.AsyncClient
    # Authorization header of every request the fake's CDN (/files/) served.
    cdn_auth: list[str | None]

    @property
    def posts(self) -> list[Any]:
        return [r for r in self.fake.requests if r.method == "POST"]


Factory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    rigs: list[Rig] = []

    async def factory(flavor: str, **overrides: Any) -> Rig:
        fake = await FakeOpenAIVendor(flavor=flavor, key=KEY).start()
        cdn_auth: list[str | None] = []
        serve = fake._serve_file

        async def spy(request: Any) -> Any:
            cdn_auth.append(request.headers.get("Authorization"))
            return await serve(request)

        fake._serve_file = spy  # type: ignore[method-assign]
        settings: dict[str, Any] = {
            "base_url": fake.base_url,
            "retry_after_cap": 0.2,
            "request_timeout": 5.0,
            "connect_timeout": 2.0,
        }
        settings.update(overrides)
        preset = dataclasses.replace(PRESETS[flavor], **settings)
        client = http.build_client(preset, api_key=KEY)
        downloader = http.build_download_client(timeout=5, allow_hosts=["127.0.0.1"])
        vendor = OpenAICompatVendor(preset, client=client, downloader=downloader)
        rig = Rig(fake, vendor, preset, client, downloader, cdn_auth)
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        await rig.vendor.aclose()
        await rig.client.aclose()
        await rig.downloader.aclose()
        await rig.fake.stop()


def source(w: int = 64, h: int = 64, public_url: str | None = None) -> SourceImage:
    return SourceImage(png_bytes(w, h), "image/png", w, h, public_url=public_url)


def mask(w: int = 64, h: int = 64) -> SourceImage:
    return SourceImage(mask_png(w, h), "image/png", w, h)


def assert_no_leak(rig: Rig) -> None:
    for rec in rig.fake.requests:
        assert KEY not in rec.path
        assert all(KEY not in k and KEY not in v for k, v in rec.query.items())
        assert rec.headers.get("Authorization") == f"Bearer {KEY}"
    assert all(auth is None for auth in rig.cdn_auth)


# --- happy paths: generate ------------------------------------------------------------------


async def test_seed_002_generate_sends_size_from_matrix_and_downloads_url(make: Factory) -> None:
    rig = await make("compat-sizes")
    req = ImageRequest(
        prompt="a blue glass sphere",
        aspect="16:9",
        resolution=Resolution.R2K,
        quality=Quality.LOW,
        n=2,
        output_format=OutputFormat.WEBP,
        user_tag="u-42",
    )
    result = await rig.vendor.run(req)

    (rec,) = rig.posts
    assert rec.path == "/v1/images/generations"
    body = rec.json
    assert body["size"] == "1920x1080"
    assert "aspect_ratio" not in body
    assert body["model"] == "gpt-image-2"
    assert body["quality"] == "low"
    assert body["n"] == 2
    assert body["response_format"] == "url"
    assert body["output_format"] == "webp"
    assert body["user"].startswith("u-") and "42" not in body["user"]
    assert "stream" not in body
    assert [(i.format, i.width, i.height) for i in result.images] == [("webp", 1920, 1080)] * 2
    # Both results came from the CDN route, without the key.
    assert len(rig.cdn_auth) == 2
    assert_no_leak(rig)


async def test_seed_002_b64_answer(make: Factory) -> None:
    rig = await make("compat-sizes", response_format="b64_json")
    result = await rig.vendor.run(ImageRequest(prompt="p", aspect="4:3"))
    assert rig.posts[0].json["response_format"] == "b64_json"
    assert [(i.width, i.height) for i in result.images] == [(1024, 768)]
    assert rig.cdn_auth == []


async def test_seed_003_generate_b64_with_usage(make: Factory) -> None:
    rig = await make("compat-b64")
    result = await rig.vendor.run(
        ImageRequest(
            prompt="a mug", aspect="3:2", quality=Quality.HIGH, background=Background.OPAQUE
        )
    )
    body = rig.posts[0].json
    assert body["size"] == "1536x1024"
    assert body["background"] == "opaque"
    assert "response_format" not in body
    assert [(i.format, i.width, i.height) for i in result.images] == [("png", 1536, 1024)]
    assert result.usage is not None
    assert result.usage.output_tokens == 6240
    assert result.usage.input_text_tokens >= 1
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    assert_no_leak(rig)


async def test_seed_003_url_answer(make: Factory) -> None:
    rig = await make("compat-b64", response_format="url")
    result = await rig.vendor.run(ImageRequest(prompt="p"))
    assert rig.posts[0].json["response_format"] == "url"
    assert len(result.images) == 1
    assert len(rig.cdn_auth) == 1
    assert_no_leak(rig)


@pytest.mark.parametrize("flavor", ["compat-b64", "compat-sizes"])
async def test_url_not_available_falls_back_once_to_b64(make: Factory, flavor: str) -> None:
    rig = await make(flavor, response_format="url")
    rig.fake.inject(Fault("url_not_available"))
    result = await rig.vendor.run(ImageRequest(prompt="p"))
    assert len(result.images) == 1
    first, second = rig.posts
    assert first.json["response_format"] == "url"
    assert "response_format" not in second.json
    assert len(rig.fake.billed) == 1


async def test_url_storage_never_configured_falls_back_each_call(make: Factory) -> None:
    rig = await make("compat-b64", response_format="url")
    rig.fake.url_available = False
    rig.fake.answer_with = "url"  # the retry without response_format answers b64 anyway
    result = await rig.vendor.run(ImageRequest(prompt="p"))
    assert len(result.images) == 1
    assert len(rig.posts) == 2


async def test_aiearth_url_and_b64_answers_alternate(make: Factory) -> None:
    rig = await make("aiearth")
    assert rig.fake.base_url.endswith("/v1")
    rig.fake.revised_prompt = "an otter, improved"
    first = await rig.vendor.run(ImageRequest(prompt="otter", aspect="2:3"))
    second = await rig.vendor.run(ImageRequest(prompt="otter", aspect="2:3"))
    assert [r.path for r in rig.posts] == ["/v1/images/generations"] * 2
    for result in (first, second):
        assert [(i.width, i.height) for i in result.images] == [(1024, 1536)]
        assert result.revised_prompt == "an otter, improved"
        assert result.usage is not None and result.usage.output_tokens > 0
    assert len(rig.cdn_auth) == 1  # one answer was a url, the other b64
    assert_no_leak(rig)


async def test_openai_generate_strict_keys(make: Factory) -> None:
    rig = await make("openai")
    result = await rig.vendor.run(ImageRequest(prompt="p", aspect="1:1", n=3))
    body = rig.posts[0].json
    assert rig.posts[0].path == "/v1/images/generations"
    assert "response_format" not in body
    assert body["size"] == "1024x1024"
    assert len(result.images) == 3
    assert_no_leak(rig)


async def test_mixed_url_and_b64_in_one_answer() -> None:
    png = png_bytes(32, 32)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "cdn.example":
            return httpx.Response(200, stream=httpx.ByteStream(png))  # streamed, as on a wire
        return httpx.Response(
            200,
            json={
                "data": [
                    {"url": "https://cdn.example/a.png", "revised_prompt": "rp"},
                    {"b64_json": base64.b64encode(png).decode()},
                ],
                "usage": {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 2}},
            },
            headers={"x-request-id": "req_123"},
        )

    preset = dataclasses.replace(AIEARTH, stream=False)
    client = http.build_client(preset, api_key=KEY)
    client._transport = httpx.MockTransport(handler)
    downloader = http.build_download_client(allow_hosts=["127.0.0.1"])
    downloader._transport = httpx.MockTransport(handler)
    try:
        vendor = OpenAICompatVendor(preset, client=client, downloader=downloader)
        result = await vendor.run(ImageRequest(prompt="p", n=2))
    finally:
        await client.aclose()
        await downloader.aclose()
    assert len(result.images) == 2
    assert result.revised_prompt == "rp"
    assert result.vendor_ref == "req_123"
    assert result.usage is not None and result.usage.cached_text_tokens == 2
    cdn = [r for r in seen if r.url.host == "cdn.example"]
    assert len(cdn) == 1 and "authorization" not in cdn[0].headers
    assert str(seen[0].url) == "https://api.aiearth.dev/v1/images/generations"


# --- happy paths: edit --------------------------------------------------------------------------


async def test_seed_002_edit_json_image_public_url(make: Factory) -> None:
    rig = await make("compat-sizes")
    url = rig.fake.publish(png_bytes(64, 64), "png")
    result = await rig.vendor.run(
        ImageRequest(prompt="studio background", sources=(source(public_url=url),))
    )
    (rec,) = rig.posts
    assert rec.path == "/v1/images/edits"
    assert rec.json["image"] == url
    assert "images" not in rec.json
    assert rec.json["size"] == "1024x1024"
    assert len(result.images) == 1


async def test_seed_002_edit_json_image_data_url(make: Factory) -> None:
    rig = await make("compat-sizes")
    await rig.vendor.run(ImageRequest(prompt="x", sources=(source(),)))
    assert rig.posts[0].json["image"].startswith("data:image/png;base64,")


async def test_seed_002_refuses_two_sources_before_sending(make: Factory) -> None:
    rig = await make("compat-sizes")
    with pytest.raises(Unsupported):
        await rig.vendor.run(ImageRequest(prompt="x", sources=(source(), source())))
    assert rig.fake.requests == []


async def test_seed_003_edit_json_images(make: Factory) -> None:
    rig = await make("compat-b64")
    url = rig.fake.publish(png_bytes(80, 60), "png")
    result = await rig.vendor.run(
        ImageRequest(prompt="换种风格", sources=(source(public_url=url), source(40, 40)))
    )
    (rec,) = rig.posts
    images = rec.json["images"]
    assert images[0] == {"image_url": url}
    assert images[1]["image_url"].startswith("data:image/png;base64,")
    assert "image" not in rec.json
    assert rec.files == []
    assert len(result.images) == 1


@pytest.mark.parametrize("flavor", ["aiearth", "openai"])
async def test_multipart_edit_image_array_and_mask(make: Factory, flavor: str) -> None:
    rig = await make(flavor, stream=False)
    req = ImageRequest(
        prompt="gift basket",
        sources=(source(), source(48, 48), source(32, 64)),
        mask=mask(),
        quality=Quality.HIGH,
        n=2,
        user_tag="u1",
    )
    result = await rig.vendor.run(req)
    (rec,) = rig.posts
    assert rec.path == "/v1/images/edits"
    assert [f[0] for f in rec.files] == ["image[]", "image[]", "image[]", "mask"]
    assert rec.files[0][3] == png_bytes(64, 64)
    assert all(f[2] == "image/png" for f in rec.files)
    assert rec.form is not None
    assert rec.form["model"] == "gpt-image-2"
    assert rec.form["prompt"] == "gift basket"
    assert rec.form["quality"] == "high"
    assert rec.form["n"] == "2"
    assert rec.form["user"].startswith("u-") and rec.form["user"] != "u1"
    assert "stream" not in rec.form
    assert len(result.images) == 2
    assert_no_leak(rig)


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", STREAMING)
@pytest.mark.parametrize("event_lines", [True, False])
async def test_stream_partials_in_order_then_final(
    make: Factory, flavor: str, event_lines: bool
) -> None:
    rig = await make(flavor)
    rig.fake.sse_event_lines = event_lines
    rig.fake.sse_done = not event_lines
    progress: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        progress.append(p)

    result = await rig.vendor.run(ImageRequest(prompt="p", aspect="3:2"), on_progress=on_progress)
    body = rig.posts[0].json
    assert body["stream"] is True
    assert body["partial_images"] == rig.preset.partial_images == 2
    partials = [p.partial for p in progress if p.stage == "partial"]
    assert [p.index for p in partials if p is not None] == [0, 1]
    assert progress[0].stage == "submitted"
    assert [(i.width, i.height) for i in result.images] == [(1536, 1024)]
    assert result.usage is not None and result.usage.output_tokens > 0


@pytest.mark.parametrize("flavor", ["aiearth", "compat-sizes"])
async def test_a_failing_progress_callback_loses_nothing(make: Factory, flavor: str) -> None:
    """Progress is advisory: a chat edit that fails must not lose billed images."""
    rig = await make(flavor)
    calls: list[str] = []

    async def on_progress(p: Progress) -> None:
        calls.append(p.stage)
        raise RuntimeError("chat edit rate limited")

    result = await rig.vendor.run(ImageRequest(prompt="p", n=2), on_progress=on_progress)
    assert len(result.images) == 2
    assert calls[0] == "submitted"
    if rig.preset.stream:
        assert "partial" in calls


async def test_stream_edit_multipart(make: Factory) -> None:
    rig = await make("aiearth")
    progress: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        progress.append(p)

    result = await rig.vendor.run(
        ImageRequest(prompt="p", sources=(source(),), n=2), on_progress=on_progress
    )
    rec = rig.posts[0]
    assert rec.form is not None and rec.form["stream"] == "true"
    assert rec.form["partial_images"] == "2"
    assert len([p for p in progress if p.stage == "partial"]) == 4
    assert len(result.images) == 2


async def test_no_stream_without_progress_callback(make: Factory) -> None:
    rig = await make("aiearth")
    await rig.vendor.run(ImageRequest(prompt="p"))
    assert "stream" not in rig.posts[0].json


async def test_stream_fault_before_events(make: Factory) -> None:
    rig = await make("aiearth")

    async def on_progress(p: Progress) -> None:
        pass

    rig.fake.inject(Fault("500"))
    with pytest.raises(VendorUnavailable) as err:
        await rig.vendor.run(ImageRequest(prompt="p"), on_progress=on_progress)
    assert err.value.maybe_billed
    assert len(rig.posts) == 1


async def test_stream_bad_final_image(make: Factory) -> None:
    rig = await make("openai")

    async def on_progress(p: Progress) -> None:
        pass

    rig.fake.inject(Fault("bad_result_url"))
    with pytest.raises(VendorUnavailable):
        await rig.vendor.run(ImageRequest(prompt="p"), on_progress=on_progress)


def _sse_vendor(body: bytes) -> tuple[OpenAICompatVendor, list[httpx.AsyncClient]]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = http.build_client(AIEARTH, api_key=KEY)
    client._transport = httpx.MockTransport(handler)
    downloader = http.build_download_client(allow_hosts=["127.0.0.1"])
    return OpenAICompatVendor(AIEARTH, client=client, downloader=downloader), [client, downloader]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"type": "error", "error": {"code": "moderation_blocked", "message": "no"}},
            VendorRejected,
        ),
        ({"type": "error", "error": {"code": "server_error", "message": "x"}}, VendorUnavailable),
        (
            {"type": "error", "error": {"type": "invalid_request_error", "message": "x"}},
            VendorRejected,
        ),
        ({"type": "error", "error": {"code": "rate_limit_exceeded"}}, VendorBusy),
        ({"type": "image_generation.failed", "error": {"message": "x"}}, VendorUnavailable),
        ({"type": "image_generation.partial_image", "b64_json": "@@@"}, VendorUnavailable),
    ],
)
async def test_stream_error_events(event: dict[str, Any], expected: type[Exception]) -> None:
    vendor, clients = _sse_vendor(f"data: {json.dumps(event)}\n\n".encode())

    async def on_progress(p: Progress) -> None:
        pass

    try:
        with pytest.raises(expected):
            await vendor.run(ImageRequest(prompt="p"), on_progress=on_progress)
    finally:
        for c in clients:
            await c.aclose()


async def test_stream_truncated_event_is_unavailable() -> None:
    vendor, clients = _sse_vendor(b'event: image_generation.completed\ndata: {"type": "image_gen')

    async def on_progress(p: Progress) -> None:
        pass

    try:
        with pytest.raises(VendorUnavailable) as err:
            await vendor.run(ImageRequest(prompt="p"), on_progress=on_progress)
        assert err.value.maybe_billed
    finally:
        for c in clients:
            await c.aclose()


# --- refused before any request -------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "request_"),
    [
        ("compat-sizes", ImageRequest(prompt="p", aspect="3:2")),
        ("compat-sizes", ImageRequest(prompt="p", aspect="4:3", resolution=Resolution.R4K)),
        ("compat-sizes", ImageRequest(prompt="p", n=9)),
        ("openai", ImageRequest(prompt="p", resolution=Resolution.R2K)),
        ("compat-b64", ImageRequest(prompt="p", aspect="16:9")),
        ("compat-b64", ImageRequest(prompt="p", output_format=OutputFormat.WEBP)),
        ("compat-b64", ImageRequest(prompt="p", sources=(source(),), mask=mask())),
        ("aiearth", ImageRequest(prompt="p", sources=(source(),) * 17)),
    ],
)
async def test_unsupported_refused_before_any_request(
    make: Factory, flavor: str, request_: ImageRequest
) -> None:
    rig = await make(flavor)
    with pytest.raises(Unsupported):
        await rig.vendor.run(request_)
    assert rig.fake.requests == []


async def test_resume_cannot(make: Factory) -> None:
    rig = await make("openai")
    with pytest.raises(CannotResume):
        await rig.vendor.resume("req_1", ImageRequest(prompt="p"))


# --- every fault mapped ---------------------------------------------------------------------


FAULTS: list[tuple[str, Fault, type[VendorError], int]] = [
    # (id, fault, expected error, POSTs the fake must have seen)
    ("402", Fault("402"), VendorOutOfCredits, 1),
    ("401", Fault("401"), VendorMisconfigured, 1),
    ("403", Fault("403"), VendorMisconfigured, 1),
    ("404", Fault("404"), VendorMisconfigured, 1),
    ("400", Fault("400", message="prompt is too short"), VendorRejected, 1),
    ("422", Fault("422"), VendorRejected, 1),
    ("moderation", Fault("moderation"), VendorRejected, 1),
    ("500", Fault("500"), VendorUnavailable, 1),
    ("503", Fault("503", retry_after=0), VendorUnavailable, 1),
    ("http502", Fault("http", status=502), VendorUnavailable, 1),
    ("malformed-html", Fault("malformed"), VendorUnavailable, 1),
    ("malformed-shape", Fault("malformed", variant="shape"), VendorUnavailable, 1),
    ("malformed-empty", Fault("malformed", variant="empty"), VendorUnavailable, 1),
    ("truncated", Fault("truncated"), VendorUnavailable, 1),
    ("disconnect", Fault("disconnect"), VendorUnavailable, 1),
    ("billed_then_500", Fault("billed_then_500"), VendorUnavailable, 1),
    ("bad_result_404", Fault("bad_result_url", variant="404"), VendorUnavailable, 1),
    ("bad_result_bytes", Fault("bad_result_url", variant="bytes"), VendorUnavailable, 1),
]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(
    ("fault", "expected", "posts"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
async def test_fault_mapping(
    make: Factory, flavor: str, fault: Fault, expected: type[VendorError], posts: int
) -> None:
    rig = await make(flavor)
    rig.fake.inject(dataclasses.replace(fault))
    with pytest.raises(expected) as err:
        await rig.vendor.run(ImageRequest(prompt="a cat"))
    assert len(rig.posts) == posts  # a POST that may be billed is never sent twice
    exc = err.value
    if isinstance(exc, VendorRejected):
        assert exc.reason
        assert "{" not in exc.reason and "error" not in exc.reason.lower()
        assert len(exc.reason) <= 200
    if isinstance(exc, VendorUnavailable):
        # Everything after the POST went out may have been billed.
        assert exc.maybe_billed
    if fault.kind == "moderation":
        assert "content policy" in exc.reason  # type: ignore[attr-defined]
    if fault.kind == "400":
        assert exc.reason == "prompt is too short"  # type: ignore[attr-defined]
    if fault.kind == "billed_then_500":
        assert len(rig.fake.billed) == 1


@pytest.mark.parametrize("kind", ["429", "409"])
async def test_busy_retried_then_succeeds_honouring_retry_after(make: Factory, kind: str) -> None:
    rig = await make("compat-b64", max_retries=3)
    rig.fake.inject(Fault(kind, retry_after=0.1, times=2))
    started = time.monotonic()
    result = await rig.vendor.run(ImageRequest(prompt="p"))
    elapsed = time.monotonic() - started
    assert len(result.images) == 1
    assert len(rig.posts) == 3
    assert 0.2 <= elapsed < 2.0
    gaps = [b.time - a.time for a, b in zip(rig.posts, rig.posts[1:], strict=False)]
    assert all(g >= 0.09 for g in gaps)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("kind", ["429", "409"])
async def test_busy_gives_up_after_max_retries(make: Factory, flavor: str, kind: str) -> None:
    # The fake's default Retry-After for 429 is 1 s: the cap (0.2 s) bounds each wait.
    rig = await make(flavor, max_retries=2, retry_after_cap=0.1)
    rig.fake.inject(Fault(kind, times=10, retry_after=30))
    started = time.monotonic()
    with pytest.raises(VendorBusy):
        await rig.vendor.run(ImageRequest(prompt="p"))
    assert len(rig.posts) == 3
    assert time.monotonic() - started < 1.5
    assert rig.fake.billed == []


async def test_hang_times_out_without_retry(make: Factory) -> None:
    rig = await make("compat-sizes", request_timeout=0.4)
    rig.fake.inject(Fault("hang"))
    started = time.monotonic()
    with pytest.raises(VendorUnavailable) as err:
        await rig.vendor.run(ImageRequest(prompt="p"))
    assert time.monotonic() - started < 3
    assert err.value.maybe_billed
    assert len(rig.posts) == 1


async def test_slow_within_timeout_succeeds(make: Factory) -> None:
    rig = await make("compat-b64", request_timeout=2.0)
    rig.fake.inject(Fault("slow", delay=0.3))
    result = await rig.vendor.run(ImageRequest(prompt="p"))
    assert len(result.images) == 1


async def test_wrong_key_is_misconfigured(make: Factory) -> None:
    rig = await make("aiearth")
    rig.fake.key = "sk-other"
    with pytest.raises(VendorMisconfigured):
        await rig.vendor.run(ImageRequest(prompt="p"))


async def test_wrong_base_path_is_misconfigured(make: Factory) -> None:
    rig = await make("compat-b64")
    vendor = OpenAICompatVendor(
        dataclasses.replace(rig.preset, base_url=rig.fake.base_url + "/api"),
        client=http.build_client(
            dataclasses.replace(rig.preset, base_url=rig.fake.base_url + "/api"), api_key=KEY
        ),
        downloader=rig.downloader,
    )
    try:
        with pytest.raises(VendorMisconfigured):
            await vendor.run(ImageRequest(prompt="p"))
    finally:
        await vendor._client.aclose()


async def test_connect_refused_is_retried_then_unavailable_not_billed() -> None:
    preset = dataclasses.replace(
        COMPAT_B64, base_url="http://127.0.0.1:9", max_retries=2, retry_after_cap=0.05
    )
    client = http.build_client(preset, api_key=KEY)
    downloader = http.build_download_client(allow_hosts=["127.0.0.1"])
    try:
        vendor = OpenAICompatVendor(preset, client=client, downloader=downloader)
        with pytest.raises(VendorUnavailable) as err:
            await vendor.run(ImageRequest(prompt="p"))
        assert not err.value.maybe_billed
    finally:
        await client.aclose()
        await downloader.aclose()


async def test_vendor_rejection_of_bad_input_is_plain(make: Factory) -> None:
    rig = await make("compat-sizes")
    # The vendor cannot fetch the source URL: its refusal reaches the user in plain words.
    bad = source(public_url="https://example.invalid/nothing.png")
    with pytest.raises(VendorRejected) as err:
        await rig.vendor.run(ImageRequest(prompt="p", sources=(bad,)))
    assert "{" not in err.value.reason


# --- http helpers -----------------------------------------------------------------------------


async def test_download_guards(make: Factory) -> None:
    rig = await make("compat-sizes")
    url = rig.fake.publish(png_bytes(64, 64), "png")
    data = await http.download(rig.downloader, url, max_bytes=1_000_000)
    assert data == png_bytes(64, 64)
    with pytest.raises(VendorUnavailable):
        await http.download(rig.downloader, url, max_bytes=10)
    for bad in ("file:///etc/passwd", "ftp://x/y", "javascript:alert(1)", "not a url"):
        with pytest.raises(VendorUnavailable):
            await http.download(rig.downloader, bad, max_bytes=1000)
    with pytest.raises(VendorUnavailable) as err:
        await http.download(rig.downloader, rig.fake.root_url + "/files/missing.png", max_bytes=10)
    assert err.value.maybe_billed
    assert all(a is None for a in rig.cdn_auth)


def test_build_client_settings() -> None:
    preset = dataclasses.replace(OPENAI, connect_timeout=3, request_timeout=77)
    client = http.build_client(preset, api_key="sk-secret")
    assert client.headers["Authorization"] == "Bearer sk-secret"
    assert "sk-secret" not in str(client.base_url)
    assert client.timeout.connect == 3 and client.timeout.read == 77
    assert client.timeout.write == 60 and client.timeout.pool == 77
    assert client.follow_redirects is False
    downloader = http.build_download_client(allow_hosts=["127.0.0.1"])
    assert "Authorization" not in downloader.headers


def test_parse_retry_after() -> None:
    assert http.parse_retry_after("2") == 2
    assert http.parse_retry_after("0.5") == 0.5
    assert http.parse_retry_after(None) is None
    assert http.parse_retry_after("soon") is None
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    delay = http.parse_retry_after(future)
    assert delay is not None and 25 < delay <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert http.parse_retry_after(past) == 0


def _response(status: int, body: Any, method: str = "POST") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(
        status, content=content, request=httpx.Request(method, "https://v.example/v1/x")
    )


@pytest.mark.parametrize(
    ("status", "body", "on_create", "expected"),
    [
        (400, {"error": {"message": "bad size"}}, True, VendorRejected),
        (422, {"message": "validation failed"}, True, VendorRejected),
        (400, {"msg": "nope"}, True, VendorRejected),
        (
            400,
            {"error": {"code": "content_policy_violation", "message": "x"}},
            True,
            VendorRejected,
        ),
        (401, {"error": {"message": "bad key"}}, True, VendorMisconfigured),
        (403, {}, True, VendorMisconfigured),
        (301, b"", True, VendorMisconfigured),
        (404, {}, True, VendorMisconfigured),
        (404, {}, False, VendorUnavailable),
        (402, {}, True, VendorOutOfCredits),
        (409, {}, True, VendorBusy),
        (429, {}, True, VendorBusy),
        (500, b"<html>oops</html>", True, VendorUnavailable),
        (418, {"error": {"message": "teapot"}}, True, VendorRejected),
    ],
)
def test_error_for_table(
    status: int, body: Any, on_create: bool, expected: type[VendorError]
) -> None:
    err = http.error_for(_response(status, body), on_create=on_create)
    assert type(err) is expected
    assert err.params.get("status") == status


def test_error_for_reason_is_plain_and_detail_truncated() -> None:
    raw = {"error": {"message": "x" * 5000, "code": "invalid_value"}}
    err = http.error_for(_response(400, raw), on_create=True)
    assert isinstance(err, VendorRejected)
    assert len(err.reason) <= 200
    assert len(err.detail) < 700
    assert err.params["vendor_code"] == "invalid_value"
    html = http.error_for(_response(400, b"<html><body>Bad</body></html>"), on_create=True)
    assert isinstance(html, VendorRejected) and "<" not in html.reason
    jsonish = http.error_for(_response(422, {"error": {"message": '{"a": 1}'}}), on_create=True)
    assert isinstance(jsonish, VendorRejected) and "{" not in jsonish.reason
    mod = http.error_for(
        _response(400, {"error": {"code": "moderation_blocked", "message": "raw text"}}),
        on_create=True,
    )
    assert isinstance(mod, VendorRejected) and "raw text" not in mod.reason
    get500 = http.error_for(_response(500, {}, method="GET"), on_create=False)
    assert isinstance(get500, VendorUnavailable) and not get500.maybe_billed


async def test_idempotent_get_retries_5xx() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503)
        return httpx.Response(200, json={"ok": True})

    preset = dataclasses.replace(COMPAT_B64, base_url="https://v.example", retry_after_cap=0.01)
    client = http.build_client(preset, api_key=KEY)
    client._transport = httpx.MockTransport(handler)
    try:
        resp = await http.send(client, preset, "GET", "x", idempotent=True, on_create=False)
        assert resp.json() == {"ok": True}
        calls.clear()
        with pytest.raises(VendorUnavailable) as err:
            await http.send(client, preset, "POST", "x")
        assert err.value.maybe_billed and len(calls) == 1
    finally:
        await client.aclose()


def test_data_url() -> None:
    img = source(8, 8)
    assert http.data_url(img) == "data:image/png;base64," + base64.b64encode(img.data).decode()


def test_redacting_filter(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redact")
    flt = http.RedactingFilter()
    logger.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger="test.redact"):
            logger.info("auth %s", "Authorization: Bearer sk-abcdef123456")
            logger.info("key sk-live_ABCDEF0123456789 used")
            logger.info("GET https://api.telegram.org/bot123456:AAH-secret_token/getMe")
    finally:
        logger.removeFilter(flt)
    text = caplog.text
    assert "abcdef123456" not in text
    assert "ABCDEF0123456789" not in text
    assert "AAH-secret_token" not in text
    assert "[REDACTED]" in text
    http.quiet_http_loggers()
    assert logging.getLogger("httpx").level == logging.WARNING


# --- sse / usage ------------------------------------------------------------------------------


def test_sse_parser_rules() -> None:
    parser = SSEParser()
    events = []
    lines = [
        ": keep-alive",
        "event: image_generation.partial_image",
        'data: {"type": "image_generation.partial_image",',
        'data: "partial_image_index": 1}',
        "",
        "",
        "id: 7",
        "retry: 100",
        "data:no-space",
        "",
        "event: orphan",
        "",
        'data: {"type": "x.completed"}',
    ]
    for line in lines:
        ev = parser.feed(line)
        if ev is not None:
            events.append(ev)
    last = parser.flush()
    assert last is not None
    events.append(last)
    assert len(events) == 3
    first = events[0]
    assert event_type(first, first.json()) == "image_generation.partial_image"
    assert first.json() == {"type": "image_generation.partial_image", "partial_image_index": 1}
    assert events[1].data == "no-space" and events[1].id == "7" and events[1].retry == 100
    assert events[2].event is None  # the orphan event's type does not leak forward
    assert event_type(events[2], events[2].json()) == "x.completed"


async def test_iter_events_skips_done() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["data: {}", "", "data: [DONE]", ""]:
            await asyncio.sleep(0)
            yield line

    events = [e async for e in iter_events(lines())]
    assert [e.data for e in events] == ["{}"]


def test_parse_usage() -> None:
    usage = parse_usage(
        {
            "input_tokens": 50,
            "output_tokens": 40,
            "total_tokens": 90,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 40, "cached_tokens": 4},
        }
    )
    assert usage is not None
    assert (usage.input_text_tokens, usage.input_image_tokens, usage.cached_text_tokens) == (
        10,
        40,
        4,
    )
    assert parse_usage(None) is None
    assert parse_usage({"input_tokens": "x"}) is not None


# --- what a user is shown of a vendor's refusal ------------------------------------------------


@pytest.mark.parametrize("flavor", ["compat-b64", "aiearth"])
async def test_a_vendor_400_echoing_a_key_never_reaches_the_chat(
    make: Factory, flavor: str
) -> None:
    secret = "ak-live-Q3x9Zt7Lw2Vb8Nm4Rp6S"  # not an sk- key: the generic patterns miss it
    rig = await make(flavor, stream=False)
    rig.fake.inject(Fault("400", message=f"Incorrect API key provided: {secret}. See docs."))
    with pytest.raises(VendorRejected) as err:
        await rig.vendor.run(ImageRequest(prompt="a cat"))
    text = Messages()
    for locale in LANGUAGES:
        sentence = text.error(err.value, locale)
        assert secret not in sentence and "Incorrect" not in sentence
        assert "invalid_request" in sentence
    moderation = VendorRejected("blocked")
    moderation.params["moderation"] = True
    assert "content policy" in text.error(moderation, "en")


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"vendor_code": "invalid_value", "status": 400}, "invalid_value"),
        ({"status": 422}, "422"),
        ({"vendor_code": "<b>x</b>](http://e)", "status": 400}, None),
        ({"vendor_code": "x" * 65}, None),
        ({}, None),
    ],
)
def test_only_a_short_plain_vendor_code_is_shown(
    params: dict[str, object], shown: str | None
) -> None:
    err = VendorRejected("Your key sk-proj-abc and prompt 'secret plans' were refused")
    err.params.update(params)
    sentence = Messages().error(err, "en")
    assert "secret plans" not in sentence and "sk-proj" not in sentence
    if shown is None:
        assert sentence == Messages().t("vendor_rejected", "en")
    else:
        assert shown in sentence
    failed = TaskFailed("nsfw: leaked-token-123", fail_code="501")
    assert "leaked" not in Messages().error(failed, "zh") and "501" in Messages().error(failed)


# --- the user's platform id stays with us ------------------------------------------------------


async def test_the_vendor_gets_a_keyed_hash_not_the_platform_user_id(make: Factory) -> None:
    raw_id = "987654321"
    rig = await make("compat-b64")
    for key in (f"telegram:{raw_id}", f"telegram:{raw_id}", "discord:123123123"):
        await rig.vendor.run(ImageRequest(prompt="a cat", user_tag=key))
    multipart = await make("aiearth", stream=False)
    await multipart.vendor.run(
        ImageRequest(prompt="x", sources=(source(),), user_tag=f"telegram:{raw_id}")
    )
    tags = [r.json["user"] for r in rig.posts] + [multipart.posts[0].form["user"]]
    for rec in rig.posts + multipart.posts:
        assert raw_id.encode() not in rec.body and b"telegram" not in rec.body
    assert all(t.startswith("u-") and len(t) == 34 for t in tags)
    assert tags[0] == tags[1] != tags[2]  # stable per user, distinct between users
    # Keyed: the same user under another install's key is not linkable.
    other = OpenAICompatVendor(
        rig.preset, client=rig.client, downloader=rig.downloader, user_tag_secret="other-key"
    )
    await other.run(ImageRequest(prompt="a cat", user_tag=f"telegram:{raw_id}"))
    assert rig.posts[-1].json["user"] not in tags

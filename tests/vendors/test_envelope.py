"""EnvelopeVendor (gptimageapi) against the real fake envelope vendor over a socket."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from core.errors import (
    CannotResume,
    Unsupported,
    VendorBusy,
    VendorError,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.types import ImageRequest, Progress, Quality, SourceImage
from core.vendors import http
from core.vendors.envelope import EnvelopeVendor, envelope_error
from core.vendors.presets import GPTIMAGEAPI
from core.vendors.shared import plain_reason
from tests.fakes.images import png_bytes
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_envelope import FakeEnvelopeVendor

KEY = "sk-test"
EDIT = "/v1/images/edit"

MakeVendor = Callable[..., EnvelopeVendor]


@pytest.fixture
async def fake() -> AsyncIterator[FakeEnvelopeVendor]:
    server = FakeEnvelopeVendor(key=KEY)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def make_vendor(fake: FakeEnvelopeVendor) -> AsyncIterator[MakeVendor]:
    made: list[EnvelopeVendor] = []
    clients: list[httpx.AsyncClient] = []

    def make(*, key: str = KEY, **overrides: Any) -> EnvelopeVendor:
        settings: dict[str, Any] = {
            "base_url": fake.base_url,
            "poll_initial": 0.01,
            "poll_max": 0.05,
            "retry_after_cap": 0.2,
            "request_timeout": 5.0,
            "connect_timeout": 2.0,
        }
        settings.update(overrides)
        preset = dataclasses.replace(GPTIMAGEAPI, **settings)
        client = http.build_client(preset, api_key=key)
        downloader = http.build_download_client(timeout=5, allow_hosts=["127.0.0.1"])
        clients.extend((client, downloader))
        vendor = EnvelopeVendor(preset, client=client, downloader=downloader)
        made.append(vendor)
        return vendor

    yield make
    for vendor in made:
        await vendor.aclose()
    for client in clients:
        await client.aclose()


@pytest.fixture
def vendor(make_vendor: MakeVendor) -> EnvelopeVendor:
    return make_vendor()


def source(fake: FakeEnvelopeVendor, *, public: bool = True) -> SourceImage:
    data = png_bytes(64, 48)
    url = fake.publish(data, "png") if public else None
    return SourceImage(data=data, mime="image/png", width=64, height=48, public_url=url)


def edit_request(fake: FakeEnvelopeVendor, **kwargs: Any) -> ImageRequest:
    kwargs.setdefault("sources", (source(fake),))
    kwargs.setdefault("aspect", "4:3")
    return ImageRequest(prompt="make it a studio shot", **kwargs)


def edit_calls(fake: FakeEnvelopeVendor) -> list[Any]:
    return [r for r in fake.requests if r.path == EDIT]


# --- happy paths -------------------------------------------------------------------


async def test_edit_happy_path_sends_the_seed_shape(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    src = source(fake)
    progress: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        progress.append(p)

    request = ImageRequest(
        prompt="make it a studio shot",
        aspect="16:9",
        quality=Quality.HIGH,
        n=2,
        sources=(src,),
    )
    result = await vendor.run(request, on_progress=on_progress)

    assert len(result.images) == 2
    assert all(
        img.format == "png" and (img.width, img.height) == (1536, 864) for img in result.images
    )
    calls = edit_calls(fake)
    assert len(calls) == 1
    call = calls[0]
    assert call.method == "POST"
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.json == {
        "prompt": "make it a studio shot",
        "image": src.public_url,
        "model": "gpt-image-2",
        "size": "16:9",
        "quality": "high",
        "n": 2,
    }
    assert len(fake.billed) == 1 and fake.billed[0].images == 2
    assert fake.credits_spent == 24
    assert [p.stage for p in progress] == ["submitted", "downloading"]


async def test_source_without_public_url_goes_inline_as_data_url(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    src = source(fake, public=False)
    result = await vendor.run(edit_request(fake, sources=(src,), aspect="1:1"))
    assert len(result.images) == 1
    image = edit_calls(fake)[0].json["image"]
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == src.data


async def test_telegram_file_url_is_never_sent(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    data = png_bytes(64, 48)
    src = SourceImage(
        data=data,
        mime="image/png",
        width=64,
        height=48,
        public_url="https://api.telegram.org/file/bot123456:SECRET/photos/file_1.png",
    )
    await vendor.run(edit_request(fake, sources=(src,)))
    call = edit_calls(fake)[0]
    assert call.json["image"].startswith("data:image/png;base64,")
    assert b"SECRET" not in call.body and b"telegram" not in call.body
    assert fake.private_url_hits == []


async def test_unsupported_requests_are_refused_before_any_call(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    with pytest.raises(Unsupported):  # generation: gptimageapi only edits
        await vendor.run(ImageRequest(prompt="a cat", aspect="1:1"))
    with pytest.raises(Unsupported):  # 3:2 is not in the ratio list
        await vendor.run(edit_request(fake, aspect="3:2"))
    with pytest.raises(Unsupported):  # one source image only
        await vendor.run(edit_request(fake, sources=(source(fake), source(fake))))
    assert edit_calls(fake) == []


async def test_resume_is_impossible(fake: FakeEnvelopeVendor, vendor: EnvelopeVendor) -> None:
    with pytest.raises(CannotResume):
        await vendor.resume("edit_123", edit_request(fake))


# --- code != 0 under HTTP 200 --------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("积分不足,请充值", VendorOutOfCredits),
        ("Insufficient balance", VendorOutOfCredits),
        ("invalid api key", VendorMisconfigured),
        ("鉴权失败", VendorMisconfigured),
        ("rate limit exceeded", VendorBusy),
        ("系统繁忙,请稍后再试", VendorBusy),
        ("prompt violates the content policy", VendorRejected),
    ],
)
async def test_envelope_code_is_a_failure_even_under_200(
    fake: FakeEnvelopeVendor,
    vendor: EnvelopeVendor,
    message: str,
    expected: type[VendorError],
) -> None:
    fake.inject(Fault("envelope_error", status=1001, message=message))
    with pytest.raises(expected) as info:
        await vendor.run(edit_request(fake))
    assert not info.value.maybe_billed
    assert len(edit_calls(fake)) == 1  # an envelope failure is never retried
    assert fake.billed == []


async def test_envelope_rejection_carries_a_short_plain_reason(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    fake.inject(Fault("envelope_error", status=1001, message="  <b>bad\nimage</b>  " + "x" * 500))
    with pytest.raises(VendorRejected) as info:
        await vendor.run(edit_request(fake))
    reason = info.value.reason
    assert reason.startswith("bad image")
    assert "<" not in reason and "\n" not in reason
    assert len(reason) <= 200


async def test_vendor_parameter_failure_is_rejected_with_its_message(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    fake.max_n = 1  # the fake now refuses n=2 with code 1001 under HTTP 200
    with pytest.raises(VendorRejected) as info:
        await vendor.run(edit_request(fake, n=2))
    assert "n must be an integer" in info.value.reason


def test_envelope_error_mapping_by_code_and_wording() -> None:
    assert isinstance(envelope_error(402, "whatever"), VendorOutOfCredits)
    assert isinstance(envelope_error(401, "whatever"), VendorMisconfigured)
    assert isinstance(envelope_error(429, "whatever"), VendorBusy)
    rejected = envelope_error(1001, None)
    assert isinstance(rejected, VendorRejected) and rejected.reason
    assert plain_reason("key sk-abcdef123456 bad") == "key sk-[REDACTED] bad"


# --- HTTP faults -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected", "billed"),
    [
        ("402", VendorOutOfCredits, False),
        ("401", VendorMisconfigured, False),
        ("403", VendorMisconfigured, False),
        ("404", VendorMisconfigured, False),
        ("400", VendorRejected, False),
        ("422", VendorRejected, False),
        ("500", VendorUnavailable, True),
        ("503", VendorUnavailable, True),
    ],
)
async def test_http_status_faults_are_mapped_and_not_retried(
    fake: FakeEnvelopeVendor,
    vendor: EnvelopeVendor,
    kind: str,
    expected: type[VendorError],
    billed: bool,
) -> None:
    fake.inject(Fault(kind, times=5))
    with pytest.raises(expected) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed is billed
    assert len(edit_calls(fake)) == 1


async def test_generic_http_fault_is_unavailable(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    fake.inject(Fault("http", status=502))
    with pytest.raises(VendorUnavailable):
        await vendor.run(edit_request(fake))


async def test_rejection_reason_is_the_vendors_message(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    fake.inject(Fault("422", message="image too small"))
    with pytest.raises(VendorRejected) as info:
        await vendor.run(edit_request(fake))
    assert info.value.reason == "image too small"


async def test_wrong_key_is_misconfigured(
    fake: FakeEnvelopeVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(key="sk-wrong")
    with pytest.raises(VendorMisconfigured) as info:
        await vendor.run(edit_request(fake))
    assert info.value.code == "vendor_misconfigured"  # the health check alerts the admins
    assert "sk-wrong" not in str(info.value)


@pytest.mark.parametrize("kind", ["409", "429"])
async def test_busy_is_retried_then_succeeds(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor, kind: str
) -> None:
    fake.inject(Fault(kind, retry_after=0.05, times=2))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1
    assert len(edit_calls(fake)) == 3
    assert len(fake.billed) == 1


async def test_busy_gives_up_within_the_bound(
    fake: FakeEnvelopeVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(max_retries=2)
    fake.inject(Fault("429", retry_after=30, times=10))  # Retry-After is capped at 0.2 s
    with pytest.raises(VendorBusy) as info:
        await vendor.run(edit_request(fake))
    assert not info.value.maybe_billed
    assert len(edit_calls(fake)) == 3


async def test_hang_times_out_as_maybe_billed(
    fake: FakeEnvelopeVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(request_timeout=0.3)
    fake.inject(Fault("hang"))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed  # the POST reached the vendor: never retried
    assert len(edit_calls(fake)) == 1


async def test_slow_answer_within_the_timeout_succeeds(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    fake.inject(Fault("slow", delay=0.2))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1


async def test_disconnect_after_sending_is_maybe_billed(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor
) -> None:
    fake.inject(Fault("disconnect"))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(edit_calls(fake)) == 1


# --- malformed answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("malformed", variant="html"),
        Fault("malformed", variant="shape"),
        Fault("malformed", variant="empty"),
        Fault("truncated"),
    ],
    ids=["html", "shape", "empty", "truncated"],
)
async def test_malformed_body_is_unavailable_and_maybe_billed(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor, fault: Fault
) -> None:
    fake.inject(fault)
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(edit_calls(fake)) == 1


@pytest.mark.parametrize("variant", ["404", "bytes"])
async def test_bad_result_url_is_unavailable_and_maybe_billed(
    fake: FakeEnvelopeVendor, vendor: EnvelopeVendor, variant: str
) -> None:
    fake.inject(Fault("bad_result_url", variant=variant))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(fake.billed) == 1  # the vendor charged for an image we could not use


async def test_result_larger_than_the_cap_is_refused(
    fake: FakeEnvelopeVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor()
    async with (
        http.build_client(vendor.preset, api_key=KEY) as client,
        http.build_download_client(timeout=5, allow_hosts=["127.0.0.1"]) as downloader,
    ):
        small = EnvelopeVendor(
            vendor.preset, client=client, downloader=downloader, max_download_bytes=10
        )
        with pytest.raises(VendorUnavailable) as info:
            await small.run(edit_request(fake))
        assert info.value.maybe_billed

"""TaskVendor (aigptimage) against the real fake task vendor over a socket."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from core.errors import (
    TaskFailed,
    TaskTimedOut,
    Unsupported,
    VendorBusy,
    VendorError,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.types import (
    ImageRequest,
    OutputFormat,
    Progress,
    Quality,
    Resolution,
    SourceImage,
)
from core.vendors import http
from core.vendors.presets import AIGPTIMAGE
from core.vendors.tasks import TaskVendor
from tests.fakes.images import png_bytes
from tests.fakes.vendor_base import Fault
from tests.fakes.vendor_tasks import FakeTaskVendor

KEY = "sk-test"
CREATE = "/api/v1/jobs/createTask"
POLL = "/api/v1/jobs/recordInfo"
TELEGRAM_URL = "https://api.telegram.org/file/bot123456:SECRET/photos/file_7.jpg"

MakeVendor = Callable[..., TaskVendor]


class FakeClock:
    """A monotonic clock that only moves when the vendor sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Crash(Exception):
    """Stands in for the process dying right after the task id was stored."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeTaskVendor]:
    server = FakeTaskVendor(key=KEY)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def make_vendor(fake: FakeTaskVendor) -> AsyncIterator[MakeVendor]:
    made: list[TaskVendor] = []
    clients: list[httpx.AsyncClient] = []

    def make(*, key: str = KEY, clock: FakeClock | None = None, **overrides: Any) -> TaskVendor:
        settings: dict[str, Any] = {
            "base_url": fake.base_url,
            "poll_initial": 0.01,
            "poll_max": 0.05,
            "task_deadline": 5.0,
            "retry_after_cap": 0.2,
            "request_timeout": 5.0,
            "connect_timeout": 2.0,
        }
        settings.update(overrides)
        preset = dataclasses.replace(AIGPTIMAGE, **settings)
        extra: dict[str, Any] = {}
        if clock is not None:
            extra = {"sleep": clock.sleep, "clock": clock}
        client = http.build_client(preset, api_key=key)
        downloader = http.build_download_client(timeout=5, allow_hosts=["127.0.0.1"])
        clients.extend((client, downloader))
        vendor = TaskVendor(preset, client=client, downloader=downloader, **extra)
        made.append(vendor)
        return vendor

    yield make
    for vendor in made:
        await vendor.aclose()
    for client in clients:
        await client.aclose()


@pytest.fixture
def vendor(make_vendor: MakeVendor) -> TaskVendor:
    return make_vendor()


def source(fake: FakeTaskVendor, url: str | None = "publish") -> SourceImage:
    data = png_bytes(64, 48)
    if url == "publish":
        url = fake.publish(data, "png")
    return SourceImage(data=data, mime="image/png", width=64, height=48, public_url=url)


def edit_request(fake: FakeTaskVendor, **kwargs: Any) -> ImageRequest:
    kwargs.setdefault("sources", (source(fake),))
    kwargs.setdefault("aspect", "16:9")
    return ImageRequest(prompt="premium studio advertisement", **kwargs)


def calls(fake: FakeTaskVendor, path: str) -> list[Any]:
    return [r for r in fake.requests if r.path == path]


async def create_task(fake: FakeTaskVendor, vendor: TaskVendor) -> str:
    """Submit a task and 'crash' right after its id was stored."""
    ids: list[str] = []

    async def on_submitted(task_id: str) -> None:
        ids.append(task_id)
        raise Crash

    with pytest.raises(Crash):
        await vendor.run(edit_request(fake), on_submitted=on_submitted)
    return ids[0]


# --- the happy path --------------------------------------------------------------------


async def test_submit_then_poll_to_success(fake: FakeTaskVendor, vendor: TaskVendor) -> None:
    fake.task_polls_to_finish = 3
    src_a, src_b = source(fake), source(fake)
    submitted: list[tuple[str, int]] = []
    progress: list[Progress] = []

    async def on_submitted(task_id: str) -> None:
        submitted.append((task_id, len(calls(fake, POLL))))

    async def on_progress(p: Progress) -> None:
        progress.append(p)

    request = ImageRequest(
        prompt="premium studio advertisement",
        aspect="16:9",
        resolution=Resolution.R2K,
        quality=Quality.HIGH,
        output_format=OutputFormat.WEBP,
        sources=(src_a, src_b),
    )
    result = await vendor.run(request, on_progress=on_progress, on_submitted=on_submitted)

    # on_submitted ran once, with the vendor's id, before the first poll.
    assert len(submitted) == 1
    task_id, polls_before = submitted[0]
    assert polls_before == 0
    assert task_id in fake.tasks
    assert result.vendor_ref == task_id

    create = calls(fake, CREATE)
    assert len(create) == 1
    assert create[0].headers["Authorization"] == f"Bearer {KEY}"
    assert create[0].json == {
        "model": "gpt-image-2-image-to-image",
        "input": {
            "prompt": "premium studio advertisement",
            "image_urls": [src_a.public_url, src_b.public_url],
            "aspect_ratio": "16:9",
            "resolution": "2K",
            "quality": "high",
            "output_format": "webp",
        },
    }
    polls = calls(fake, POLL)
    assert len(polls) == 3
    assert all(p.query == {"taskId": task_id} and p.method == "GET" for p in polls)

    assert len(result.images) == 1
    image = result.images[0]
    assert image.format == "webp" and (image.width, image.height) == (2048, 1152)
    assert len(fake.billed) == 1 and fake.billed[0].resolution == "2K"

    polling = [p for p in progress if p.stage == "polling"]
    assert len(polling) == 3
    assert all(p.vendor_ref == task_id for p in polling)
    assert progress[-1].stage == "downloading"


async def test_default_request_omits_output_format(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    result = await vendor.run(edit_request(fake, aspect="auto"))
    body = calls(fake, CREATE)[0].json
    assert "output_format" not in body["input"]
    assert body["input"]["aspect_ratio"] == "auto"
    assert body["input"]["resolution"] == "1K"
    assert result.images[0].format == "png"


async def test_polling_backs_off_exponentially_to_the_cap(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    clock = FakeClock()
    vendor = make_vendor(clock=clock, poll_initial=0.01, poll_max=0.05)
    fake.task_polls_to_finish = 6
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1
    assert clock.sleeps == [0.01, 0.02, 0.04, 0.05, 0.05, 0.05]


async def test_a_progress_callback_that_fails_does_not_lose_the_job(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    async def on_progress(p: Progress) -> None:
        raise RuntimeError("chat edit rate limited")

    result = await vendor.run(edit_request(fake), on_progress=on_progress)
    assert len(result.images) == 1


async def test_resume_polls_an_existing_task(
    fake: FakeTaskVendor, vendor: TaskVendor, make_vendor: MakeVendor
) -> None:
    fake.task_polls_to_finish = 2
    task_id = await create_task(fake, vendor)
    assert calls(fake, POLL) == []

    restarted = make_vendor()  # a fresh process after the crash
    progress: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        progress.append(p)

    result = await restarted.resume(task_id, edit_request(fake), on_progress=on_progress)
    assert result.vendor_ref == task_id
    assert len(result.images) == 1
    assert len(calls(fake, CREATE)) == 1  # nothing submitted again
    assert len(calls(fake, POLL)) == 2
    assert [p.vendor_ref for p in progress if p.stage == "polling"] == [task_id, task_id]
    assert len(fake.billed) == 1


async def test_resume_of_a_finished_task_needs_one_poll(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    fake.task_polls_to_finish = 1
    result = await vendor.run(edit_request(fake))
    task_id = result.vendor_ref
    assert task_id is not None
    before = len(calls(fake, POLL))
    again = await vendor.resume(task_id, edit_request(fake))
    assert len(again.images) == 1
    assert len(calls(fake, POLL)) == before + 1


# --- task outcomes -----------------------------------------------------------------------


async def test_failed_task_raises_task_failed_with_fail_msg(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    fake.inject(Fault("task_fail", status=501, message="image generation failed: nsfw content"))
    with pytest.raises(TaskFailed) as info:
        await vendor.run(edit_request(fake))
    assert info.value.reason == "image generation failed: nsfw content"
    assert info.value.fail_code == "501"
    assert not info.value.maybe_billed
    assert fake.billed == []


async def test_late_task_still_succeeds(fake: FakeTaskVendor, vendor: TaskVendor) -> None:
    fake.inject(Fault("task_late", polls=3))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1
    assert len(calls(fake, POLL)) == 2 + 3


async def test_deadline_raises_task_timed_out(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    clock = FakeClock()
    vendor = make_vendor(clock=clock, task_deadline=0.5)
    fake.task_polls_to_finish = 10**6
    progress: list[Progress] = []

    async def on_progress(p: Progress) -> None:
        progress.append(p)

    with pytest.raises(TaskTimedOut) as info:
        await vendor.run(edit_request(fake), on_progress=on_progress)
    assert info.value.maybe_billed
    assert clock.now - 1000.0 == pytest.approx(0.5)
    assert sum(clock.sleeps) == pytest.approx(0.5)  # the last sleep is cut to the deadline
    polls = calls(fake, POLL)
    assert 5 <= len(polls) <= 15
    assert len([p for p in progress if p.stage == "polling"]) == len(polls)


async def test_deadline_in_real_time(fake: FakeTaskVendor, make_vendor: MakeVendor) -> None:
    vendor = make_vendor(task_deadline=0.3)
    fake.task_polls_to_finish = None
    fake.task_seconds = 60.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TaskTimedOut):
        await vendor.run(edit_request(fake))
    assert loop.time() - started < 2.0


# --- refusals before any request -------------------------------------------------------


async def test_telegram_file_url_is_refused_before_any_request(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    for url in (TELEGRAM_URL, "https://proxy.example/file/bot123:SECRET/x.png"):
        request = edit_request(fake, sources=(source(fake), source(fake, url)))
        with pytest.raises(Unsupported) as info:
            await vendor.run(request)
        assert info.value.params["option"] == "public_url"
        assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value.params)
    assert fake.requests == []
    assert fake.private_url_hits == []


async def test_missing_public_url_is_refused(fake: FakeTaskVendor, vendor: TaskVendor) -> None:
    with pytest.raises(Unsupported) as info:
        await vendor.run(edit_request(fake, sources=(source(fake, None),)))
    assert info.value.reason == "this vendor needs public image URLs"
    assert info.value.params["option"] == "public_url"
    assert fake.requests == []


async def test_generation_and_bad_options_are_refused(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    with pytest.raises(Unsupported):
        await vendor.run(ImageRequest(prompt="a cat"))
    with pytest.raises(Unsupported):
        await vendor.run(edit_request(fake, aspect="2:1"))
    with pytest.raises(Unsupported):
        await vendor.run(edit_request(fake, n=2))
    assert fake.requests == []


# --- create faults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("402", VendorOutOfCredits),
        ("401", VendorMisconfigured),
        ("404", VendorMisconfigured),
        ("400", VendorRejected),
        ("422", VendorRejected),
        ("500", VendorUnavailable),
    ],
)
async def test_create_http_faults_are_mapped(
    fake: FakeTaskVendor, vendor: TaskVendor, kind: str, expected: type[VendorError]
) -> None:
    submitted: list[str] = []

    async def on_submitted(task_id: str) -> None:
        submitted.append(task_id)

    fake.inject(Fault(kind, path="createTask", times=5))
    with pytest.raises(expected):
        await vendor.run(edit_request(fake), on_submitted=on_submitted)
    assert len(calls(fake, CREATE)) == 1  # none of these is retried
    assert calls(fake, POLL) == []
    assert submitted == []


@pytest.mark.parametrize("kind", ["409", "429"])
async def test_create_busy_is_retried(fake: FakeTaskVendor, vendor: TaskVendor, kind: str) -> None:
    fake.inject(Fault(kind, path="createTask", retry_after=0.05, times=2))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1
    assert len(calls(fake, CREATE)) == 3
    assert len(fake.tasks) == 1


async def test_create_busy_gives_up_within_the_bound(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(max_retries=2)
    fake.inject(Fault("409", path="createTask", retry_after=30, times=10))
    with pytest.raises(VendorBusy) as info:
        await vendor.run(edit_request(fake))
    assert not info.value.maybe_billed
    assert len(calls(fake, CREATE)) == 3


async def test_real_too_many_active_tasks_is_busy(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(max_retries=1)
    fake.max_active_tasks = 0
    with pytest.raises(VendorBusy):
        await vendor.run(edit_request(fake))
    assert len(calls(fake, CREATE)) == 2


async def test_wrong_key_is_misconfigured(fake: FakeTaskVendor, make_vendor: MakeVendor) -> None:
    vendor = make_vendor(key="sk-wrong")
    with pytest.raises(VendorMisconfigured) as info:
        await vendor.run(edit_request(fake))
    assert info.value.code == "vendor_misconfigured"  # the health check alerts the admins


async def test_vendor_validation_reason_reaches_the_user(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    fake.inject(Fault("422", path="createTask", message="input.prompt is not allowed"))
    with pytest.raises(VendorRejected) as info:
        await vendor.run(edit_request(fake))
    assert info.value.reason == "input.prompt is not allowed"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (402, VendorOutOfCredits),
        (401, VendorMisconfigured),
        (422, VendorRejected),
        (1001, VendorRejected),
        (500, VendorUnavailable),
    ],
)
async def test_create_body_code_is_mapped_like_a_status(
    fake: FakeTaskVendor, vendor: TaskVendor, code: int, expected: type[VendorError]
) -> None:
    fake.inject(Fault("envelope_error", status=code, path="createTask", message="nope"))
    with pytest.raises(expected):
        await vendor.run(edit_request(fake))
    assert len(calls(fake, CREATE)) == 1
    assert calls(fake, POLL) == []


async def test_create_body_busy_code_is_retried(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    clock = FakeClock()
    vendor = make_vendor(clock=clock)
    fake.inject(Fault("envelope_error", status=409, path="createTask", times=2))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1
    assert len(calls(fake, CREATE)) == 3


@pytest.mark.parametrize(
    "fault",
    [
        Fault("malformed", variant="html", path="createTask"),
        Fault("malformed", variant="shape", path="createTask"),
        Fault("truncated", path="createTask"),
    ],
    ids=["html", "shape", "truncated"],
)
async def test_malformed_create_answer_is_unavailable(
    fake: FakeTaskVendor, vendor: TaskVendor, fault: Fault
) -> None:
    fake.inject(fault)
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert calls(fake, POLL) == []


async def test_create_hang_is_not_retried(fake: FakeTaskVendor, make_vendor: MakeVendor) -> None:
    vendor = make_vendor(request_timeout=0.3)
    fake.inject(Fault("hang", path="createTask"))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(calls(fake, CREATE)) == 1


# --- poll faults --------------------------------------------------------------------------


async def test_poll_404_is_unavailable(fake: FakeTaskVendor, vendor: TaskVendor) -> None:
    fake.inject(Fault("404", path="recordInfo", times=5))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(calls(fake, POLL)) == 1


async def test_resume_of_an_unknown_task_is_unavailable(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    with pytest.raises(VendorUnavailable) as info:
        await vendor.resume("task_does_not_exist", edit_request(fake))
    assert info.value.maybe_billed
    assert calls(fake, CREATE) == []


@pytest.mark.parametrize("kind", ["500", "503", "429", "disconnect"])
async def test_transient_poll_faults_are_retried(
    fake: FakeTaskVendor, vendor: TaskVendor, kind: str
) -> None:
    fake.inject(Fault(kind, path="recordInfo", retry_after=0.05))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1
    assert len(calls(fake, POLL)) == 3


async def test_persistent_poll_5xx_gives_up_as_maybe_billed(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(max_retries=1)
    fake.inject(Fault("500", path="recordInfo", times=10))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(calls(fake, POLL)) == 2


async def test_poll_hang_is_retried_then_succeeds(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(request_timeout=0.3, max_retries=1)
    fake.inject(Fault("hang", path="recordInfo"))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [(402, VendorOutOfCredits), (401, VendorMisconfigured), (404, VendorUnavailable)],
)
async def test_poll_body_code_is_mapped(
    fake: FakeTaskVendor, vendor: TaskVendor, code: int, expected: type[VendorError]
) -> None:
    fake.inject(Fault("envelope_error", status=code, path="recordInfo"))
    with pytest.raises(expected) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed  # the task exists and may still be billed


@pytest.mark.parametrize(
    "fault",
    [
        Fault("malformed", variant="html", path="recordInfo"),
        Fault("malformed", variant="shape", path="recordInfo"),
        Fault("truncated", path="recordInfo"),
    ],
    ids=["html", "shape", "truncated"],
)
async def test_malformed_poll_answer_is_unavailable(
    fake: FakeTaskVendor, vendor: TaskVendor, fault: Fault
) -> None:
    fake.inject(fault)
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed


def _corrupt_result(fake: FakeTaskVendor, task_id: str, result_json: object) -> None:
    task = fake.tasks[task_id]
    original = task.record

    def record() -> dict[str, Any]:
        data = original()
        if data["state"] == "success":
            data["resultJson"] = result_json
        return data

    task.record = record  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "result_json",
    [
        "{not json",
        json.dumps({"resultUrls": []}),
        json.dumps({"urls": ["http://x/y.png"]}),
        json.dumps({"resultUrls": [7]}),
        json.dumps(["http://x/y.png"]),
        None,
    ],
    ids=["not-json", "empty", "wrong-key", "not-strings", "list", "null"],
)
async def test_malformed_result_json_is_unavailable_and_maybe_billed(
    fake: FakeTaskVendor, vendor: TaskVendor, result_json: object
) -> None:
    async def on_submitted(task_id: str) -> None:
        _corrupt_result(fake, task_id, result_json)

    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake), on_submitted=on_submitted)
    assert info.value.maybe_billed
    assert len(fake.billed) == 1


async def test_result_json_already_decoded_is_accepted(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    url = fake.publish(png_bytes(32, 32), "png")

    async def on_submitted(task_id: str) -> None:
        _corrupt_result(fake, task_id, {"resultUrls": [url]})

    result = await vendor.run(edit_request(fake), on_submitted=on_submitted)
    assert (result.images[0].width, result.images[0].height) == (32, 32)


@pytest.mark.parametrize("variant", ["404", "bytes"])
async def test_bad_result_url_is_unavailable_and_maybe_billed(
    fake: FakeTaskVendor, vendor: TaskVendor, variant: str
) -> None:
    fake.inject(Fault("bad_result_url", variant=variant))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(fake.billed) == 1


@pytest.mark.parametrize("code", [429, 500, 503])
async def test_transient_poll_body_code_is_polled_again(
    fake: FakeTaskVendor, vendor: TaskVendor, code: int
) -> None:
    fake.inject(Fault("envelope_error", status=code, path="recordInfo", times=2))
    result = await vendor.run(edit_request(fake))
    assert len(result.images) == 1
    assert len(calls(fake, POLL)) == 2 + 2


async def test_persistent_poll_body_code_gives_up(
    fake: FakeTaskVendor, make_vendor: MakeVendor
) -> None:
    vendor = make_vendor(max_retries=2)
    fake.inject(Fault("envelope_error", status=500, path="recordInfo", times=10))
    with pytest.raises(VendorUnavailable) as info:
        await vendor.run(edit_request(fake))
    assert info.value.maybe_billed
    assert len(calls(fake, POLL)) == 3


async def test_envelope_like_string_codes_are_understood(
    fake: FakeTaskVendor, vendor: TaskVendor
) -> None:
    fake.inject(Fault("envelope_error", status=1001, path="recordInfo", message="bad"))
    with pytest.raises(VendorRejected) as info:
        await vendor.run(edit_request(fake))
    assert info.value.reason == "bad"
    assert info.value.maybe_billed

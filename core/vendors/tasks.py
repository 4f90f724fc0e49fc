"""Style 3 (aigptimage): asynchronous tasks. Create a task, then poll it.

1. ``POST {base}/api/v1/jobs/createTask`` with ``{"model": ..., "input": {prompt,
   image_urls, aspect_ratio, resolution, quality, output_format?}}``; the answer
   ``{"code": 200, "data": {"taskId": ...}}`` names the task. ``on_submitted`` is
   awaited with the task id BEFORE polling starts, so the job can be resumed
   after a crash (``resume`` is the polling phase alone).
2. ``GET {base}/api/v1/jobs/recordInfo?taskId=...`` with exponential back-off
   from ``preset.poll_initial`` to ``preset.poll_max`` until ``data.state`` is
   ``success`` (``data.resultJson`` is a JSON STRING holding ``resultUrls``,
   each downloaded) or ``fail`` (``TaskFailed`` with ``failMsg``/``failCode``),
   or until ``preset.task_deadline`` has elapsed (``TaskTimedOut``).

The adapter does not own its HTTP clients (the composition root closes them).
Source images travel as URLs only. Every source must have a ``public_url``
(otherwise ``Unsupported``), and a Telegram file URL, which carries the bot
token, is refused before any request is made.

Error policy:

- HTTP errors are mapped by ``core.vendors.http.send`` / ``error_for``. The
  create POST is retried only where nothing can have been billed (connect
  errors, 409/429); polls are idempotent GETs that also retry 5xx.
- A body ``code`` other than 200 is mapped like the HTTP status of the same
  number (402 -> out of credits, 401 -> misconfigured, 404 on create ->
  misconfigured, 404 on poll -> unavailable, 409/429 -> busy, 400/422 ->
  rejected, 5xx -> unavailable). A busy code on create is retried within the
  same bound as an HTTP 409/429; a 429 or 5xx code on a poll is simply polled
  again after the back-off, at most ``preset.max_retries`` times in a row.
- Once a task exists, every failure except ``TaskFailed`` is ``maybe_billed``:
  the vendor may finish (and bill) the task without us.
- A body we cannot read is ``VendorUnavailable``; after the task exists it is
  ``maybe_billed``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from core.errors import (
    TaskFailed,
    TaskTimedOut,
    Unsupported,
    VendorError,
    VendorUnavailable,
)
from core.types import ImageRequest, ImageResult, Progress
from core.vendors import http
from core.vendors.base import ProgressCallback, SubmittedCallback
from core.vendors.preset import Preset
from core.vendors.shared import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    decode_results,
    download_all,
    is_telegram_file_url,
    json_body,
    notify,
    plain_reason,
)
from core.vendors.sizing import check_request

CREATE_PATH = "api/v1/jobs/createTask"
POLL_PATH = "api/v1/jobs/recordInfo"
_OK = 200
_BUSY_CODES = frozenset({409, 429})
_TRANSIENT_POLL_CODES = frozenset({429})

Sleep = Callable[[float], Awaitable[object]]
Clock = Callable[[], float]


def source_urls(preset: Preset, request: ImageRequest) -> list[str]:
    """The ``image_urls`` for ``request``; refuses before any call what cannot be sent."""
    urls: list[str] = []
    for source in request.sources:
        url = source.public_url
        if not url:
            raise Unsupported(
                "this vendor needs public image URLs",
                option="public_url",
                value="missing",
                supported="images reachable at a public URL",
                vendor=preset.name,
            )
        if is_telegram_file_url(url):
            # Never log or echo the URL itself: it contains the bot token.
            raise Unsupported(
                "a Telegram file URL carries the bot token and is never sent to a vendor",
                option="public_url",
                value="telegram file URL",
                supported="the bot's own short-lived image links",
                vendor=preset.name,
            )
        if not url.lower().startswith(("https://", "http://")):
            raise Unsupported(
                "this vendor needs public http(s) image URLs",
                option="public_url",
                value=url.split(":", 1)[0],
                supported="http, https",
                vendor=preset.name,
            )
        urls.append(url)
    return urls


def _body_code(body: dict[str, Any]) -> int | None:
    code = body.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def _code_error(
    response: httpx.Response, code: int, body: dict[str, Any], *, on_create: bool
) -> VendorError:
    """Map a body ``code`` like an HTTP status of that number."""
    # A number that is no HTTP error status: the vendor refused without saying how.
    status = code if 400 <= code <= 599 else 400
    shadow = httpx.Response(status, json=body, request=response.request)
    error = http.error_for(shadow, on_create=on_create, body=body)
    error.detail = f"body code {code} under HTTP {response.status_code}; {error.detail}"
    return error


class TaskVendor:
    """aigptimage (``aigptimage``): createTask, then poll recordInfo."""

    def __init__(
        self,
        preset: Preset,
        *,
        client: httpx.AsyncClient,
        downloader: httpx.AsyncClient,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        self.preset = preset
        self._client = client
        self._downloader = downloader
        self._sleep = sleep
        self._clock = clock
        self._max_download_bytes = max_download_bytes

    # --- phase 1: create ------------------------------------------------------------

    def payload(self, request: ImageRequest) -> dict[str, Any]:
        """The createTask body; raises ``Unsupported`` before any call."""
        size = check_request(self.preset, request)
        urls = source_urls(self.preset, request)
        if not urls:
            raise Unsupported(
                f"{self.preset.name} only edits images",
                option="generate",
                value="generate",
                supported="edit",
            )
        task_input: dict[str, Any] = {
            "prompt": request.prompt,
            "image_urls": urls,
            "aspect_ratio": size.size,
            "resolution": size.tier,
            "quality": request.quality.value,
        }
        output_format = (
            request.output_format.value
            if request.output_format is not None
            else self.preset.default_output_format
        )
        if output_format:
            task_input["output_format"] = output_format
        return {"model": self.preset.model, "input": task_input}

    async def _create(self, payload: dict[str, Any]) -> str:
        attempt = 0
        while True:
            response = await http.send(
                self._client, self.preset, "POST", CREATE_PATH, on_create=True, json=payload
            )
            body = json_body(response, what="createTask")
            code = _body_code(body)
            if code == _OK:
                data = body.get("data")
                task_id = data.get("taskId") if isinstance(data, dict) else None
                if not isinstance(task_id, str) or not task_id.strip():
                    raise VendorUnavailable(
                        f"createTask: code 200 without a taskId: {str(body)[:300]}",
                        maybe_billed=True,
                    )
                return task_id.strip()
            if code is None:
                raise VendorUnavailable(
                    f"createTask: answer without a usable code: {str(body)[:300]}",
                    maybe_billed=True,
                )
            error = _code_error(response, code, body, on_create=True)
            if code in _BUSY_CODES and attempt < self.preset.max_retries:
                # Refused, so nothing was created or billed: wait and ask again.
                advised = http.parse_retry_after(response.headers.get("Retry-After"))
                wait = 0.5 * 2**attempt if advised is None else advised
                await self._sleep(min(wait, self.preset.retry_after_cap))
                attempt += 1
                continue
            raise error

    # --- phase 2: poll --------------------------------------------------------------

    async def _poll_once(self, task_id: str) -> dict[str, Any] | VendorError:
        """The task's ``data``, or the error of a transient body code (429, 5xx) that
        the next poll may not repeat; every other failure raises."""
        response = await http.send(
            self._client,
            self.preset,
            "GET",
            POLL_PATH,
            params={"taskId": task_id},
            idempotent=True,
            on_create=False,
        )
        body = json_body(response, what="recordInfo")
        code = _body_code(body)
        if code != _OK:
            if code is None:
                raise VendorUnavailable(
                    f"recordInfo: answer without a usable code: {str(body)[:300]}",
                    maybe_billed=True,
                )
            error = _code_error(response, code, body, on_create=False)
            if code in _TRANSIENT_POLL_CODES or 500 <= code <= 599:
                return error
            raise error
        data = body.get("data")
        if not isinstance(data, dict):
            raise VendorUnavailable(
                f"recordInfo: no data object: {str(body)[:300]}", maybe_billed=True
            )
        return data

    async def _poll(
        self,
        task_id: str,
        *,
        on_progress: ProgressCallback | None,
        wait_first: bool,
    ) -> ImageResult:
        preset = self.preset
        started = self._clock()
        delay = max(preset.poll_initial, 0.0)
        first = True
        transient_failures = 0
        while True:
            elapsed = self._clock() - started
            remaining = preset.task_deadline - elapsed
            if remaining <= 0:
                raise TaskTimedOut(
                    f"task {task_id} unfinished after {elapsed:.1f}s", task_id=task_id
                )
            if wait_first or not first:
                await self._sleep(min(delay, remaining))
                delay = min(max(delay * 2, preset.poll_initial), preset.poll_max)
                elapsed = self._clock() - started
            first = False
            await notify(
                on_progress,
                Progress(stage="polling", vendor_ref=task_id),
            )
            data = await self._poll_once(task_id)
            if isinstance(data, VendorError):
                # A body-level 429/5xx on a poll: the task is unaffected, ask again
                # after the back-off, within the same bound as HTTP retries.
                transient_failures += 1
                if transient_failures > preset.max_retries:
                    raise data
                continue
            transient_failures = 0
            state = data.get("state")
            state = state.lower() if isinstance(state, str) else state
            if state == "success":
                urls = self._result_urls(task_id, data.get("resultJson"))
                await notify(on_progress, Progress(stage="downloading", vendor_ref=task_id))
                blobs = await download_all(
                    self._downloader, urls, max_bytes=self._max_download_bytes
                )
                result = await decode_results(blobs)
                return ImageResult(images=result.images, vendor_ref=task_id)
            if state in ("fail", "failed", "error"):
                fail_code = data.get("failCode")
                failed = TaskFailed(
                    plain_reason(data.get("failMsg"), fallback="the image service gave no reason"),
                    fail_code=None if fail_code is None else str(fail_code),
                )
                fail_msg = data.get("failMsg")
                if http.is_moderation(
                    failed.fail_code, fail_msg if isinstance(fail_msg, str) else None
                ):
                    failed.params["moderation"] = True
                raise failed
            if state is not None and not isinstance(state, str):
                raise VendorUnavailable(
                    f"recordInfo: state {state!r} is not a string", maybe_billed=True
                )
            # waiting (or another in-progress state): poll again after the back-off.

    @staticmethod
    def _result_urls(task_id: str, result_json: object) -> list[str]:
        parsed: object = result_json
        if isinstance(result_json, str):
            try:
                parsed = json.loads(result_json)
            except ValueError:
                parsed = None
        urls = parsed.get("resultUrls") if isinstance(parsed, dict) else None
        if (
            not isinstance(urls, list)
            or not urls
            or not all(isinstance(u, str) and u for u in urls)
        ):
            raise VendorUnavailable(
                f"task {task_id}: success without usable resultUrls: {str(result_json)[:300]}",
                maybe_billed=True,
            )
        return list(urls)

    # --- ImageVendor ----------------------------------------------------------------

    async def run(
        self,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
        on_submitted: SubmittedCallback | None = None,
    ) -> ImageResult:
        payload = self.payload(request)
        task_id = await self._create(payload)
        if on_submitted is not None:
            await on_submitted(task_id)
        await notify(on_progress, Progress(stage="submitted", vendor_ref=task_id))
        return await self._polled(task_id, on_progress=on_progress, wait_first=True)

    async def resume(
        self,
        vendor_ref: str,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ImageResult:
        """Poll a task created before a restart; the deadline starts afresh."""
        return await self._polled(vendor_ref, on_progress=on_progress, wait_first=False)

    async def _polled(
        self, task_id: str, *, on_progress: ProgressCallback | None, wait_first: bool
    ) -> ImageResult:
        try:
            return await self._poll(task_id, on_progress=on_progress, wait_first=wait_first)
        except TaskFailed:
            raise
        except VendorError as exc:
            # The task exists: whatever went wrong on our side, it may be billed.
            exc.maybe_billed = True
            exc.params.setdefault("task_id", task_id)
            raise

    async def aclose(self) -> None:
        """No-op: the composition root owns (and closes) both HTTP clients."""

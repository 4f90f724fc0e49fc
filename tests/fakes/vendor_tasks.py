"""Fake asynchronous-task image vendor (wire style 3: aigptimage).

1. ``POST /api/v1/jobs/createTask`` ``{"model": "gpt-image-2-image-to-image", "input": {...}}``
   -> ``{"code": 200, "msg": "success", "data": {"taskId": "task_..."}}``. The model must
   match exactly; ``input.prompt`` (<= 20000 chars) and ``input.image_urls`` (non-empty,
   public http(s) URLs that the fake downloads and checks are images) are required;
   Telegram file URLs are refused (422 "private url"); ``aspect_ratio``, ``resolution``
   (1K/2K/4K, default 1K), ``quality`` and ``output_format`` are checked. Validation
   failures are 422, a non-JSON body 400, too many waiting tasks 409.
2. ``GET /api/v1/jobs/recordInfo?taskId=...`` -> ``data.state`` ``waiting`` until the
   task finishes (``task_polls_to_finish`` polls and/or ``task_seconds``), then
   ``success`` with ``resultJson`` a JSON STRING ``{"resultUrls": [...]}`` or ``fail``
   with ``failCode``/``failMsg``. Times in ms. Unknown task: 404.
Errors: HTTP status with ``{"code": status, "msg": "...", "data": null}``.
Billing happens once, when a task succeeds (``resolution`` is the price tier).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from .vendor_base import Call, FakeVendor, Fault, Handler, InputImageError, json_response

MODEL = "gpt-image-2-image-to-image"
ASPECT_RATIOS = ("auto", "1:1", "4:5", "3:4", "2:3", "16:9", "9:16")
RESOLUTIONS = {"1K": 1024, "2K": 2048, "4K": 4096}
OUTPUT_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
MAX_PROMPT = 20_000


def _ms() -> int:
    return int(time.time() * 1000)


def output_pixels(aspect_ratio: str, resolution: str, source: tuple[int, int]) -> tuple[int, int]:
    """Output size: the long edge set by the resolution tier, the ratio by ``aspect_ratio``
    (``auto`` keeps the first source image's ratio)."""
    edge = RESOLUTIONS[resolution]
    if aspect_ratio == "auto":
        rw, rh = source
    else:
        a, b = aspect_ratio.split(":")
        rw, rh = int(a), int(b)
    if rw >= rh:
        return edge, max(8, round(edge * rh / rw / 8) * 8)
    return max(8, round(edge * rw / rh / 8) * 8), edge


@dataclass
class Task:
    """One task's state inside the fake."""

    task_id: str
    param: str
    aspect_ratio: str
    resolution: str
    quality: str | None
    output_format: str
    source_size: tuple[int, int]
    create_ms: int
    state: str = "waiting"
    polls: int = 0
    extra_polls: int = 0
    extra_seconds: float = 0.0
    fail: Fault | None = None
    bad_variant: str | None = None
    result_urls: list[str] = field(default_factory=list)
    fail_code: str | None = None
    fail_msg: str | None = None
    complete_ms: int | None = None

    def record(self) -> dict[str, Any]:
        """The ``data`` object of ``recordInfo``."""
        done = self.state != "waiting"
        return {
            "taskId": self.task_id,
            "model": MODEL,
            "state": self.state,
            "param": self.param,
            "resultJson": json.dumps({"resultUrls": self.result_urls})
            if self.state == "success"
            else None,
            "failCode": self.fail_code,
            "failMsg": self.fail_msg,
            "costTime": (self.complete_ms or 0) - self.create_ms if done else None,
            "completeTime": self.complete_ms if done else None,
            "createTime": self.create_ms,
        }


class FakeTaskVendor(FakeVendor):
    """Fake of aigptimage's createTask / recordInfo API.

    Extra attributes: ``tasks`` (``{taskId: Task}``), ``task_polls_to_finish`` (default
    2: the 2nd poll sees the end; ``None`` to finish by time only), ``task_seconds``
    (wall time to finish, default ``None``; either condition finishes a task),
    ``max_active_tasks`` (default 20; creating beyond it while that many wait -> 409).
    """

    style: ClassVar[str] = "tasks"
    _CONFIG_ATTRS: ClassVar[frozenset[str]] = FakeVendor._CONFIG_ATTRS | {
        "task_polls_to_finish",
        "task_seconds",
        "max_active_tasks",
    }
    default_random_fault_kinds: ClassVar[tuple[str, ...]] = (
        "429",
        "500",
        "503",
        "slow",
        "malformed",
        "task_fail",
        "task_late",
    )

    def __init__(self, key: str = "sk-test", **kwargs: Any) -> None:
        super().__init__(key=key, **kwargs)
        self.tasks: dict[str, Task] = {}
        self.task_polls_to_finish: int | None = 2
        self.task_seconds: float | None = None
        self.max_active_tasks = 20
        self._counter = 0

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/api/v1/jobs/createTask"): self._create,
            ("GET", "/api/v1/jobs/recordInfo"): self._record_info,
        }

    def error_body(self, status: int, message: str, code: str | None = None) -> Any:
        text = f"{code}: {message}" if code == "moderation_blocked" else message
        return {"code": status, "msg": text, "data": None}

    def envelope_error_body(self, code: int, message: str) -> Any:
        return {"code": code, "msg": message, "data": None}

    def sample_success_body(self) -> Any:
        return {"code": 200, "msg": "success", "data": {"taskId": "task_" + "0" * 24}}

    def wrong_shape_body(self) -> Any:
        return {"code": 200, "msg": "success", "data": "task"}

    def _error(self, status: int, msg: str) -> web.Response:
        return json_response(self.error_body(status, msg), status)

    @property
    def active_tasks(self) -> int:
        """Tasks still waiting."""
        return sum(1 for t in self.tasks.values() if t.state == "waiting")

    async def _create(self, call: Call) -> web.StreamResponse:
        body = call.rec.json
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object")
        if body.get("model") != MODEL:
            return self._error(422, f"model must be exactly {MODEL!r}")
        inp = body.get("input")
        if not isinstance(inp, dict):
            return self._error(422, "input is required and must be an object")
        prompt = inp.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return self._error(422, "input.prompt is required")
        if len(prompt) > MAX_PROMPT:
            return self._error(422, f"input.prompt exceeds {MAX_PROMPT} characters")
        urls = inp.get("image_urls")
        if not isinstance(urls, list) or not urls:
            return self._error(422, "input.image_urls is required: at least one image URL")
        extra = [u for key in ("input_urls", "image_input") for u in (inp.get(key) or [])]
        aspect = inp.get("aspect_ratio", "auto")
        if aspect not in ASPECT_RATIOS:
            return self._error(422, f"input.aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}")
        resolution = inp.get("resolution", "1K")
        if resolution not in RESOLUTIONS:
            return self._error(422, "input.resolution must be 1K, 2K or 4K")
        quality = inp.get("quality")
        if quality is not None and quality not in ("low", "medium", "high", "auto"):
            return self._error(422, "input.quality must be low, medium, high or auto")
        fmt = inp.get("output_format", "png")
        if fmt not in OUTPUT_FORMATS:
            return self._error(422, "input.output_format must be png, jpeg or webp")
        for url in [*urls, *extra]:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return self._error(422, "image_urls must be public http(s) URLs")
        sizes: list[tuple[int, int]] = []
        for url in [*urls, *extra]:
            try:
                img = await self.load_image_ref(url)
            except InputImageError as exc:
                return self._error(
                    422, exc.message if exc.private else f"image url invalid: {exc.message}"
                )
            sizes.append((img.width, img.height))
        if self.active_tasks >= self.max_active_tasks:
            return self._error(409, "too many active tasks")

        self._counter += 1
        task_id = f"task_{self._counter:06d}{int(time.time() * 1000) % 10**8:08d}"
        task = Task(
            task_id,
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            aspect,
            resolution,
            quality,
            OUTPUT_FORMATS[fmt],
            sizes[0],
            _ms(),
        )
        task.fail = self.take_fault(call, {"task_fail"})
        late = self.take_fault(call, {"task_late"})
        if late is not None:
            task.extra_polls = late.polls if late.polls is not None else 3
            task.extra_seconds = late.delay or 0.0
        bad = self.take_fault(call, {"bad_result_url"})
        task.bad_variant = (bad.variant or "404") if bad else None
        self.tasks[task_id] = task
        await self.sleep(self.latency)
        return json_response({"code": 200, "msg": "success", "data": {"taskId": task_id}})

    def _finished(self, task: Task) -> bool:
        age = time.time() - task.create_ms / 1000
        if age < task.extra_seconds:
            return False
        by_polls = self.task_polls_to_finish is not None and task.polls >= self.task_polls_to_finish
        by_time = self.task_seconds is not None and age >= self.task_seconds + task.extra_seconds
        if self.task_polls_to_finish is None and self.task_seconds is None:
            by_polls = True
        if not (by_polls or by_time):
            return False
        if task.extra_polls > 0:
            task.extra_polls -= 1
            return False
        return True

    async def _record_info(self, call: Call) -> web.StreamResponse:
        task_id = call.rec.query.get("taskId")
        if not task_id:
            return self._error(400, "taskId is required")
        task = self.tasks.get(task_id)
        if task is None:
            return self._error(404, "task not found")
        if task.state == "waiting":
            task.polls += 1
            if self._finished(task):
                answer = await self._finish(call, task)
                if answer is not None:
                    return answer
        return json_response({"code": 200, "msg": "success", "data": task.record()})

    async def _finish(self, call: Call, task: Task) -> web.Response | None:
        task.complete_ms = _ms()
        if task.fail is not None:
            task.state = "fail"
            task.fail_code = str(task.fail.status or 500)
            task.fail_msg = task.fail.message or "image generation failed: content policy"
            return None
        w, h = output_pixels(task.aspect_ratio, task.resolution, task.source_size)
        data = await self.render_output(w, h, task.output_format)
        ext = "jpg" if task.output_format == "jpeg" else task.output_format
        task.result_urls = [self.publish(data, ext, task.bad_variant)]
        task.state = "success"
        self.bill(
            task.task_id,
            1,
            size=f"{w}x{h}",
            quality=task.quality,
            resolution=task.resolution,
            n=1,
            path="/api/v1/jobs/createTask",
        )
        if self.take_fault(call, {"billed_then_500"}) is not None:
            return self._error(500, "internal server error")
        return None

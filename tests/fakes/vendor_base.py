"""Shared machinery of the fake vendor servers: sockets, auth, recording, faults, billing.

A ``FakeVendor`` is a real aiohttp server on 127.0.0.1 (random port). Subclasses (one
per wire style: ``vendor_openai``, ``vendor_envelope``, ``vendor_tasks``) supply the
routes, the style's error body and the vendor's documented validation rules; this module owns
everything the styles share:

- ``Authorization: Bearer <key>`` checking (401 in the style's error shape, key never echoed);
- ``requests``: every API call recorded as a ``RecordedRequest``;
- ``billed``: every image-producing success recorded as a ``BilledJob``;
- fault injection (``Fault``, ``inject``, ``inject_many``, plus a seeded random fault rate);
- a tiny CDN: ``GET /files/<id>.<ext>`` (no auth) for result URLs and test inputs;
- source-image intake (data URLs, public http URLs, uploads) with real image checks;
- control endpoints for out-of-process use: ``GET /_control/billed``,
  ``GET|POST /_control/faults``, ``GET /_control/requests``, ``POST /_control/reset``,
  ``POST /_control/config``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import random
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Self

import aiohttp
from aiohttp import web
from PIL import Image

from .images import content_type_for, not_an_image, render

# Kinds that the dispatcher applies before the route handler runs.
STATUS_KINDS = frozenset(
    {"400", "401", "402", "403", "404", "409", "422", "429", "500", "502", "503", "504"}
)
GENERIC_KINDS = STATUS_KINDS | {
    "http",
    "hang",
    "slow",
    "malformed",
    "truncated",
    "moderation",
    "disconnect",
    "envelope_error",
}
# Kinds that a style's handler consumes at the point where they make sense.
SPECIFIC_KINDS = frozenset(
    {"url_not_available", "task_fail", "task_late", "bad_result_url", "billed_then_500"}
)
FAULT_KINDS = GENERIC_KINDS | SPECIFIC_KINDS

# Pillow refuses beyond 2x this; a vendor would refuse far earlier.
DEFAULT_MAX_INPUT_PIXELS = 50_000_000
MAX_INPUT_BYTES = 50 * 1024 * 1024


@dataclass
class Fault:
    """One scripted misbehaviour, consumed by the next ``times`` matching requests.

    ``kind`` is one of ``FAULT_KINDS`` (an int status such as 429 is accepted too).
    ``path`` (a substring of the request path) limits which requests match; without it
    a fault matches API calls but never ``/files/`` downloads. Extra knobs, all optional:
    ``delay`` (seconds, for ``slow``; default 2.0), ``polls`` (extra waiting polls for
    ``task_late``; default 3), ``message`` (error text), ``variant`` (``malformed``:
    ``html`` | ``shape`` | ``empty``; ``bad_result_url``: ``404`` | ``bytes``;
    ``truncated``/``disconnect``: ``midstream`` cuts a server-sent-event answer after its
    partial images instead of refusing the request up front).
    ``status`` is the HTTP status for ``http`` (default 500), the envelope code for
    ``envelope_error`` (default 1001), the failCode for ``task_fail`` (default 500).
    """

    kind: str
    status: int | None = None
    retry_after: float | None = None
    times: int = 1
    path: str | None = None
    delay: float | None = None
    polls: int | None = None
    message: str | None = None
    variant: str | None = None

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.times < 1:
            raise ValueError("times must be >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build from a JSON object (as posted to ``/_control/faults``)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class RecordedRequest:
    """One API request as the fake received it (control and file routes are not recorded)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any | None
    form: dict[str, str] | None
    files: list[tuple[str, str, str, bytes]]
    time: float
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def summary(self) -> dict[str, Any]:
        """JSON-ready form without bodies or the Authorization header."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "json": self.json,
            "form": self.form,
            "files": [(f, n, ct, len(b)) for f, n, ct, b in self.files],
            "time": self.time,
        }


@dataclass(frozen=True)
class BilledJob:
    """One billed success: ``images`` outputs charged for call/task ``id``."""

    id: str
    images: int
    size: str | None
    quality: str | None
    resolution: str | None
    n: int
    time: float
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class InputImageError(Exception):
    """A source image the vendor would refuse; ``private`` marks a Telegram file URL."""

    def __init__(self, message: str, *, private: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.private = private


@dataclass(frozen=True)
class InputImage:
    """A source image the fake accepted."""

    data: bytes
    format: str
    width: int
    height: int
    source: str  # "upload", "data-url" or the http URL


@dataclass
class Call:
    """Per-request context handed to a style's route handler."""

    request: web.Request
    rec: RecordedRequest
    random_fault: Fault | None = None


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """JSON answer with exactly ``Content-Type: application/json`` (no charset suffix)."""
    hdrs = {"Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(obj).encode(), status=status, headers=hdrs)


def is_private_url(url: str) -> bool:
    """A Telegram file URL (it embeds the bot token) must never reach a vendor."""
    return "api.telegram.org" in url or "/file/bot" in url


def inspect_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
    formats: Iterable[str] = ("png", "jpeg", "webp", "gif"),
) -> tuple[str, int, int]:
    """``(format, width, height)`` of real image bytes, else ``InputImageError``.

    Reads the header and verifies the chunk structure; never decodes pixels, so a
    decompression bomb is refused by its claimed size without costing memory.
    """
    if not data:
        raise InputImageError("empty image")
    if len(data) > MAX_INPUT_BYTES:
        raise InputImageError("image larger than 50MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = (img.format or "").lower()
                width, height = img.size
                if width * height > max_pixels:
                    raise InputImageError(f"image too large: {width}x{height} pixels")
                img.verify()
    except InputImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputImageError("image too large (decompression bomb)") from exc
    except Exception as exc:  # Pillow raises many kinds for junk input
        raise InputImageError("invalid image: not a decodable png/jpeg/webp file") from exc
    allowed = set(formats)
    if fmt not in allowed:
        raise InputImageError(f"unsupported image format {fmt!r}; use {'/'.join(sorted(allowed))}")
    return fmt, width, height


def decode_data_url(url: str) -> bytes:
    """Bytes of a ``data:image/...;base64,...`` URL, else ``InputImageError``."""
    head, sep, payload = url.partition(",")
    if not sep or not head.startswith("data:") or ";base64" not in head:
        raise InputImageError("malformed data URL: expected data:image/<fmt>;base64,<data>")
    if not head[5:].startswith("image/"):
        raise InputImageError("data URL is not an image")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputImageError("data URL is not valid base64") from exc


class FakeVendor:
    """Base class of the fake vendor servers. Use as ``async with Fake(...) as fake:``.

    Public attributes (all mutable at any time): ``key``, ``latency`` (seconds before a
    successful answer), ``requests``, ``billed``, ``faults`` (pending queue),
    ``fault_rate`` and ``random_fault_kinds`` (seeded random faults for benchmarks),
    ``private_url_hits`` (Telegram-style URLs a client leaked), ``max_input_pixels``,
    ``in_flight`` / ``max_in_flight`` (concurrent API calls being answered).
    """

    style: ClassVar[str] = "base"
    default_random_fault_kinds: ClassVar[tuple[str, ...]] = (
        "429",
        "500",
        "503",
        "slow",
        "malformed",
        "disconnect",
    )

    def __init__(
        self,
        *,
        key: str = "sk-test",
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_rate: float = 0.0,
        seed: int | None = None,
        random_fault_kinds: Iterable[str] | None = None,
    ) -> None:
        self.key = key
        self.latency = latency
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.billed: list[BilledJob] = []
        self.faults: list[Fault] = []
        self.fault_rate = fault_rate
        self.random_fault_kinds: tuple[str, ...] = tuple(
            random_fault_kinds
            if random_fault_kinds is not None
            else self.default_random_fault_kinds
        )
        self.rng = random.Random(seed)
        self.private_url_hits: list[str] = []
        self.max_input_pixels = DEFAULT_MAX_INPUT_PIXELS
        self.in_flight = 0
        self.max_in_flight = 0
        self.fetch_timeout = 10.0
        self._files: dict[str, tuple[bytes, str, str | None]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._routes: dict[tuple[str, str], Handler] = {}

    # ----- lifecycle ---------------------------------------------------------------
    async def start(self) -> Self:
        """Bind 127.0.0.1 on a random (or the given) port and start serving."""
        self._stopping = asyncio.Event()
        self._routes = self.routes()
        app = web.Application(client_max_size=MAX_INPUT_BYTES * 17)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, handle_signals=False
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.fetch_timeout)
        )
        return self

    async def stop(self) -> None:
        """Release hanging handlers, close the socket and the download client."""
        self._stopping.set()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL a client is configured with, as the vendor's doc states it."""
        return self.root_url

    # ----- hooks for the styles ------------------------------------------------------
    def routes(self) -> dict[tuple[str, str], Handler]:
        """``{(METHOD, path): handler}`` of the style's API."""
        return {}

    def error_body(self, status: int, message: str, code: str | None = None) -> Any:
        """The style's error body for an HTTP error."""
        return {"error": {"message": message, "type": "error", "code": code}}

    def envelope_error_body(self, code: int, message: str) -> Any:
        """An HTTP-200 answer whose body says failure (``envelope_error``)."""
        return {"code": code, "message": message, "data": None}

    def sample_success_body(self) -> Any:
        """A plausible success body (``truncated`` cuts one in half)."""
        return {"ok": True}

    def wrong_shape_body(self) -> Any:
        """Valid JSON with the wrong shape (``malformed``, variant ``shape``)."""
        return {"result": "ok", "data": "not-a-list"}

    # ----- faults --------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        """Queue one fault."""
        self.faults.append(fault)

    def inject_many(self, faults: Iterable[Fault]) -> None:
        """Queue several faults, in order."""
        self.faults.extend(faults)

    def take_fault(
        self,
        call: Call | None,
        kinds: Iterable[str],
        *,
        path: str = "",
        is_file: bool = False,
        midstream: bool = False,
    ) -> Fault | None:
        """Consume the first queued fault of one of ``kinds`` matching this request.

        Faults with ``variant="midstream"`` only match where ``midstream`` is asked for
        (inside a server-sent-event answer), all others only where it is not.
        """
        kinds = set(kinds)
        req_path = path or (call.rec.path if call else "")
        for fault in self.faults:
            if fault.kind not in kinds or (fault.variant == "midstream") != midstream:
                continue
            if fault.path is None:
                if is_file:
                    continue
            elif fault.path not in req_path:
                continue
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
            return fault
        if (
            call is not None
            and not midstream
            and call.random_fault is not None
            and call.random_fault.kind in kinds
        ):
            fault, call.random_fault = call.random_fault, None
            return fault
        return None

    def _draw_random_fault(self) -> Fault | None:
        if self.fault_rate <= 0 or not self.random_fault_kinds:
            return None
        if self.rng.random() >= self.fault_rate:
            return None
        return Fault(self.rng.choice(self.random_fault_kinds))

    async def sleep(self, seconds: float) -> None:
        """Sleep that ends early when the server stops (so shutdown never waits)."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def fault_error(
        self,
        status: int,
        message: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> web.Response:
        """An HTTP error in the style's shape (``Retry-After`` on 429/503)."""
        headers: dict[str, str] = {}
        if retry_after is None and status == 429:
            retry_after = 1
        if retry_after is not None:
            headers["Retry-After"] = str(
                int(retry_after) if float(retry_after).is_integer() else retry_after
            )
        msg = message or _DEFAULT_MESSAGES.get(status, f"error {status}")
        return json_response(
            self.error_body(status, msg, code or _DEFAULT_CODES.get(status)), status, headers
        )

    async def apply_generic(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        """Answer for a generic fault, or ``None`` to carry on (``slow``)."""
        kind = fault.kind
        if kind in STATUS_KINDS or kind == "http":
            status = fault.status or (500 if kind == "http" else int(kind))
            return self.fault_error(status, fault.message, retry_after=fault.retry_after)
        if kind == "moderation":
            return self.fault_error(
                fault.status or 400,
                fault.message
                or ("moderation_blocked: your request was rejected by the safety system"),
                code="moderation_blocked",
            )
        if kind == "slow":
            await self.sleep(fault.delay if fault.delay is not None else 2.0)
            return None
        if kind == "hang":
            # Hold the request until the client gives up (closes) or the fake stops;
            # other requests are served meanwhile.
            while not self._stopping.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                await self.sleep(0.1)
            return web.Response(status=503)
        if kind == "malformed":
            variant = fault.variant or "html"
            if variant == "shape":
                return json_response(self.wrong_shape_body())
            if variant == "empty":
                return web.Response(body=b"", headers={"Content-Type": "application/json"})
            return web.Response(
                body=b"<html><body>upstream error</body></html>",
                headers={"Content-Type": "text/html"},
            )
        if kind == "truncated":
            full = json.dumps(self.sample_success_body()).encode()
            return web.Response(
                body=full[: max(1, len(full) // 2)], headers={"Content-Type": "application/json"}
            )
        if kind == "disconnect":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError  # nothing left to answer on
        if kind == "envelope_error":
            return json_response(
                self.envelope_error_body(
                    fault.status or 1001, fault.message or "upstream generation failed"
                )
            )
        raise AssertionError(kind)

    # ----- billing and files ---------------------------------------------------------
    def bill(
        self,
        job_id: str,
        images: int,
        *,
        size: str | None,
        quality: str | None,
        resolution: str | None = None,
        n: int | None = None,
        path: str = "",
    ) -> BilledJob:
        """Record a billed success."""
        job = BilledJob(
            job_id,
            images,
            size,
            quality,
            resolution,
            n if n is not None else images,
            time.time(),
            path,
        )
        self.billed.append(job)
        return job

    def publish(self, data: bytes, ext: str = "png", bad: str | None = None) -> str:
        """Serve ``data`` at ``/files/<id>.<ext>`` (no auth) and return its absolute URL.

        ``bad``: ``"404"`` makes the URL answer 404, ``"bytes"`` makes it serve non-image
        bytes with an image content type. Tests use this as a public image host too.
        """
        file_id = uuid.uuid4().hex
        name = f"{file_id}.{ext}"
        self._files[name] = (data, content_type_for(ext), bad)
        return f"{self.root_url}/files/{name}"

    async def render_output(
        self, width: int, height: int, fmt: str, transparent: bool = False
    ) -> bytes:
        """Solid-colour output image (cached); rendered off the event loop."""
        return await asyncio.to_thread(render, width, height, fmt, (90, 140, 200), transparent)

    # ----- source images -------------------------------------------------------------
    async def load_image_ref(
        self, ref: str, formats: Iterable[str] = ("png", "jpeg", "webp")
    ) -> InputImage:
        """Accept a data URL or a public http(s) URL (downloaded now), else raise."""
        if not isinstance(ref, str) or not ref:
            raise InputImageError("image must be a URL or a base64 data URL")
        if ref.startswith("data:"):
            data = decode_data_url(ref)
            source = "data-url"
        elif ref.startswith(("http://", "https://")):
            data = await self.download(ref)
            source = ref
        else:
            raise InputImageError("image must be an http(s) URL or a base64 data URL")
        fmt, width, height = inspect_image(data, self.max_input_pixels, formats)
        return InputImage(data, fmt, width, height, source)

    def load_upload(
        self, data: bytes, formats: Iterable[str] = ("png", "jpeg", "webp")
    ) -> InputImage:
        """Accept uploaded file bytes that are a real image, else raise."""
        fmt, width, height = inspect_image(data, self.max_input_pixels, formats)
        return InputImage(data, fmt, width, height, "upload")

    async def download(self, url: str) -> bytes:
        """GET a public URL the way a vendor would; refuse Telegram file URLs."""
        if is_private_url(url):
            self.private_url_hits.append(url)
            raise InputImageError("private url", private=True)
        assert self._session is not None, "fake not started"
        try:
            async with self._session.get(url) as resp:
                if resp.status != 200:
                    raise InputImageError(f"image url not reachable: HTTP {resp.status}")
                data = await resp.content.read(MAX_INPUT_BYTES + 1)
        except InputImageError:
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise InputImageError(f"image url not reachable: {type(exc).__name__}") from exc
        return data

    # ----- HTTP plumbing -------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.key}"

    async def _record(self, request: web.Request) -> RecordedRequest:
        ctype = request.content_type
        body = b""
        parsed: Any = None
        form: dict[str, str] | None = None
        files: list[tuple[str, str, str, bytes]] = []
        if ctype.startswith("multipart/"):
            form = {}
            try:
                reader = await request.multipart()
                while True:
                    part = await reader.next()
                    if part is None:
                        break
                    if not isinstance(part, aiohttp.BodyPartReader):
                        continue
                    name = part.name or ""
                    if part.filename is not None:
                        data = bytes(await part.read(decode=False))
                        files.append(
                            (
                                name,
                                part.filename,
                                part.headers.get("Content-Type", "application/octet-stream"),
                                data,
                            )
                        )
                    else:
                        form[name] = await part.text()
            except (ValueError, AssertionError, aiohttp.ClientError) as exc:
                form["__parse_error__"] = str(exc)
        else:
            body = await request.read()
            if ctype == "application/x-www-form-urlencoded":
                form = {k: str(v) for k, v in (await request.post()).items()}
            elif body:
                try:
                    parsed = json.loads(body)
                except (ValueError, UnicodeDecodeError):
                    parsed = None
        rec = RecordedRequest(
            request.method,
            request.path,
            dict(request.headers),
            parsed,
            form,
            files,
            time.time(),
            dict(request.query),
            body,
        )
        self.requests.append(rec)
        return rec

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_control/"):
            return await self._control(request)
        if path.startswith("/files/"):
            return await self._serve_file(request)
        handler = self._routes.get((request.method, path))
        if handler is None:
            rec = await self._record(request)
            known = any(p == path for _, p in self._routes)
            status = 405 if known else 404
            return self.fault_error(
                status,
                f"{request.method} {rec.path}: "
                + ("method not allowed" if known else "no such route"),
            )
        rec = await self._record(request)
        if not self._authorized(request):
            return self.fault_error(401, "invalid api key")
        call = Call(request, rec, self._draw_random_fault())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fault = self.take_fault(call, GENERIC_KINDS)
            if fault is not None:
                answer = await self.apply_generic(fault, request)
                if answer is not None:
                    return answer
            return await handler(call)
        finally:
            self.in_flight -= 1

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        fault = self.take_fault(None, GENERIC_KINDS, path=request.path, is_file=True)
        if fault is not None:
            answer = await self.apply_generic(fault, request)
            if answer is not None:
                return answer
        name = request.path.removeprefix("/files/")
        entry = self._files.get(name)
        if entry is None or entry[2] == "404":
            return web.Response(status=404, text="not found")
        data, ctype, bad = entry
        if bad == "bytes":
            return web.Response(body=not_an_image(), headers={"Content-Type": ctype})
        return web.Response(body=data, headers={"Content-Type": ctype})

    # Attributes ``POST /_control/config`` may set; styles add their own.
    _CONFIG_ATTRS: ClassVar[frozenset[str]] = frozenset({"latency", "fault_rate"})

    async def _control(self, request: web.Request) -> web.StreamResponse:
        what = request.path.removeprefix("/_control/")
        if what == "billed" and request.method == "GET":
            return json_response([b.to_dict() for b in self.billed])
        if what == "faults" and request.method == "GET":
            return json_response([f.to_dict() for f in self.faults])
        if what == "faults" and request.method == "POST":
            try:
                raw = await request.json()
                items = raw if isinstance(raw, list) else [raw]
                new = [Fault.from_dict(item) for item in items]
            except (ValueError, TypeError) as exc:
                return json_response({"error": str(exc)}, 400)
            self.inject_many(new)
            return json_response({"queued": len(new), "pending": len(self.faults)})
        if what == "requests" and request.method == "GET":
            return json_response([r.summary() for r in self.requests])
        if what == "reset" and request.method == "POST":
            self.requests.clear()
            self.billed.clear()
            self.faults.clear()
            self.private_url_hits.clear()
            self.max_in_flight = self.in_flight
            return json_response({"ok": True})
        if what == "config" and request.method == "POST":
            try:
                raw = await request.json()
            except ValueError:
                raw = None
            if not isinstance(raw, dict) or set(raw) - self._CONFIG_ATTRS:
                return json_response({"error": f"settable: {sorted(self._CONFIG_ATTRS)}"}, 400)
            for name, value in raw.items():
                setattr(self, name, value)
            return json_response({name: getattr(self, name) for name in self._CONFIG_ATTRS})
        if what == "health":
            return json_response({"ok": True, "style": self.style, "base_url": self.base_url})
        return json_response({"error": "unknown control endpoint"}, 404)


_DEFAULT_MESSAGES = {
    400: "invalid request",
    401: "invalid api key",
    402: "insufficient account balance",
    403: "forbidden",
    404: "not found",
    409: "too many active tasks",
    422: "validation failed",
    429: "rate limit exceeded, retry later",
    500: "internal server error",
    502: "bad gateway",
    503: "service unavailable",
    504: "gateway timeout",
}
_DEFAULT_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    402: "insufficient_quota",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "validation_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def new_id(prefix: str) -> str:
    """A short random identifier with a prefix."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"

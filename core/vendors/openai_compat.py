"""Adapter for the OpenAI images wire style (compat-sizes, compat-b64, aiearth and OpenAI itself).

One class serves every OpenAI-compatible vendor; what differs between them is data
in the preset: the size vocabulary, the edit shape (JSON ``image``, JSON
``images[]`` or multipart ``image[]``), ``response_format`` and streaming.

The adapter does not own its HTTP clients: the composition root builds them with
``core.vendors.http.build_client`` / ``build_download_client`` and closes them, so
:meth:`OpenAICompatVendor.aclose` is a no-op.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from typing import Any

import httpx

from core.errors import (
    CannotResume,
    Unsupported,
    VendorError,
    VendorUnavailable,
)
from core.images import read_output, read_outputs
from core.types import (
    MAX_TOKENS,
    Background,
    GeneratedImage,
    ImageRequest,
    ImageResult,
    Partial,
    Progress,
    SourceImage,
    Usage,
    token_count,
)
from core.vendors import http, sse
from core.vendors.base import ProgressCallback, SubmittedCallback
from core.vendors.preset import Preset
from core.vendors.shared import DEFAULT_MAX_DOWNLOAD_BYTES, notify
from core.vendors.sizing import VendorSize, check_request
from core.vendors.sse import SSEError, event_type, iter_events

log = logging.getLogger(__name__)

URL_NOT_AVAILABLE = "image_url_not_available"


def _int(value: object) -> int:
    # int(float("inf")) raises: a hostile number must not end a job that succeeded.
    return token_count(value) or 0


def _tokens(raw: dict[str, Any], *names: str) -> int:
    """The first of ``names`` that holds a believable token count (chat-style
    vendors say ``prompt_tokens``/``completion_tokens``); 0 if none does."""
    for name in names:
        count = token_count(raw.get(name))
        if count is not None:
            return count
    return 0


def parse_usage(raw: object) -> Usage | None:
    """``usage`` of an images answer (or a ``*.completed`` event) as ``Usage``.

    Every figure is clamped to 0..MAX_TOKENS and anything that is not a whole finite
    number counts as missing: a vendor's body must never make pricing raise or pay
    the user back."""
    if not isinstance(raw, dict):
        return None
    details = raw.get("input_tokens_details") or raw.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    input_tokens = _tokens(raw, "input_tokens", "prompt_tokens")
    output_tokens = _tokens(raw, "output_tokens", "completion_tokens")
    total = _tokens(raw, "total_tokens") or min(input_tokens + output_tokens, MAX_TOKENS)
    return Usage(
        input_tokens=input_tokens,
        input_text_tokens=_tokens(details, "text_tokens"),
        input_image_tokens=_tokens(details, "image_tokens"),
        cached_text_tokens=_tokens(details, "cached_tokens", "cached_text_tokens"),
        output_tokens=output_tokens,
        total_tokens=total,
    )


def _b64decode(value: str) -> bytes:
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        # Some servers wrap lines; try once more without whitespace.
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise VendorUnavailable("b64_json is not base64", maybe_billed=True) from None


def _is_url_not_available(error: VendorError) -> bool:
    code = error.params.get("vendor_code")
    return code == URL_NOT_AVAILABLE or URL_NOT_AVAILABLE in error.detail


class OpenAICompatVendor:
    """``ImageVendor`` for ``POST images/generations`` and ``POST images/edits``."""

    def __init__(
        self,
        preset: Preset,
        *,
        client: httpx.AsyncClient,
        downloader: httpx.AsyncClient,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        user_tag_secret: str | None = None,
    ) -> None:
        self.preset = preset
        self._client = client
        self._downloader = downloader
        self._max_download_bytes = max_download_bytes
        # Without an explicit secret the key derives from the API key the client sends,
        # so tags are stable per install and unknown to anyone without that key.
        secret = user_tag_secret or client.headers.get("Authorization", "") or preset.name
        self._tag_key = hashlib.sha256(b"imagine-bot user tag\0" + secret.encode()).digest()

    # --- ImageVendor ---------------------------------------------------------------

    async def run(
        self,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
        on_submitted: SubmittedCallback | None = None,
    ) -> ImageResult:
        # on_submitted is for resumable (task) vendors; a synchronous call cannot be
        # resumed, so the request id is only reported in ImageResult.vendor_ref.
        del on_submitted
        size = check_request(self.preset, request)
        self._check_extras(request)
        streaming = self.preset.stream and on_progress is not None
        kind = "edits" if request.is_edit else "generations"
        url = self._url(f"images/{kind}")
        response_format = None if streaming else self.preset.response_format

        await notify(on_progress, Progress(stage="submitted"))
        try:
            return await self._exchange(
                url, request, size, response_format, streaming=streaming, on_progress=on_progress
            )
        except VendorError as exc:
            if response_format != "url" or not _is_url_not_available(exc):
                raise
            # compat-b64: no URL could be produced and no image was returned; ask again
            # for the vendor's default (b64_json).
            log.info("%s: %s; retrying once without response_format", self.preset.name, exc)
            return await self._exchange(
                url, request, size, None, streaming=streaming, on_progress=on_progress
            )

    async def resume(
        self,
        vendor_ref: str,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ImageResult:
        raise CannotResume(f"{self.preset.name} answers synchronously; {vendor_ref} is lost")

    async def aclose(self) -> None:
        """No-op: the composition root owns (and closes) both HTTP clients."""

    # --- request building ------------------------------------------------------------

    def _url(self, path: str) -> str:
        base = str(self._client.base_url) if str(self._client.base_url) else self.preset.base_url
        base_path = httpx.URL(base).path.rstrip("/") if base else ""
        relative = path if base_path.endswith("/v1") else f"v1/{path}"
        if str(self._client.base_url):
            return relative  # httpx joins it onto base_url's path
        return f"{self.preset.base_url.rstrip('/')}/{relative}"

    def _check_extras(self, request: ImageRequest) -> None:
        p = self.preset
        if request.background is Background.TRANSPARENT and not p.supports_background:
            raise Unsupported(
                "transparent background",
                option="background",
                value=request.background.value,
                supported="opaque",
            )
        if request.is_edit:
            if p.edit_shape == "task_urls":
                raise Unsupported(
                    f"{p.name} needs a task-style adapter",
                    option="edit",
                    value="edit",
                    supported="generate",
                )
            if p.edit_shape == "json_image" and len(request.sources) > 1:
                raise Unsupported(
                    f"{len(request.sources)} input images",
                    option="images",
                    value=str(len(request.sources)),
                    supported="1",
                )

    def _fields(
        self,
        request: ImageRequest,
        size: VendorSize,
        response_format: str | None,
        *,
        streaming: bool,
    ) -> dict[str, Any]:
        p = self.preset
        model = p.model if request.is_edit else (p.generate_model or p.model)
        fields: dict[str, Any] = {
            "model": model,
            "prompt": request.prompt,
            "size": size.size,
            "quality": request.quality.value,
            "n": request.n,
        }
        if request.background is not None and p.supports_background:
            fields["background"] = request.background.value
        output_format = (
            request.output_format.value if request.output_format else p.default_output_format
        )
        if output_format and p.output_formats:
            fields["output_format"] = output_format
        if response_format:
            fields["response_format"] = response_format
        if request.user_tag:
            fields["user"] = self._opaque_user(request.user_tag)
        if streaming:
            fields["stream"] = True
            fields["partial_images"] = p.partial_images
        return fields

    def _opaque_user(self, user_key: str) -> str:
        """OpenAI's ``user`` wants a stable id for abuse reports, not the platform id
        (a Telegram or Discord id names the person): a keyed hash of it."""
        digest = hmac.new(self._tag_key, user_key.encode(), hashlib.sha256).hexdigest()
        return f"u-{digest[:32]}"

    def _image_ref(self, image: SourceImage) -> str:
        return image.public_url or http.data_url(image)

    def _body(
        self,
        request: ImageRequest,
        size: VendorSize,
        response_format: str | None,
        *,
        streaming: bool,
    ) -> dict[str, Any]:
        """Keyword arguments for ``httpx`` (``json=`` or ``data=`` + ``files=``)."""
        fields = self._fields(request, size, response_format, streaming=streaming)
        if not request.is_edit:
            return {"json": fields}
        shape = self.preset.edit_shape
        if shape == "json_image":
            fields["image"] = self._image_ref(request.sources[0])
            if request.mask is not None:
                fields["mask"] = self._image_ref(request.mask)
            return {"json": fields}
        if shape == "json_images":
            fields["images"] = [{"image_url": self._image_ref(s)} for s in request.sources]
            if request.mask is not None:
                fields["mask"] = {"image_url": self._image_ref(request.mask)}
            return {"json": fields}
        # multipart: every source as image[] (OpenAI's array form), the mask as ``mask``.
        files: list[tuple[str, tuple[str, bytes, str]]] = [
            ("image[]", (f"image_{i}.{s.extension}", s.data, s.mime))
            for i, s in enumerate(request.sources)
        ]
        if request.mask is not None:
            m = request.mask
            files.append(("mask", (f"mask.{m.extension}", m.data, m.mime)))
        data = {k: _form_value(v) for k, v in fields.items()}
        return {"data": data, "files": files}

    # --- the exchange -----------------------------------------------------------------

    async def _exchange(
        self,
        url: str,
        request: ImageRequest,
        size: VendorSize,
        response_format: str | None,
        *,
        streaming: bool,
        on_progress: ProgressCallback | None,
    ) -> ImageResult:
        kwargs = self._body(request, size, response_format, streaming=streaming)
        if streaming:
            assert on_progress is not None
            async with http.send_stream(
                self._client, self.preset, "POST", url, on_create=True, **kwargs
            ) as response:
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" in content_type:
                    return await self._read_stream(response, on_progress)
                # The vendor ignored ``stream``: a plain JSON answer.
                try:
                    await response.aread()
                except httpx.HTTPError as exc:
                    raise VendorUnavailable(
                        f"body lost ({type(exc).__name__})", maybe_billed=True
                    ) from None
                return await self._read_json(response, on_progress)
        response = await http.send(self._client, self.preset, "POST", url, on_create=True, **kwargs)
        return await self._read_json(response, on_progress)

    async def _read_json(
        self, response: httpx.Response, on_progress: ProgressCallback | None
    ) -> ImageResult:
        try:
            body = await sse.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            raise VendorUnavailable(
                f"HTTP {response.status_code}: body is not JSON ({len(response.content)} bytes)",
                maybe_billed=True,
            ) from None
        if not isinstance(body, dict):
            raise VendorUnavailable("answer is not a JSON object", maybe_billed=True)
        items = body.get("data")
        if not isinstance(items, list) or not items:
            if body.get("error"):
                # A 200 carrying an error: nothing was produced.
                raise http.error_for(response, on_create=True, body=body)
            raise VendorUnavailable("answer holds no images", maybe_billed=True)
        blobs = await self._collect(items, on_progress)
        images = await read_outputs(blobs)
        first = items[0] if isinstance(items[0], dict) else {}
        revised = first.get("revised_prompt")
        return ImageResult(
            images=images,
            revised_prompt=revised if isinstance(revised, str) and revised else None,
            usage=parse_usage(body.get("usage")),
            vendor_ref=self._vendor_ref(response, body),
        )

    async def _collect(
        self, items: list[object], on_progress: ProgressCallback | None
    ) -> list[bytes]:
        """Image bytes for each ``data`` item, b64 decoded or downloaded (concurrently)."""
        results: list[bytes | None] = [None] * len(items)
        downloads: list[tuple[int, str]] = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise VendorUnavailable(f"data[{i}] is not an object", maybe_billed=True)
            b64 = item.get("b64_json")
            url = item.get("url")
            if isinstance(b64, str) and b64:
                results[i] = await asyncio.to_thread(_b64decode, b64)
            elif isinstance(url, str) and url:
                downloads.append((i, url))
            else:
                raise VendorUnavailable(
                    f"data[{i}] has neither url nor b64_json", maybe_billed=True
                )
        if downloads:
            await notify(on_progress, Progress(stage="downloading"))
            await self._download_all(downloads, results)
        return [b for b in results if b is not None]

    async def _download_all(
        self, downloads: list[tuple[int, str]], results: list[bytes | None]
    ) -> None:
        async def one(index: int, url: str) -> None:
            results[index] = await http.download(
                self._downloader, url, max_bytes=self._max_download_bytes
            )

        try:
            async with asyncio.TaskGroup() as group:
                for index, url in downloads:
                    group.create_task(one(index, url))
        except BaseExceptionGroup as group_error:
            for exc in group_error.exceptions:
                if isinstance(exc, VendorError):
                    raise exc from None
            raise

    async def _read_stream(
        self, response: httpx.Response, on_progress: ProgressCallback
    ) -> ImageResult:
        finals: list[bytes] = []
        usage: Usage | None = None
        revised: str | None = None
        vendor_ref = self._vendor_ref(response, None)
        # A partial or final b64 image is at most ~4/3 of the download cap.
        limit = self._max_download_bytes * 4 // 3 + 64 * 1024
        try:
            async for event in iter_events(response.aiter_lines(), max_event_chars=limit):
                payload = await event.json_async()
                kind = event_type(event, payload) or ""
                if not isinstance(payload, dict):
                    raise VendorUnavailable("stream event is not an object", maybe_billed=True)
                if (
                    kind == "error"
                    or kind.endswith(".failed")
                    or (
                        payload.get("error") and not kind.endswith((".partial_image", ".completed"))
                    )
                ):
                    raise _stream_error(response, payload)
                if kind.endswith(".partial_image"):
                    b64 = payload.get("b64_json")
                    if not isinstance(b64, str) or not b64:
                        continue
                    data = await asyncio.to_thread(_b64decode, b64)
                    try:
                        image: GeneratedImage = await asyncio.to_thread(read_output, data)
                    except VendorUnavailable:
                        log.warning("%s: unreadable partial image skipped", self.preset.name)
                        continue
                    index = _int(payload.get("partial_image_index"))
                    await notify(
                        on_progress, Progress(stage="partial", partial=Partial(index, image))
                    )
                elif kind.endswith(".completed"):
                    b64 = payload.get("b64_json")
                    url = payload.get("url")
                    if isinstance(b64, str) and b64:
                        finals.append(await asyncio.to_thread(_b64decode, b64))
                    elif isinstance(url, str) and url:
                        finals.append(
                            await http.download(
                                self._downloader, url, max_bytes=self._max_download_bytes
                            )
                        )
                    usage = parse_usage(payload.get("usage")) or usage
                    rp = payload.get("revised_prompt")
                    if isinstance(rp, str) and rp and revised is None:
                        revised = rp
                    vendor_ref = vendor_ref or _str_id(payload.get("id"))
                else:
                    log.debug("%s: stream event %r ignored", self.preset.name, kind)
        except SSEError as exc:
            raise VendorUnavailable(f"broken event stream: {exc}", maybe_billed=True) from None
        except httpx.HTTPError as exc:
            raise VendorUnavailable(
                f"event stream lost ({type(exc).__name__})", maybe_billed=True
            ) from None
        if not finals:
            raise VendorUnavailable("event stream ended without a final image", maybe_billed=True)
        images = await read_outputs(finals)
        return ImageResult(
            images=images, revised_prompt=revised, usage=usage, vendor_ref=vendor_ref
        )

    @staticmethod
    def _vendor_ref(response: httpx.Response, body: dict[str, Any] | None) -> str | None:
        header = response.headers.get("x-request-id") or response.headers.get("request-id")
        if header:
            return header[:200]
        return _str_id(body.get("id")) if body else None


# An error event's ``type``/``code`` -> the HTTP status it would have had.
_STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "invalid_value": 400,
    "image_generation_user_error": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "insufficient_quota": 402,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
}


def _stream_error(response: httpx.Response, payload: dict[str, Any]) -> VendorError:
    """A domain error for an ``error`` event received after the 200 (SSE)."""
    err = payload.get("error", payload)
    err = err if isinstance(err, dict) else {"message": str(err)}
    status = 500
    for key in ("code", "type"):
        value = err.get(key)
        if isinstance(value, str) and value in _STREAM_ERROR_STATUS:
            status = _STREAM_ERROR_STATUS[value]
            break
    synthetic = httpx.Response(status, json={"error": err}, request=response.request)
    return http.error_for(synthetic, on_create=True, body={"error": err})


def _str_id(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value[:200]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

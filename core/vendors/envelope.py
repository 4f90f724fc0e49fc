"""Style 2 (gptimageapi): one synchronous JSON edit call wrapped in a code/data envelope.

``POST {base}/v1/images/edit`` with ``{prompt, image, model, size, quality, n}``
where ``size`` is an aspect ratio and ``image`` is ONE source, as its public URL
when it has one and as a base64 data URL otherwise. The answer is
``{"code": 0, "message": "ok", "data": {"images": [{"url": ...}]}}``.

Error policy:

- HTTP errors are mapped by ``core.vendors.http.send`` / ``error_for`` (402 ->
  out of credits, 401 -> misconfigured, 409/429 -> retried then busy, 5xx ->
  unavailable). The POST is never retried once it may have been billed.
- ``code != 0`` is a failure even under HTTP 200. The ``message`` is matched
  for wording: insufficient balance / 积分不足 -> ``VendorOutOfCredits``; key or
  auth -> ``VendorMisconfigured``; rate limit / busy -> ``VendorBusy``; anything
  else -> ``VendorRejected`` with a short plain reason. Such an answer is treated
  as not billed.
- A 2xx answer we cannot read (not JSON, no ``code``, no image URLs) and a
  result that cannot be downloaded or decoded are ``VendorUnavailable`` with
  ``maybe_billed=True``: the vendor may have produced and charged for images.
- The call is synchronous, so ``resume`` raises ``CannotResume``.

The adapter does not own its HTTP clients: the composition root builds them with
``core.vendors.http.build_client`` / ``build_download_client`` and closes them.

A Telegram file URL carries the bot token: if a source's ``public_url`` looks
like one, the image is sent inline as a data URL instead.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

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
from core.types import ImageRequest, ImageResult, Progress, SourceImage
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

log = logging.getLogger(__name__)

EDIT_PATH = "v1/images/edit"

# Wording of a ``code != 0`` message, checked in this order (lower-cased).
_OUT_OF_CREDITS_WORDS = (
    "insufficient balance",
    "insufficient credit",
    "insufficient fund",
    "insufficient quota",
    "not enough credit",
    "balance",
    "credits",
    "quota",
    "余额",
    "积分不足",
    "额度",
    "欠费",
    "充值",
)
_MISCONFIGURED_WORDS = (
    "api key",
    "api_key",
    "apikey",
    "invalid key",
    "unauthorized",
    "unauthorised",
    "forbidden",
    "authenticat",
    "authoriz",
    "invalid token",
    "token invalid",
    "token expired",
    "鉴权",
    "密钥",
    "认证",
    "未授权",
    "令牌",
)
_BUSY_WORDS = (
    "rate limit",
    "rate-limit",
    "ratelimit",
    "too many",
    "busy",
    "overload",
    "try again later",
    "concurrency",
    "繁忙",
    "限流",
    "频繁",
    "稍后",
    "并发",
)


def envelope_error(code: object, message: object) -> VendorError:
    """The domain error for an envelope answer whose ``code`` is not 0."""
    text = message if isinstance(message, str) else ""
    lowered = text.lower()
    detail = f"envelope code {code!r}: {text[:500]}"
    if code == 402 or any(w in lowered for w in _OUT_OF_CREDITS_WORDS):
        return VendorOutOfCredits(detail)
    if code in (401, 403) or any(w in lowered for w in _MISCONFIGURED_WORDS):
        return VendorMisconfigured(detail)
    if code in (409, 429) or any(w in lowered for w in _BUSY_WORDS):
        return VendorBusy(detail)
    refused = VendorRejected(plain_reason(message), detail=detail)
    if http.is_moderation(str(code), text):
        refused.params["moderation"] = True
    if isinstance(code, int | str) and not isinstance(code, bool):
        refused.params.setdefault("vendor_code", str(code))
    return refused


class EnvelopeVendor:
    """gptimageapi (``gptimageapi``): image edits answered in a code/data envelope."""

    def __init__(
        self,
        preset: Preset,
        *,
        client: httpx.AsyncClient,
        downloader: httpx.AsyncClient,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    ) -> None:
        self.preset = preset
        self._client = client
        self._downloader = downloader
        self._max_download_bytes = max_download_bytes

    def _image_field(self, source: SourceImage) -> str:
        url = source.public_url
        if (
            url
            and url.lower().startswith(("https://", "http://"))
            and not is_telegram_file_url(url)
        ):
            return url
        return http.data_url(source)

    def payload(self, request: ImageRequest) -> dict[str, Any]:
        """The JSON body for ``request``; raises ``Unsupported`` before any call."""
        size = check_request(self.preset, request)
        if not request.sources:
            raise Unsupported(
                f"{self.preset.name} only edits images",
                option="generate",
                value="generate",
                supported="edit",
            )
        return {
            "prompt": request.prompt,
            "image": self._image_field(request.sources[0]),
            "model": self.preset.model,
            "size": size.size,
            "quality": request.quality.value,
            "n": request.n,
        }

    async def run(
        self,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
        on_submitted: SubmittedCallback | None = None,
    ) -> ImageResult:
        payload = self.payload(request)
        await notify(on_progress, Progress(stage="submitted"))
        response = await http.send(
            self._client, self.preset, "POST", EDIT_PATH, on_create=True, json=payload
        )
        body = json_body(response, what="edit")
        code = body.get("code")
        if isinstance(code, str) and code.strip() == "0":
            code = 0
        if code != 0:
            if code is None or isinstance(code, bool) or not isinstance(code, int | str):
                raise VendorUnavailable(
                    f"edit: envelope without a usable code: {str(body)[:300]}",
                    maybe_billed=True,
                )
            raise envelope_error(code, body.get("message") or body.get("msg"))
        urls = self._result_urls(body)
        await notify(on_progress, Progress(stage="downloading"))
        blobs = await download_all(self._downloader, urls, max_bytes=self._max_download_bytes)
        return await decode_results(blobs)

    @staticmethod
    def _result_urls(body: dict[str, Any]) -> list[str]:
        data = body.get("data")
        images = data.get("images") if isinstance(data, dict) else None
        urls: list[str] = []
        if isinstance(images, list):
            for item in images:
                url = item.get("url") if isinstance(item, dict) else None
                if not isinstance(url, str) or not url:
                    urls = []
                    break
                urls.append(url)
        if not urls:
            raise VendorUnavailable(
                f"edit: code 0 but no image URLs: {str(body)[:300]}", maybe_billed=True
            )
        return urls

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

"""Pieces the envelope and async-task adapters share: cleaning a vendor's failure
message for a chat, guarding against Telegram file URLs, reading JSON bodies,
advisory progress, and downloading result URLs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx

from core.errors import VendorError, VendorUnavailable
from core.images import read_outputs
from core.types import ImageResult, Progress
from core.vendors import http
from core.vendors.base import ProgressCallback

log = logging.getLogger(__name__)

DEFAULT_MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
_REASON_MAX_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s+")
_TAGS = re.compile(r"<[^>]{0,200}>")


def plain_reason(message: object, *, fallback: str = "the vendor refused the request") -> str:
    """A vendor's failure message reduced to one short plain line fit for a chat:
    no markup, no control characters, at most ``_REASON_MAX_CHARS`` characters."""
    if not isinstance(message, str):
        return fallback
    text = _TAGS.sub(" ", message)
    text = _CONTROL.sub(" ", text)
    text = http.redact(_SPACES.sub(" ", text).strip().strip("`*_"))
    if not text:
        return fallback
    if len(text) > _REASON_MAX_CHARS:
        text = text[: _REASON_MAX_CHARS - 1].rstrip() + "…"
    return text


def is_telegram_file_url(url: str) -> bool:
    """A URL that would hand the bot token to whoever receives it."""
    lowered = url.lower()
    return "/file/bot" in lowered or "api.telegram.org" in lowered


def json_body(response: httpx.Response, *, what: str) -> dict[str, Any]:
    """A 2xx body that must be a JSON object; anything else is a broken vendor
    that may already have billed the call."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise VendorUnavailable(
            f"{what}: body is not JSON ({response.text[:200]!r})", maybe_billed=True
        ) from None
    if not isinstance(body, dict):
        raise VendorUnavailable(f"{what}: body is not a JSON object", maybe_billed=True)
    return body


async def notify(on_progress: ProgressCallback | None, progress: Progress) -> None:
    """Progress is advisory: a failing callback (a chat edit that was rate limited)
    must not lose a job the vendor is already producing."""
    if on_progress is None:
        return
    try:
        await on_progress(progress)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("progress callback failed", exc_info=True)


async def download_all(
    downloader: httpx.AsyncClient, urls: list[str], *, max_bytes: int
) -> list[bytes]:
    """Fetch every result concurrently; a failure cancels the rest. Every error is
    ``maybe_billed``: the vendor already produced these images."""

    async def one(url: str) -> bytes:
        try:
            return await http.download(downloader, url, max_bytes=max_bytes)
        except VendorError as exc:
            exc.maybe_billed = True
            raise
        except (httpx.HTTPError, ValueError) as exc:
            raise VendorUnavailable(
                f"downloading a result failed: {exc!r}", maybe_billed=True
            ) from exc

    tasks = [asyncio.ensure_future(one(u)) for u in urls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def decode_results(blobs: list[bytes]) -> ImageResult:
    images = await read_outputs(blobs)
    return ImageResult(images=images)

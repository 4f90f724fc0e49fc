"""HTTP plumbing shared by every vendor adapter: clients, the retry policy, the
status -> domain error table, bounded downloads and log redaction.

RETRY POLICY
============

The rule is "retry only what cannot have been billed".

* Connection errors that happened BEFORE the request was sent
  (``httpx.ConnectError``, ``httpx.ConnectTimeout``, ``httpx.PoolTimeout``) are
  retried, with a short exponential back-off, at most ``preset.max_retries``
  times; after that ``VendorUnavailable(maybe_billed=False)``. Every wait is
  jittered (see ``_backoff``) so jobs that failed together do not retry together.
* 429 and 409 (rate limited / too many active tasks) mean the vendor refused the
  work, so they are retried, honouring ``Retry-After`` (delta seconds or an HTTP
  date). Each wait is capped at ``preset.retry_after_cap``; at most
  ``preset.max_retries`` retries, then ``VendorBusy``.
* 5xx answers, read timeouts and connections dropped after a POST was sent are
  NOT retried: the vendor may already have produced (and billed) the images.
  They end in ``VendorUnavailable(maybe_billed=True)``.
* Idempotent requests (``idempotent=True``: GETs such as task polling) may also
  retry 5xx answers, read timeouts and dropped connections, under the same
  ``max_retries`` bound and back-off.
* Everything else (4xx) is final and mapped by :func:`error_for`.

The API key travels only in the ``Authorization`` header of the client built by
:func:`build_client`; it never appears in a URL. Result images are fetched with
the separate client from :func:`build_download_client`, which carries no
credentials, because result CDNs are other hosts.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from core import redaction
from core.errors import (
    VendorBusy,
    VendorError,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.fetch_guard import GuardedTransport, PublicOnlyResolver
from core.http_transport import AiohttpTransport
from core.types import SourceImage
from core.vendors.preset import Preset

log = logging.getLogger(__name__)

__all__ = [
    "MODERATION_CODES",
    "RedactingFilter",
    "build_client",
    "build_download_client",
    "data_url",
    "download",
    "error_for",
    "error_message",
    "parse_retry_after",
    "quiet_http_loggers",
    "redact",
    "send",
    "send_stream",
]

# Error codes vendors use for a refused prompt or image.
MODERATION_CODES = frozenset(
    {
        "moderation_blocked",
        "content_policy_violation",
        "content_filter",
        "content_policy",
        "safety_violation",
        "image_generation_user_error",
    }
)
MODERATION_REASON = "The request was blocked by the image service's content policy."

# Failures that happened before any byte of the request reached the vendor.
_PRE_SEND_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
_BUSY_STATUSES = frozenset({409, 429})
_DETAIL_LIMIT = 500
_REASON_LIMIT = 200
_BACKOFF_BASE = 0.5


# --- clients ------------------------------------------------------------------------


def build_client(
    preset: Preset,
    *,
    api_key: str,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The authenticated client for one vendor; relative URLs join ``preset.base_url``."""
    return httpx.AsyncClient(
        base_url=preset.base_url,
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        timeout=httpx.Timeout(
            connect=preset.connect_timeout,
            read=preset.request_timeout,
            write=60.0,
            pool=preset.request_timeout,
        ),
        transport=transport or AiohttpTransport(max_connections),
        follow_redirects=False,
    )


def build_download_client(
    *, max_connections: int = 100, timeout: float = 60, allow_hosts: Iterable[str] = ()
) -> httpx.AsyncClient:
    """A credential-free client for URLs others chose (vendor result links, images given
    by URL): other hosts never see the key, and only public addresses are reached
    except ``allow_hosts`` (see ``core.fetch_guard``)."""
    allow = tuple(allow_hosts)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        transport=GuardedTransport(
            AiohttpTransport(max_connections, resolver=PublicOnlyResolver(allow)), allow
        ),
        follow_redirects=True,
        max_redirects=5,
        headers={"Accept-Encoding": "identity"},
    )


# --- the retry policy -----------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _equal_jitter(wait: float) -> float:
    """Half the wait fixed, half at random: calls that failed at the same moment
    (a burst of jobs meeting one outage) spread their retries instead of coming
    back in lockstep, and none comes back sooner than half the wait."""
    return wait / 2 + random.uniform(0, wait / 2)


def _backoff(preset: Preset, attempt: int) -> float:
    """Exponential back-off with equal jitter, never above ``retry_after_cap``."""
    return _equal_jitter(min(_BACKOFF_BASE * (2**attempt), preset.retry_after_cap))


def _busy_wait(preset: Preset, response: httpx.Response, attempt: int) -> float:
    """What ``Retry-After`` asks for plus a random extra of up to half of it (of the
    base back-off when that is longer), within the cap; a Retry-After at or beyond the
    cap gets the cap with equal jitter; without one, the exponential back-off."""
    cap = preset.retry_after_cap
    advised = parse_retry_after(response.headers.get("Retry-After"))
    if advised is None:
        return _backoff(preset, attempt)
    if advised >= cap:
        return _equal_jitter(cap)
    spread = max(advised, _BACKOFF_BASE) / 2
    return min(cap, advised + random.uniform(0, spread))


# httpx parses a string URL and merges it onto base_url on every request, in pure
# Python (about 0.1 ms); endpoint paths repeat, so each is resolved once per base.
_ENDPOINTS: dict[tuple[str, str], httpx.URL] = {}
_ENDPOINTS_MAX = 1024


def _resolved(client: httpx.AsyncClient, url: str) -> str | httpx.URL:
    if "://" in url:
        return url
    key = (str(client.base_url), url)
    found = _ENDPOINTS.get(key)
    if found is None:
        if len(_ENDPOINTS) >= _ENDPOINTS_MAX:  # task ids make some paths unique
            _ENDPOINTS.clear()
        found = _ENDPOINTS[key] = client.build_request("GET", url).url
    return found


async def _send_once(
    client: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, Any]
) -> httpx.Response:
    request = client.build_request(method, _resolved(client, url), **kwargs)
    return await client.send(request, stream=True)


async def _send_raw(
    client: httpx.AsyncClient,
    preset: Preset,
    method: str,
    url: str,
    *,
    idempotent: bool,
    on_create: bool,
    kwargs: dict[str, Any],
) -> httpx.Response:
    """Apply the retry policy; return an OPEN 2xx response (body not yet read)."""
    method = method.upper()
    safe = idempotent or method in ("GET", "HEAD", "OPTIONS")
    attempt = 0
    while True:
        try:
            response = await _send_once(client, method, url, kwargs)
        except _PRE_SEND_ERRORS as exc:
            if attempt < preset.max_retries:
                wait = _backoff(preset, attempt)
                log.info(
                    "%s %s: %s before sending; retry in %.1fs",
                    method,
                    url,
                    type(exc).__name__,
                    wait,
                )
                attempt += 1
                await asyncio.sleep(wait)
                continue
            raise VendorUnavailable(
                f"{method} {url}: could not connect ({type(exc).__name__})", maybe_billed=False
            ) from None
        except httpx.TransportError as exc:
            # The request may have reached the vendor (read timeout, dropped connection).
            if safe and attempt < preset.max_retries:
                wait = _backoff(preset, attempt)
                attempt += 1
                await asyncio.sleep(wait)
                continue
            billed = not safe and not isinstance(exc, httpx.WriteTimeout | httpx.WriteError)
            kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection lost"
            raise VendorUnavailable(
                f"{method} {url}: {kind} ({type(exc).__name__})", maybe_billed=billed
            ) from None

        if response.is_success:
            return response

        # Read the (small) error body, then decide.
        try:
            await response.aread()
        except httpx.HTTPError:
            pass
        finally:
            await response.aclose()
        status = response.status_code
        if status in _BUSY_STATUSES and attempt < preset.max_retries:
            wait = _busy_wait(preset, response, attempt)
            log.info(
                "%s %s: HTTP %d; retry %d/%d in %.2fs",
                method,
                url,
                status,
                attempt + 1,
                preset.max_retries,
                wait,
            )
            attempt += 1
            await asyncio.sleep(wait)
            continue
        if status >= 500 and safe and attempt < preset.max_retries:
            wait = _backoff(preset, attempt)
            attempt += 1
            await asyncio.sleep(wait)
            continue
        raise error_for(response, on_create=on_create)


async def send(
    client: httpx.AsyncClient,
    preset: Preset,
    method: str,
    url: str,
    *,
    idempotent: bool = False,
    on_create: bool = True,
    **kwargs: Any,
) -> httpx.Response:
    """Send with the retry policy; return a 2xx response with its body read, or raise
    the mapped ``VendorError``. ``kwargs`` go to ``httpx.AsyncClient.build_request``."""
    response = await _send_raw(
        client, preset, method, url, idempotent=idempotent, on_create=on_create, kwargs=kwargs
    )
    try:
        await response.aread()
    except httpx.HTTPError as exc:
        safe = idempotent or method.upper() == "GET"
        raise VendorUnavailable(
            f"{method.upper()} {url}: body lost ({type(exc).__name__})", maybe_billed=not safe
        ) from None
    finally:
        await response.aclose()
    return response


@asynccontextmanager
async def send_stream(
    client: httpx.AsyncClient,
    preset: Preset,
    method: str,
    url: str,
    *,
    idempotent: bool = False,
    on_create: bool = True,
    **kwargs: Any,
) -> AsyncIterator[httpx.Response]:
    """Like :func:`send` but yields the 2xx response unread (for server-sent events);
    the response is closed on exit."""
    response = await _send_raw(
        client, preset, method, url, idempotent=idempotent, on_create=on_create, kwargs=kwargs
    )
    try:
        yield response
    finally:
        await response.aclose()


# --- status -> domain error -------------------------------------------------------------


def _json_body(response: httpx.Response) -> object | None:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        return None


def _error_fields(body: object) -> tuple[str | None, str | None]:
    """(message, code) from ``{"error": {...}}``, ``{"error": "..."}``, ``{"message"}``
    or ``{"msg"}`` bodies."""
    if not isinstance(body, dict):
        return None, None
    message: object = None
    code: object = None
    err = body.get("error")
    if isinstance(err, dict):
        message = err.get("message") or err.get("msg")
        code = err.get("code") or err.get("type")
    elif isinstance(err, str):
        message = err
    if not message:
        message = body.get("message") or body.get("msg") or body.get("failMsg")
    if code is None:
        code = body.get("code")
    msg = message if isinstance(message, str) and message.strip() else None
    code_s = str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None
    return msg, code_s


def error_message(body: object) -> str | None:
    """The vendor's own error message, if the body carries one."""
    return _error_fields(body)[0]


def _plain(message: str | None) -> str | None:
    """A vendor message fit to show a user: one short line, never markup or JSON."""
    if not message:
        return None
    text = " ".join(message.split())
    if not text or text[0] in "{[<":
        return None
    text = redact(text)
    if len(text) > _REASON_LIMIT:
        text = text[: _REASON_LIMIT - 1].rstrip() + "…"
    return text


def _truncated(text: str) -> str:
    text = redact(text)
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "…[truncated]"


def is_moderation(code: str | None, message: str | None = None) -> bool:
    if code and code.lower() in MODERATION_CODES:
        return True
    return bool(message and "safety system" in message.lower())


def error_for(
    response: httpx.Response, *, on_create: bool, body: object | None = None
) -> VendorError:
    """Map a non-2xx answer (or a 2xx carrying an error ``body``) to a domain error.

    Table: moderation codes (``moderation_blocked``, ``content_policy_violation``, ...)
    -> ``VendorRejected`` with a friendly reason; 400/422 (and other 4xx, and a 2xx
    error body) -> ``VendorRejected`` with the vendor's message in plain words;
    401/403/3xx -> ``VendorMisconfigured``; 404 -> ``VendorMisconfigured`` on create,
    ``VendorUnavailable`` on a poll (unknown task); 402 -> ``VendorOutOfCredits``;
    409/429 -> ``VendorBusy``; 5xx -> ``VendorUnavailable(maybe_billed=<POST>)``.

    ``detail`` quotes a truncated, redacted body for logs; ``reason`` is a short plain
    sentence, never the raw body. ``params`` gains ``status`` and, when the body has
    one, ``vendor_code`` (e.g. ``image_url_not_available``) for adapters to act on.
    """
    status = response.status_code
    try:
        method, path = response.request.method, response.request.url.path
    except RuntimeError:  # a Response built by hand has no request
        method, path = "?", "?"
    if body is None:
        body = _json_body(response)
    try:
        raw = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        raw = ""
    detail = f"HTTP {status} {method} {path}: {_truncated(raw)}"
    message, code = _error_fields(body)
    plain = _plain(message)

    error = _map_status(status, method, detail, plain, code, message, on_create=on_create)
    # For adapters that special-case a vendor code (e.g. ``image_url_not_available``).
    error.params.setdefault("status", status)
    if code is not None:
        error.params.setdefault("vendor_code", code)
    return error


def _map_status(
    status: int,
    method: str,
    detail: str,
    plain: str | None,
    code: str | None,
    message: str | None,
    *,
    on_create: bool,
) -> VendorError:
    if is_moderation(code, message):
        refused = VendorRejected(MODERATION_REASON, detail=detail)
        refused.params["moderation"] = True
        return refused
    if status in (400, 422) or (200 <= status < 300):
        reason = plain or f"The image service rejected the request (HTTP {status})."
        return VendorRejected(reason, detail=detail)
    if status in (401, 403) or 300 <= status < 400:
        # 3xx: redirects are not followed (they would drop or leak the key); the
        # configured base URL is wrong (http vs https, a moved host).
        return VendorMisconfigured(detail)
    if status == 404:
        if on_create:
            return VendorMisconfigured(detail)
        return VendorUnavailable(detail + " (unknown task)", maybe_billed=True)
    if status == 402:
        return VendorOutOfCredits(detail)
    if status in _BUSY_STATUSES:
        return VendorBusy(detail)
    if status >= 500:
        return VendorUnavailable(detail, maybe_billed=method == "POST")
    if 400 <= status < 500:
        # Other client errors (405, 413, 415, ...): our request is wrong for this vendor.
        reason = plain or f"The image service rejected the request (HTTP {status})."
        return VendorRejected(reason, detail=detail)
    return VendorUnavailable(detail, maybe_billed=method == "POST")


# --- downloads ----------------------------------------------------------------------------


async def download(client: httpx.AsyncClient, url: str, *, max_bytes: int) -> bytes:
    """Fetch a result image with the credential-free client; abort above ``max_bytes``.

    Every failure is ``VendorUnavailable(maybe_billed=True)``: the image exists and
    was billed, we just cannot get it.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise VendorUnavailable("result URL is not a URL", maybe_billed=True) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise VendorUnavailable(
            f"result URL has scheme {parsed.scheme!r}", maybe_billed=True
        ) from None
    where = f"{parsed.scheme}://{parsed.host}{parsed.path}"  # no query: it may hold a token
    last: str = ""
    for attempt in range(2):  # one retry for a transport hiccup or 5xx (GET is idempotent)
        try:
            async with client.stream("GET", url) as response:
                if response.status_code >= 500 and attempt == 0:
                    last = f"HTTP {response.status_code}"
                    continue
                if not response.is_success:
                    raise VendorUnavailable(
                        f"download {where}: HTTP {response.status_code}", maybe_billed=True
                    )
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise VendorUnavailable(
                        f"download {where}: {declared} bytes > {max_bytes}", maybe_billed=True
                    )
                chunks: list[bytes] = []
                total = 0
                # Raw: a compressed body is never inflated past the cap.
                async for chunk in response.aiter_raw():
                    total += len(chunk)
                    if total > max_bytes:
                        raise VendorUnavailable(
                            f"download {where}: more than {max_bytes} bytes", maybe_billed=True
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            last = type(exc).__name__
            if attempt == 0:
                await asyncio.sleep(0.2)
                continue
    raise VendorUnavailable(f"download {where}: {last}", maybe_billed=True)


def data_url(image: SourceImage) -> str:
    """``data:image/png;base64,...`` for vendors that take inline images."""
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


# --- logging --------------------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with bearer tokens, ``sk-`` keys, bot tokens and every configured
    secret scrubbed (see ``core.redaction``)."""
    return redaction.redact(text)


# Kept for callers that attach it themselves; the one filter lives in core.redaction.
RedactingFilter = redaction.SecretFilter


def quiet_http_loggers() -> None:
    """httpx logs every URL at INFO (Telegram URLs carry the bot token): keep it quiet."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)

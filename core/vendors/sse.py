"""An incremental server-sent events parser (the WHATWG ``text/event-stream`` rules),
fed line by line so a long stream is never buffered whole.

Vendors differ: some send ``event:`` lines, some only ``data:`` lines whose JSON
carries a ``type``; :func:`event_type` gives the type either way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

# Events carrying base64 images run to megabytes; parsing those would stall the loop.
_INLINE_JSON_LIMIT = 256 * 1024


async def loads(data: str | bytes) -> object:
    """``json.loads``, in a thread for big documents."""
    if len(data) > _INLINE_JSON_LIMIT:
        return await asyncio.to_thread(json.loads, data)
    return json.loads(data)


class SSEError(ValueError):
    """The stream broke the rules we rely on (an event too large, bad JSON)."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> object:
        try:
            return json.loads(self.data)
        except ValueError as exc:
            raise SSEError(f"event data is not JSON ({len(self.data)} chars)") from exc

    async def json_async(self) -> object:
        """``json()`` off the event loop when the event is big (a base64 image)."""
        try:
            return await loads(self.data)
        except ValueError as exc:
            raise SSEError(f"event data is not JSON ({len(self.data)} chars)") from exc


def event_type(event: SSEEvent, payload: object) -> str | None:
    """The event's type: the JSON ``type`` when present, else the ``event:`` field."""
    if isinstance(payload, dict):
        kind = payload.get("type")
        if isinstance(kind, str) and kind:
            return kind
    if event.event and event.event != "message":
        return event.event
    return None


class SSEParser:
    """Feed lines (without their terminator) with :meth:`feed`; it returns an event
    when a blank line completes one. :meth:`flush` returns a pending event at EOF."""

    def __init__(self, *, max_event_chars: int = 128 * 1024 * 1024) -> None:
        self._max = max_event_chars
        self._event: str | None = None
        self._data: list[str] = []
        self._size = 0
        self._id: str | None = None
        self._retry: int | None = None
        self._has_data = False

    def feed(self, line: str) -> SSEEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment / keep-alive
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
            self._size += len(value) + 1
            if self._size > self._max:
                raise SSEError(f"event larger than {self._max} characters")
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        # Unknown fields are ignored, as the spec says.
        return None

    def flush(self) -> SSEEvent | None:
        """At end of stream: the last event if its blank line never came (lenient)."""
        return self._dispatch()

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            # An event with no data is dropped, but its type must not leak forward.
            self._event = None
            self._retry = None
            return None
        event = SSEEvent(
            event=self._event, data="\n".join(self._data), id=self._id, retry=self._retry
        )
        self._event = None
        self._data = []
        self._size = 0
        self._retry = None
        self._has_data = False
        return event


async def iter_events(
    lines: AsyncIterable[str], *, max_event_chars: int = 128 * 1024 * 1024
) -> AsyncIterator[SSEEvent]:
    """Events from an async iterable of lines, e.g. ``response.aiter_lines()``.

    The ``[DONE]`` sentinel some servers send is skipped.
    """
    parser = SSEParser(max_event_chars=max_event_chars)
    async for line in lines:
        event = parser.feed(line)
        if event is not None and event.data.strip() != "[DONE]":
            yield event
    event = parser.flush()
    if event is not None and event.data.strip() != "[DONE]":
        yield event

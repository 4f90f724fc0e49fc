"""python-telegram-bot's transport over aiohttp instead of httpx.

Every Bot API call through httpx goes through httpcore, anyio and h11, which are
pure Python; aiohttp's C parser does the same work for a fraction of the CPU (the
figures are in docs/performance.md), and a job makes three or four calls (status,
result, cleanup).
aiohttp is already here for discord.py. PTB documents ``BaseRequest`` as the
extension point for exactly this.
"""

from __future__ import annotations

import uuid
from typing import IO, Any

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


def _value(given: ODVInput[float], default: float | None) -> float | None:
    return default if isinstance(given, DefaultValue) else given


# As browsers and httpx do (HTML5 form encoding): a quote or line break in a name
# must not end the header value.
_FORM_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


class FormBody(Payload):
    """A multipart/form-data body written piece by piece: the file bytes are sent as
    they are, never joined into a copy.

    aiohttp's ``FormData`` builds a header multidict and quotes every field through
    its generic machinery, about a millisecond per upload here, which at hundreds of
    result photos a second was a tenth of the bot's CPU. Bot API forms are simple:
    text fields plus files."""

    def __init__(
        self, fields: dict[str, str], files: dict[str, tuple[str, bytes | IO[bytes], str]]
    ) -> None:
        boundary = uuid.uuid4().hex
        pieces: list[bytes] = []
        for name, value in fields.items():
            pieces.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{_escape(name)}"'
                f"\r\n\r\n{value}\r\n".encode()
            )
        for name, (filename, content, mimetype) in files.items():
            pieces.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{_escape(name)}"; '
                f'filename="{_escape(filename)}"\r\nContent-Type: {mimetype}\r\n\r\n'.encode()
            )
            # PTB reads InputFile objects into bytes; a stream is read here all the same.
            pieces.append(content if isinstance(content, bytes) else content.read())
            pieces.append(b"\r\n")
        pieces.append(f"--{boundary}--\r\n".encode())
        super().__init__(pieces, content_type=f"multipart/form-data; boundary={boundary}")
        self._pieces = pieces
        self._size = sum(len(piece) for piece in pieces)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self._pieces).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        for piece in self._pieces:
            await writer.write(piece)


def _escape(text: str) -> str:
    return text.translate(_FORM_ESCAPES)


class AiohttpRequest(BaseRequest):
    def __init__(
        self,
        *,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        data: Any = fields
        write_default = self._media_write_timeout if files else self._write_timeout
        if files:
            data = FormBody(fields or {}, files)
        # aiohttp has no separate write timeout: the socket-read timeout starts once
        # the body is sent, so the total bounds the upload with the read.
        read = _value(read_timeout, self._read_timeout)
        write = _value(write_timeout, write_default)
        total = None if read is None or write is None else read + write
        pool = _value(pool_timeout, self._pool_timeout)
        connect = _value(connect_timeout, self._connect_timeout)
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err

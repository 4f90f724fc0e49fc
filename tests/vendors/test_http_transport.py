"""The aiohttp-backed httpx transport: what reaches the server, and which httpx error
each network failure becomes (the retry policy depends on that split)."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from core.http_transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A bare TCP server on 127.0.0.1; yields its URL."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader, seen: list[bytes]) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length)
    seen.append(head + body)
    return head


def client(url: str, **timeouts: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        transport=AiohttpTransport(4),
        timeout=httpx.Timeout(**({"timeout": 5.0} | timeouts)),
        headers={"Authorization": "Bearer sk-test"},
    )


async def test_requests_reuse_connections_and_uploads_carry_a_length() -> None:
    connections = 0
    requests: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            await read_request(reader, requests)
            body = gzip.compress(b'{"ok": true}')
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
            )
            await writer.drain()

    async with raw_server(handler) as url, client(url) as http:
        first = await http.post("v1/images/generations", json={"prompt": "a fox"})
        assert first.status_code == 200 and first.json() == {"ok": True}  # gzip decoded
        upload = await http.post(
            "v1/images/edits",
            data={"prompt": "make it blue"},
            files={"image": ("a.png", b"\x89PNG" + b"x" * 70_000, "image/png")},
        )
        assert upload.status_code == 200
    assert connections == 1
    head, _, body = requests[1].partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"content-length: %d" % len(body) in head.lower()
    assert b"multipart/form-data; boundary=" in head
    assert b"x" * 70_000 in body
    assert b"authorization: bearer sk-test" in requests[0].lower()


async def test_a_streamed_answer_arrives_piece_by_piece() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, [])
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        writer.write(b"6\r\ndata:1\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await writer.drain()

    async with (
        raw_server(handler) as url,
        client(url) as http,
        http.stream("POST", "v1/stream", json={}) as response,
    ):
        chunks = response.aiter_bytes()
        assert await anext(chunks) == b"data:1"
        release.set()
        assert b"".join([c async for c in chunks]) == b"data:2"


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("v1/models")


async def test_a_full_pool_times_out_as_a_connect_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, [])
        await reader.read()  # busy until the client hangs up

    async with (
        raw_server(handler) as url,
        httpx.AsyncClient(
            base_url=url,
            transport=AiohttpTransport(1),
            timeout=httpx.Timeout(5.0, connect=0.2, pool=0.2),
        ) as http,
    ):
        busy = asyncio.create_task(http.get("v1/slow"))
        await asyncio.sleep(0.1)
        # Never sent: the retry policy may safely try again.
        with pytest.raises(httpx.ConnectTimeout):
            await http.get("v1/other")
        busy.cancel()


async def test_a_silent_server_is_a_read_timeout() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, seen)
        await reader.read()  # silent until the client gives up and closes

    async with raw_server(handler) as url, client(url, read=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("v1/images/generations", json={"prompt": "x"})
        assert len(seen) == 1  # it was sent: possibly billed


async def test_a_dropped_connection_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, [])

    async with raw_server(handler) as url, client(url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("v1/images/generations", json={"prompt": "x"})


async def test_a_truncated_body_is_a_read_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, [])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with raw_server(handler) as url, client(url) as http:
        with pytest.raises(httpx.ReadError):
            response = await http.get("v1/file")
            response.read()


async def test_garbage_instead_of_http_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, [])
        writer.write(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as url, client(url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("v1/models")


async def test_an_abandoned_body_does_not_leak_into_the_next_answer() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader, [])
            body = b"x" * 200_000 if b"/big" in head else b"small"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

    async with raw_server(handler) as url, client(url) as http:
        async with http.stream("GET", "v1/big") as response:
            async for _ in response.aiter_bytes():
                break  # over a size cap: stop reading
        small = await http.get("v1/small")
        assert small.content == b"small"


async def test_redirects_are_followed_by_httpx() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader, [])
            if b"/old" in head:
                writer.write(b"HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew")
            await writer.drain()

    async with (
        raw_server(handler) as url,
        httpx.AsyncClient(transport=AiohttpTransport(2), follow_redirects=True) as http,
    ):
        response = await http.get(f"{url}/old")
        assert response.content == b"new"
        assert [r.status_code for r in response.history] == [302]

"""Tests of the fake vendors themselves, driven with plain httpx over real sockets."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from . import images as imgs
from .vendor_base import Fault
from .vendor_envelope import FakeEnvelopeVendor
from .vendor_openai import FakeOpenAIVendor, validator
from .vendor_tasks import FakeTaskVendor

KEY = "sk-test"
AUTH = {"Authorization": f"Bearer {KEY}"}
REPO_ROOT = Path(__file__).resolve().parents[2]


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def decode(data: bytes) -> tuple[str, int, int]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return (im.format or "").lower(), im.width, im.height


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def _openai(flavor: str) -> FakeOpenAIVendor:
    return await FakeOpenAIVendor(flavor=flavor, key=KEY).start()


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAIVendor]:
    fake = await _openai("openai")
    yield fake
    await fake.stop()


@pytest.fixture
async def sizes_fake() -> AsyncIterator[FakeOpenAIVendor]:
    fake = await _openai("compat-sizes")
    yield fake
    await fake.stop()


@pytest.fixture
async def b64_fake() -> AsyncIterator[FakeOpenAIVendor]:
    fake = await _openai("compat-b64")
    yield fake
    await fake.stop()


@pytest.fixture
async def aiearth_fake() -> AsyncIterator[FakeOpenAIVendor]:
    fake = await _openai("aiearth")
    yield fake
    await fake.stop()


@pytest.fixture
async def envelope_fake() -> AsyncIterator[FakeEnvelopeVendor]:
    fake = await FakeEnvelopeVendor(key=KEY).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def tasks_fake() -> AsyncIterator[FakeTaskVendor]:
    fake = await FakeTaskVendor(key=KEY).start()
    yield fake
    await fake.stop()


async def gen(c: httpx.AsyncClient, fake: FakeOpenAIVendor, **body: Any) -> httpx.Response:
    body.setdefault("prompt", "a blue glass sphere")
    return await c.post(
        f"{fake.base_url.removesuffix('/v1')}/v1/images/generations", json=body, headers=AUTH
    )


async def edit(c: httpx.AsyncClient, fake: FakeOpenAIVendor, **kw: Any) -> httpx.Response:
    return await c.post(f"{fake.base_url.removesuffix('/v1')}/v1/images/edits", headers=AUTH, **kw)


def err_code(r: httpx.Response) -> str | None:
    code: str | None = r.json()["error"]["code"]
    return code


# ----- images helpers ---------------------------------------------------------------
def test_image_helpers() -> None:
    assert decode(imgs.png_bytes(30, 20)) == ("png", 30, 20)
    assert decode(imgs.jpeg_bytes(30, 20)) == ("jpeg", 30, 20)
    assert decode(imgs.webp_bytes(30, 20)) == ("webp", 30, 20)
    assert decode(imgs.gif_bytes(30, 20)) == ("gif", 30, 20)
    with pytest.raises(Exception):  # noqa: B017 - any Pillow error
        decode(imgs.not_an_image())
    bomb = imgs.decompression_bomb_png()
    assert len(bomb) < 300_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))


# ----- auth -------------------------------------------------------------------------
async def test_auth_required_and_key_not_echoed(
    openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    url = f"{openai_fake.base_url}/v1/images/generations"
    r = await client.post(url, json={"prompt": "x"})
    assert r.status_code == 401 and err_code(r) == "invalid_api_key"
    r = await client.post(
        url, json={"prompt": "x"}, headers={"Authorization": "Bearer sk-wrong-secret"}
    )
    assert r.status_code == 401 and "sk-wrong-secret" not in r.text
    assert openai_fake.billed == []
    r = await client.post(f"{openai_fake.base_url}/v1/images/generation", json={}, headers=AUTH)
    assert r.status_code == 404


# ----- openai flavor ----------------------------------------------------------------
async def test_openai_generation_is_schema_valid_b64(
    openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    r = await gen(
        client,
        openai_fake,
        model="gpt-image-2",
        size="1536x1024",
        quality="low",
        n=2,
        output_format="jpeg",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    validator("ImagesResponse").validate(body)
    assert len(body["data"]) == 2
    assert decode(base64.b64decode(body["data"][0]["b64_json"])) == ("jpeg", 1536, 1024)
    assert body["usage"]["output_tokens"] == 2 * 408
    assert [(b.images, b.size, b.quality) for b in openai_fake.billed] == [(2, "1536x1024", "low")]
    rec = openai_fake.requests[-1]
    assert rec.json is not None and rec.json["n"] == 2 and rec.headers["Authorization"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"response_format": "url"}, "response_format"),
        ({"size": "1000x1000"}, "size"),
        ({"size": "4096x1024"}, "size"),
        ({"n": 11}, "n"),
        ({"quality": "ultra"}, "quality"),
        ({"partial_images": 4}, "partial_images"),
        ({"background": "transparent", "output_format": "jpeg"}, "background"),
    ],
)
async def test_openai_rejects(
    openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    r = await gen(client, openai_fake, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert openai_fake.billed == []


async def test_openai_custom_size_and_multipart_edit(
    openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    r = await gen(client, openai_fake, size="1536x864")
    assert r.status_code == 200
    assert decode(base64.b64decode(r.json()["data"][0]["b64_json"]))[1:] == (1536, 864)
    files = [
        ("image[]", ("a.png", imgs.png_bytes(80, 60), "image/png")),
        ("image[]", ("b.jpg", imgs.jpeg_bytes(60, 60), "image/jpeg")),
        ("mask", ("m.png", imgs.mask_png(80, 60), "image/png")),
    ]
    r = await edit(
        client,
        openai_fake,
        data={"prompt": "basket", "model": "gpt-image-2", "input_fidelity": "high"},
        files=files,
    )
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["input_tokens_details"]["image_tokens"] == 2 * 323
    rec = openai_fake.requests[-1]
    assert rec.form is not None and rec.form["prompt"] == "basket"
    assert [f[0] for f in rec.files] == ["image[]", "image[]", "mask"]


# ----- compat-sizes (compat-sizes) ------------------------------------------------------
async def test_sizes_happy_url_default(
    sizes_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    r = await gen(
        client,
        sizes_fake,
        model="gpt-image-2",
        size="1536x864",
        quality="low",
        output_format="webp",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"created", "data"}
    url = body["data"][0]["url"]
    img = await client.get(url)  # no auth: CDN-like
    assert img.headers["content-type"] == "image/webp"
    assert decode(img.content) == ("webp", 1536, 864)
    assert sizes_fake.billed[0].quality == "low"
    r = await gen(
        client, sizes_fake, model="gpt-image-2", size="1024x1024", response_format="b64_json"
    )
    assert "b64_json" in r.json()["data"][0]
    assert sizes_fake.billed[1].quality == "medium"  # seed default


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "size"),
        ({"size": "1024x1536"}, "size"),
        ({"size": "1024x1024", "aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"size": "1024x1024", "quality": "auto"}, "quality"),
        ({"size": "1024x1024", "n": 9}, "n"),
        ({"size": "1024x1024", "n": 0}, "n"),
        ({"size": "1024x1024", "model": "gpt-image-1"}, "model"),
    ],
)
async def test_sizes_rejects(
    sizes_fake: FakeOpenAIVendor, client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    body.setdefault("model", "gpt-image-2")
    r = await gen(client, sizes_fake, **body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


async def test_sizes_json_edit_data_and_http_urls(
    sizes_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    common = {"model": "gpt-image-2", "prompt": "studio", "size": "1024x1024"}
    r = await edit(client, sizes_fake, json={**common, "image": data_url(imgs.png_bytes())})
    assert r.status_code == 200, r.text
    public = sizes_fake.publish(imgs.jpeg_bytes(), "jpg")
    r = await edit(client, sizes_fake, json={**common, "image": public})
    assert r.status_code == 200, r.text
    r = await edit(client, sizes_fake, json={**common, "images": [public, {"image_url": public}]})
    assert r.status_code == 200, r.text
    bad = sizes_fake.publish(imgs.not_an_image(), "png")
    r = await edit(client, sizes_fake, json={**common, "image": bad})
    assert r.status_code == 400 and err_code(r) == "invalid_image_url"
    r = await edit(
        client, sizes_fake, json={**common, "image": data_url(imgs.gif_bytes(), "image/gif")}
    )
    assert r.status_code == 400
    r = await edit(
        client, sizes_fake, data=common, files=[("image", ("a.png", imgs.png_bytes(), "image/png"))]
    )
    assert r.status_code == 400 and err_code(r) == "unsupported_content_type"
    r = await edit(
        client,
        sizes_fake,
        json={**common, "image": "https://api.telegram.org/file/bot123:SECRET/photos/a.jpg"},
    )
    assert r.status_code == 400 and err_code(r) == "private_url"
    assert sizes_fake.private_url_hits and len(sizes_fake.billed) == 3


# ----- compat-b64 (compat-b64) --------------------------------------------------------
async def test_b64_default_and_url_option(
    b64_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    r = await gen(client, b64_fake, model="gpt-image-2", size="1024x1024")
    assert "b64_json" in r.json()["data"][0] and "usage" in r.json()
    r = await gen(client, b64_fake, size="1024x1024", response_format="url")
    assert "url" in r.json()["data"][0]
    b64_fake.inject(Fault("url_not_available"))
    r = await gen(client, b64_fake, size="1024x1024")  # b64 call does not consume it
    assert r.status_code == 200
    r = await gen(client, b64_fake, size="1024x1024", response_format="url")
    assert r.status_code == 400 and err_code(r) == "image_url_not_available"
    r = await gen(client, b64_fake, size="1024x1024", output_format="webp")
    assert r.status_code == 400
    r = await gen(client, b64_fake, size="1536x864")
    assert r.status_code == 400
    assert len(b64_fake.billed) == 3


async def test_b64_edits_json_and_multipart(
    b64_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    r = await edit(
        client,
        b64_fake,
        json={
            "prompt": "style",
            "size": "1024x1024",
            "images": [{"image_url": data_url(imgs.png_bytes(40, 40))}],
        },
    )
    assert r.status_code == 200, r.text
    r = await edit(client, b64_fake, json={"prompt": "style", "image": data_url(imgs.png_bytes())})
    assert r.status_code == 400
    r = await edit(client, b64_fake, json={"prompt": "style", "images": []})
    assert r.status_code == 400
    png = imgs.png_bytes(50, 40)
    r = await edit(
        client,
        b64_fake,
        data={"prompt": "balloons"},
        files=[
            ("image", ("a.png", png, "image/png")),
            ("mask", ("m.png", imgs.mask_png(50, 40), "image/png")),
        ],
    )
    assert r.status_code == 200, r.text
    r = await edit(
        client,
        b64_fake,
        data={"prompt": "balloons"},
        files=[
            ("image", ("a.png", png, "image/png")),
            ("mask", ("m.png", imgs.mask_png(10, 10), "image/png")),
        ],
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "mask"
    for junk in (imgs.not_an_image(), imgs.decompression_bomb_png(), imgs.gif_bytes()):
        r = await edit(
            client, b64_fake, data={"prompt": "x"}, files=[("image", ("a.png", junk, "image/png"))]
        )
        assert r.status_code == 400 and err_code(r) == "invalid_image_file", r.text
    assert len(b64_fake.billed) == 2


# ----- aiearth (aiearth) -----------------------------------------------------------
async def test_aiearth_base_url_alternates_and_usage(
    aiearth_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    assert aiearth_fake.base_url.endswith("/v1")
    url = f"{aiearth_fake.base_url}/images/generations"
    kinds = []
    for _ in range(2):
        r = await client.post(
            url, json={"prompt": "otter", "size": "1024x1024", "quality": "low"}, headers=AUTH
        )
        item = r.json()["data"][0]
        kinds.append("url" if "url" in item else "b64")
        assert item["revised_prompt"] == ""
        assert r.json()["usage"]["output_tokens"] == 272
    assert kinds == ["url", "b64"]
    aiearth_fake.answer_with = "b64"
    r = await client.post(url, json={"prompt": "x"}, headers=AUTH)
    assert "b64_json" in r.json()["data"][0]


async def test_aiearth_multipart_limit(
    aiearth_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    png = imgs.png_bytes(16, 16)
    files = [("image[]", (f"{i}.png", png, "image/png")) for i in range(17)]
    r = await edit(client, aiearth_fake, data={"prompt": "x"}, files=files)
    assert r.status_code == 400
    r = await edit(client, aiearth_fake, data={"prompt": "x", "n": "2"}, files=files[:16])
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["input_tokens_details"]["image_tokens"] == 16 * 323


async def _sse(c: httpx.AsyncClient, url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    names: list[str] = []
    async with c.stream("POST", url, json=body, headers=AUTH) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            elif line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert not names or names == [e["type"] for e in events]
    return events


async def test_aiearth_stream(aiearth_fake: FakeOpenAIVendor, client: httpx.AsyncClient) -> None:
    base = aiearth_fake.base_url
    events = await _sse(
        client, f"{base}/images/generations", {"prompt": "x", "stream": True, "partial_images": 2}
    )
    assert [e["type"] for e in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"
    ]
    assert [e.get("partial_image_index") for e in events[:2]] == [0, 1]
    final = events[-1]
    validator("ImageGenCompletedEvent").validate(final)
    assert decode(base64.b64decode(final["b64_json"]))[1:] == (1024, 1024)
    aiearth_fake.sse_event_lines = False
    events = await _sse(
        client,
        f"{base}/images/edits",
        {"prompt": "x", "stream": True, "images": [{"image_url": data_url(imgs.png_bytes())}]},
    )
    assert [e["type"] for e in events] == ["image_edit.completed"]
    assert len(aiearth_fake.billed) == 2


async def test_stream_cut_midstream(
    aiearth_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    url = f"{aiearth_fake.base_url}/images/generations"
    body = {"prompt": "x", "stream": True, "partial_images": 1}
    aiearth_fake.inject_many(
        [Fault("truncated", variant="midstream"), Fault("disconnect", variant="midstream")]
    )
    async with client.stream("POST", url, json=body, headers=AUTH) as r:
        text = (await r.aread()).decode()
    assert "image_generation.partial_image" in text and text.rstrip().endswith('"type": "')
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream("POST", url, json=body, headers=AUTH) as r:
            await r.aread()
    assert aiearth_fake.billed == [] and aiearth_fake.faults == []
    r = await client.post(
        f"{aiearth_fake.root_url}/_control/config",
        json={"answer_with": "url", "sse_event_lines": False},
    )
    assert r.status_code == 200 and aiearth_fake.answer_with == "url"


# ----- faults -----------------------------------------------------------------------
async def test_status_faults(openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient) -> None:
    openai_fake.inject_many(
        [
            Fault("429", retry_after=7),
            Fault("402"),
            Fault("http", status=418),
            Fault("503", times=2),
            Fault("moderation"),
        ]
    )
    r = await gen(client, openai_fake)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert (await gen(client, openai_fake)).status_code == 402
    r = await gen(client, openai_fake)
    assert r.status_code == 418 and set(r.json()["error"]) == {"message", "type", "code"}
    assert (await gen(client, openai_fake)).status_code == 503
    assert (await gen(client, openai_fake)).status_code == 503
    r = await gen(client, openai_fake)
    assert r.status_code == 400 and err_code(r) == "moderation_blocked"
    assert (await gen(client, openai_fake)).status_code == 200
    assert len(openai_fake.billed) == 1 and openai_fake.faults == []


async def test_body_faults(openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient) -> None:
    openai_fake.inject_many(
        [
            Fault("malformed"),
            Fault("malformed", variant="shape"),
            Fault("truncated"),
            Fault("envelope_error"),
            Fault("disconnect"),
        ]
    )
    r = await gen(client, openai_fake)
    assert r.status_code == 200 and r.headers["content-type"] == "text/html"
    r = await gen(client, openai_fake)
    assert not isinstance(r.json()["data"], list)
    r = await gen(client, openai_fake)
    with pytest.raises(ValueError):
        r.json()
    r = await gen(client, openai_fake)
    assert r.status_code == 200 and r.json()["code"] == 1001
    with pytest.raises(httpx.RemoteProtocolError):
        await gen(client, openai_fake)
    assert (await gen(client, openai_fake)).status_code == 200


async def test_billed_then_500_and_bad_result_url(
    sizes_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    body = {"model": "gpt-image-2", "size": "1024x1024", "n": 2}
    sizes_fake.inject(Fault("billed_then_500"))
    r = await gen(client, sizes_fake, **body)
    assert r.status_code == 500 and sizes_fake.billed[0].images == 2
    sizes_fake.inject_many([Fault("bad_result_url"), Fault("bad_result_url", variant="bytes")])
    r = await gen(client, sizes_fake, **body)
    assert (await client.get(r.json()["data"][0]["url"])).status_code == 404
    r = await gen(client, sizes_fake, **body)
    got = await client.get(r.json()["data"][0]["url"])
    assert got.status_code == 200 and got.content == imgs.not_an_image()


async def test_hang_does_not_block_and_slow(
    openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    openai_fake.inject(Fault("hang"))
    hanging = asyncio.create_task(
        client.post(
            f"{openai_fake.base_url}/v1/images/generations",
            json={"prompt": "x"},
            headers=AUTH,
            timeout=1.0,
        )
    )
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    assert (await gen(client, openai_fake)).status_code == 200
    assert time.monotonic() - t0 < 0.5
    with pytest.raises(httpx.ReadTimeout):
        await hanging
    await asyncio.sleep(0.3)
    assert openai_fake.in_flight == 0  # the hung handler noticed the client left
    assert openai_fake.max_in_flight == 2
    openai_fake.inject(Fault("slow", delay=0.3))
    t0 = time.monotonic()
    assert (await gen(client, openai_fake)).status_code == 200
    assert time.monotonic() - t0 >= 0.3


async def test_fault_path_and_file_faults(
    sizes_fake: FakeOpenAIVendor, client: httpx.AsyncClient
) -> None:
    sizes_fake.inject_many([Fault("500", path="/edits"), Fault("404", path="/files/")])
    r = await gen(client, sizes_fake, model="gpt-image-2", size="1024x1024")
    assert r.status_code == 200  # generation does not match path="/edits"
    assert (await client.get(r.json()["data"][0]["url"])).status_code == 404
    assert [f.kind for f in sizes_fake.faults] == ["500"]


async def test_random_faults_are_seeded() -> None:
    async def run() -> list[int]:
        async with (
            FakeOpenAIVendor(
                flavor="openai", fault_rate=0.5, seed=3, random_fault_kinds=["429", "500"]
            ) as fake,
            httpx.AsyncClient() as c,
        ):
            return [(await gen(c, fake)).status_code for _ in range(12)]

    first, second = await run(), await run()
    assert first == second and {429, 500, 200} >= set(first) and len(set(first)) > 1


async def test_control_endpoints(openai_fake: FakeOpenAIVendor, client: httpx.AsyncClient) -> None:
    root = openai_fake.root_url
    r = await client.post(f"{root}/_control/faults", json=[{"kind": "429", "retry_after": 2}])
    assert r.json()["queued"] == 1
    assert (await gen(client, openai_fake)).status_code == 429
    assert (await gen(client, openai_fake, size="1024x1536", quality="high")).status_code == 200
    billed = (await client.get(f"{root}/_control/billed")).json()
    assert [(b["images"], b["size"], b["quality"], b["n"]) for b in billed] == [
        (1, "1024x1536", "high", 1)
    ]
    assert set(billed[0]) >= {"id", "images", "size", "quality", "resolution", "n", "time"}
    r = await client.post(f"{root}/_control/faults", json=[{"kind": "nope"}])
    assert r.status_code == 400
    await client.post(f"{root}/_control/config", json={"latency": 0.2})
    assert openai_fake.latency == 0.2
    await client.post(f"{root}/_control/reset")
    assert openai_fake.billed == [] and openai_fake.requests == []


# ----- envelope (gptimageapi) ----------------------------------------------------------
async def test_envelope(envelope_fake: FakeEnvelopeVendor, client: httpx.AsyncClient) -> None:
    url = f"{envelope_fake.base_url}/v1/images/edit"
    good = {
        "prompt": "studio",
        "image": data_url(imgs.jpeg_bytes(), "image/jpeg"),
        "model": "gpt-image-2",
        "size": "4:3",
        "quality": "high",
        "n": 2,
    }
    r = await client.post(url, json=good, headers=AUTH)
    assert r.status_code == 200 and r.json()["code"] == 0 and r.json()["message"] == "ok"
    urls = [i["url"] for i in r.json()["data"]["images"]]
    assert len(urls) == 2
    assert decode((await client.get(urls[0])).content) == ("png", 1024, 768)
    assert envelope_fake.credits_spent == 24
    public = envelope_fake.publish(imgs.png_bytes(), "png")
    assert (await client.post(url, json={**good, "image": public}, headers=AUTH)).json()[
        "code"
    ] == 0
    for bad in (
        {"size": "1024x1024"},
        {"quality": "ultra"},
        {"model": "dall-e-3"},
        {"image": data_url(imgs.not_an_image())},
        {"prompt": ""},
        {"n": 0},
        {"image": "https://api.telegram.org/file/botTOKEN/x.jpg"},
        {"image": f"{envelope_fake.root_url}/files/missing.png"},
    ):
        r = await client.post(url, json={**good, **bad}, headers=AUTH)
        assert r.status_code == 200 and r.json()["code"] != 0 and r.json()["message"], bad
    r = await client.post(url, json=good)
    assert r.status_code == 401 and r.json()["code"] == 401
    envelope_fake.inject_many(
        [Fault("envelope_error", status=2001, message="upstream busy"), Fault("402")]
    )
    r = await client.post(url, json=good, headers=AUTH)
    assert r.status_code == 200 and r.json() == {
        "code": 2001,
        "message": "upstream busy",
        "data": None,
    }
    r = await client.post(url, json=good, headers=AUTH)
    assert r.status_code == 402 and r.json()["code"] == 402
    assert len(envelope_fake.billed) == 2


# ----- tasks (aigptimage) -------------------------------------------------------------
async def _create(c: httpx.AsyncClient, fake: FakeTaskVendor, **inp: Any) -> httpx.Response:
    body = {
        "model": inp.pop("model", "gpt-image-2-image-to-image"),
        "input": {"prompt": "advert", "image_urls": [fake.publish(imgs.png_bytes(), "png")], **inp},
    }
    return await c.post(f"{fake.base_url}/api/v1/jobs/createTask", json=body, headers=AUTH)


async def _poll(c: httpx.AsyncClient, fake: FakeTaskVendor, task_id: str) -> dict[str, Any]:
    r = await c.get(
        f"{fake.base_url}/api/v1/jobs/recordInfo", params={"taskId": task_id}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def test_task_lifecycle(tasks_fake: FakeTaskVendor, client: httpx.AsyncClient) -> None:
    r = await _create(
        client, tasks_fake, aspect_ratio="16:9", resolution="2K", output_format="jpeg"
    )
    assert r.json()["code"] == 200 and r.json()["msg"] == "success"
    task_id = r.json()["data"]["taskId"]
    assert task_id.startswith("task_")
    first = await _poll(client, tasks_fake, task_id)
    assert first["state"] == "waiting" and first["resultJson"] is None
    assert json.loads(first["param"])["input"]["resolution"] == "2K"
    assert tasks_fake.billed == []
    done = await _poll(client, tasks_fake, task_id)
    assert done["state"] == "success" and isinstance(done["resultJson"], str)
    assert done["costTime"] == done["completeTime"] - done["createTime"] >= 0
    result = json.loads(done["resultJson"])["resultUrls"][0]
    assert decode((await client.get(result)).content) == ("jpeg", 2048, 1152)
    await _poll(client, tasks_fake, task_id)
    assert [(b.id, b.resolution, b.images) for b in tasks_fake.billed] == [(task_id, "2K", 1)]


@pytest.mark.parametrize(
    ("inp", "status", "msg"),
    [
        ({"model": "gpt-image-2"}, 422, "model"),
        ({"prompt": ""}, 422, "prompt"),
        ({"prompt": "x" * 20001}, 422, "20000"),
        ({"image_urls": []}, 422, "image_urls"),
        (
            {"image_urls": ["https://api.telegram.org/file/bot1:ABC/photos/p.jpg"]},
            422,
            "private url",
        ),
        ({"image_urls": ["http://127.0.0.1:9/file/bot1:ABC/x.png"]}, 422, "private url"),
        ({"image_urls": ["ftp://example.com/a.png"]}, 422, "http"),
        ({"aspect_ratio": "3:2"}, 422, "aspect_ratio"),
        ({"resolution": "8K"}, 422, "resolution"),
    ],
)
async def test_task_validation(
    tasks_fake: FakeTaskVendor,
    client: httpx.AsyncClient,
    inp: dict[str, Any],
    status: int,
    msg: str,
) -> None:
    r = await _create(client, tasks_fake, **inp)
    assert r.status_code == status and r.json()["code"] == status
    assert msg in r.json()["msg"] and r.json()["data"] is None
    assert tasks_fake.tasks == {}


async def test_task_unreachable_and_non_image_urls(
    tasks_fake: FakeTaskVendor, client: httpx.AsyncClient
) -> None:
    for url in (
        f"{tasks_fake.root_url}/files/nope.png",
        tasks_fake.publish(imgs.not_an_image(), "png"),
    ):
        r = await _create(client, tasks_fake, image_urls=[url])
        assert r.status_code == 422, r.text
    r = await client.get(
        f"{tasks_fake.base_url}/api/v1/jobs/recordInfo",
        params={"taskId": "task_missing"},
        headers=AUTH,
    )
    assert r.status_code == 404 and r.json()["code"] == 404


async def test_task_fail_late_409_and_time(
    tasks_fake: FakeTaskVendor, client: httpx.AsyncClient
) -> None:
    tasks_fake.task_polls_to_finish = 1
    tasks_fake.inject(Fault("task_fail", status=400, message="content policy"))
    tid = (await _create(client, tasks_fake)).json()["data"]["taskId"]
    data = await _poll(client, tasks_fake, tid)
    assert (data["state"], data["failCode"], data["failMsg"]) == ("fail", "400", "content policy")
    tasks_fake.inject(Fault("task_late", polls=2))
    tid = (await _create(client, tasks_fake)).json()["data"]["taskId"]
    states = [(await _poll(client, tasks_fake, tid))["state"] for _ in range(3)]
    assert states == ["waiting", "waiting", "success"]
    tasks_fake.max_active_tasks = 1
    tasks_fake.task_polls_to_finish = None
    tasks_fake.task_seconds = 0.2
    tid = (await _create(client, tasks_fake)).json()["data"]["taskId"]
    r = await _create(client, tasks_fake)
    assert r.status_code == 409 and r.json()["code"] == 409
    assert (await _poll(client, tasks_fake, tid))["state"] == "waiting"
    await asyncio.sleep(0.25)
    assert (await _poll(client, tasks_fake, tid))["state"] == "success"
    assert len(tasks_fake.billed) == 2


async def test_task_billed_then_500(tasks_fake: FakeTaskVendor, client: httpx.AsyncClient) -> None:
    tasks_fake.task_polls_to_finish = 1
    tid = (await _create(client, tasks_fake, resolution="4K")).json()["data"]["taskId"]
    tasks_fake.inject(Fault("billed_then_500"))
    r = await client.get(
        f"{tasks_fake.base_url}/api/v1/jobs/recordInfo", params={"taskId": tid}, headers=AUTH
    )
    assert r.status_code == 500 and r.json()["msg"]
    assert (await _poll(client, tasks_fake, tid))["state"] == "success"
    assert [b.resolution for b in tasks_fake.billed] == ["4K"]


# ----- standalone process -----------------------------------------------------------
def test_vendor_server_cli() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.vendor_server",
            "--style",
            "tasks",
            "--port",
            "0",
            "--latency",
            "0.1",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        root = line.split()[1]
        with httpx.Client(timeout=5) as c:
            r = c.post(f"{root}/_control/faults", json=[{"kind": "401"}])
            assert r.json()["queued"] == 1
            r = c.get(f"{root}/api/v1/jobs/recordInfo", params={"taskId": "x"}, headers=AUTH)
            assert r.status_code == 401 and r.json()["code"] == 401
            assert c.get(f"{root}/_control/billed").json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=5)

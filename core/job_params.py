"""A job's request as stored JSON, so a reroll or a restart can rebuild it.

Source image bytes live in the file store (``storage.files``); the JSON keeps
their keys and public URLs only."""

from __future__ import annotations

import json
from typing import Any

from core.types import (
    Background,
    ImageRequest,
    OutputFormat,
    Quality,
    Resolution,
    SourceImage,
)
from storage.files import FileStore


def source_key(job_id: str, index: int, image: SourceImage) -> str:
    return f"jobs/{job_id}/source-{index}.{image.extension}"


def mask_key(job_id: str, image: SourceImage) -> str:
    return f"jobs/{job_id}/mask.{image.extension}"


def result_key(job_id: str, index: int, extension: str) -> str:
    return f"jobs/{job_id}/result-{index}.{extension}"


def _source_meta(key: str, image: SourceImage) -> dict[str, Any]:
    return {
        "key": key,
        "mime": image.mime,
        "width": image.width,
        "height": image.height,
        "url": image.public_url,
    }


def dump_params(job_id: str, request: ImageRequest) -> str:
    return json.dumps(
        {
            "prompt": request.prompt,
            "aspect": request.aspect,
            "resolution": request.resolution.value,
            "quality": request.quality.value,
            "n": request.n,
            "background": request.background.value if request.background else None,
            "output_format": request.output_format.value if request.output_format else None,
            "user_tag": request.user_tag,
            "sources": [
                _source_meta(source_key(job_id, i, s), s) for i, s in enumerate(request.sources)
            ],
            "mask": _source_meta(mask_key(job_id, request.mask), request.mask)
            if request.mask
            else None,
        },
        ensure_ascii=False,
    )


def source_files(job_id: str, request: ImageRequest) -> list[tuple[str, bytes]]:
    files = [(source_key(job_id, i, s), s.data) for i, s in enumerate(request.sources)]
    if request.mask is not None:
        files.append((mask_key(job_id, request.mask), request.mask.data))
    return files


def load_params(params: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    data = json.loads(params)
    return data, list(data.get("sources") or []), data.get("mask")


def build_request(
    data: dict[str, Any], sources: tuple[SourceImage, ...], mask: SourceImage | None
) -> ImageRequest:
    return ImageRequest(
        prompt=data["prompt"],
        aspect=data["aspect"],
        resolution=Resolution(data["resolution"]),
        quality=Quality(data["quality"]),
        n=int(data["n"]),
        sources=sources,
        mask=mask,
        background=Background(data["background"]) if data.get("background") else None,
        output_format=OutputFormat(data["output_format"]) if data.get("output_format") else None,
        user_tag=data.get("user_tag"),
    )


def source_from_meta(meta: dict[str, Any], data: bytes) -> SourceImage:
    return SourceImage(
        data=data,
        mime=meta["mime"],
        width=int(meta["width"]),
        height=int(meta["height"]),
        public_url=meta.get("url"),
    )


async def restore_request(files: FileStore, params: str) -> ImageRequest:
    """A stored job's request with its source images read back from the file store."""
    data, source_meta, mask_meta = load_params(params)
    sources = tuple([source_from_meta(m, await files.get(m["key"])) for m in source_meta])
    mask = source_from_meta(mask_meta, await files.get(mask_meta["key"])) if mask_meta else None
    return build_request(data, sources, mask)

"""A job's request as stored JSON: options, prompt and source *references*, so a
worker in any process can run it and a reroll can rebuild it.

Jobs written before the queue kept their sources as file-store keys under
``sources``; those read back as ``stored`` references."""

from __future__ import annotations

import json
from typing import Any

from core.sources import STORED, SourceRef
from core.types import Background, ImageRequest, OutputFormat, Quality, Resolution


def result_key(job_id: str, index: int, extension: str) -> str:
    return f"jobs/{job_id}/result-{index}.{extension}"


def dump_params(request: ImageRequest) -> str:
    """The request without bytes: a worker fetches ``refs`` when it runs the job."""
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
            "refs": [r.to_json() for r in request.refs],
            "mask_ref": request.mask_ref.to_json() if request.mask_ref else None,
        },
        ensure_ascii=False,
    )


def _legacy_ref(meta: dict[str, Any]) -> SourceRef:
    return SourceRef(STORED, str(meta["key"]), public_url=meta.get("url") or None)


def load_request(params: str) -> ImageRequest:
    """The stored request, sources as references (nothing is read here)."""
    data = json.loads(params)
    refs = tuple(SourceRef.from_json(r) for r in data.get("refs") or [])
    if not refs and data.get("sources"):
        refs = tuple(_legacy_ref(m) for m in data["sources"])
    mask_ref = SourceRef.from_json(data["mask_ref"]) if data.get("mask_ref") else None
    if mask_ref is None and isinstance(data.get("mask"), dict) and data["mask"].get("key"):
        mask_ref = _legacy_ref(data["mask"])
    return ImageRequest(
        prompt=data["prompt"],
        aspect=data["aspect"],
        resolution=Resolution(data["resolution"]),
        quality=Quality(data["quality"]),
        n=int(data["n"]),
        background=Background(data["background"]) if data.get("background") else None,
        output_format=OutputFormat(data["output_format"]) if data.get("output_format") else None,
        user_tag=data.get("user_tag"),
        refs=refs,
        mask_ref=mask_ref,
    )


def result_files(result: str | None) -> list[str]:
    """The file-store keys of a job's delivered images."""
    if not result:
        return []
    return [str(k) for k in json.loads(result).get("files") or []]

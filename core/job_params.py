"""What a job row stores as JSON, read and written here only, as typed values:

- the request (``params``): options, prompt and source *references*, so a worker in
  any process can run it and a reroll can rebuild it;
- who asked and where the answer goes (``chat``): ``JobChat``;
- what came back (``result``): ``JobResult``.

Jobs written before the queue kept their sources as file-store keys under
``sources``; those read back as ``stored`` references."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.ports import ChatRef, UserRef
from core.sources import STORED, SourceRef
from core.types import Background, ImageRequest, OutputFormat, Quality, Resolution

# Keys of a chat reference that grant access (a Discord interaction token can post
# as the bot for 15 minutes): dropped from the row once the job has ended.
SECRET_CHAT_KEYS = ("token",)


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
    return list(JobResult.from_json(result).files)


def prompt_of(params: str) -> str:
    return str(json.loads(params).get("prompt", ""))


@dataclass(frozen=True, slots=True)
class JobChat:
    """Who asked (and pays) and where the answer goes, as stored with the job."""

    user: UserRef
    chat: ChatRef
    locale: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "chat": self.chat.data,
                # Who pays may differ from where the answer goes (``imagine-bot
                # imagine --user telegram:5`` writes files here).
                "user_platform": self.user.platform,
                "user": self.user.user_id,
                "username": self.user.username,
                "locale": self.user.locale,
                "lang": self.locale,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(
        cls, text: str, platform: str, locale_for: Callable[[str | None], str]
    ) -> JobChat:
        """``locale_for(hint)``: the locale of rows written before it was stored."""
        data = json.loads(text)
        user = UserRef(
            data.get("user_platform") or platform,
            str(data.get("user", "")),
            data.get("username"),
            data.get("locale"),
        )
        locale = data.get("lang") or locale_for(data.get("locale"))
        return cls(user, ChatRef(platform, data.get("chat") or {}), locale)

    @staticmethod
    def ended(text: str) -> str:
        """The stored chat without what grants access, for a job that has ended."""
        data = json.loads(text)
        inner = data.get("chat")
        if isinstance(inner, dict):
            for key in SECRET_CHAT_KEYS:
                inner.pop(key, None)
        return json.dumps(data, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class JobResult:
    """The images a job got (file-store keys), the balance its caption showed (so
    ``/show`` posts the same caption again) and, once posted, how many arrived."""

    files: tuple[str, ...] = field(default_factory=tuple)
    revised_prompt: str | None = None
    delivered: int | None = None
    balance_after: int | None = None

    def to_json(self) -> str:
        out: dict[str, Any] = {"files": list(self.files), "revised_prompt": self.revised_prompt}
        if self.delivered is not None:
            out["delivered"] = self.delivered
        if self.balance_after is not None:
            out["balance_after"] = self.balance_after
        return json.dumps(out, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> JobResult:
        data = json.loads(text or "{}")
        delivered = data.get("delivered")
        balance = data.get("balance_after")
        return cls(
            tuple(str(k) for k in data.get("files") or []),
            data.get("revised_prompt"),
            int(delivered) if delivered is not None else None,
            int(balance) if balance is not None else None,
        )

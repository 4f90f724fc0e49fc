"""Where a job's input images are, not their bytes: the intake stores references
and a worker fetches them, so nothing is downloaded for a user who cannot pay.

``kind`` says who can fetch a reference:

- a platform name (``telegram``: a Bot API file id; ``discord``: an attachment's
  CDN URL): that platform's frontend, in whichever process runs the job;
- ``stored``: a key in the bot's own file store (sources and results of earlier
  jobs, for rerolls and variations);
- ``path``: a file on the machine that queued the job (command line, console).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STORED = "stored"
PATH = "path"


@dataclass(frozen=True, slots=True)
class SourceRef:
    kind: str
    ref: str
    size: int | None = None
    # A URL a vendor may fetch itself (Discord's CDN). Never a Telegram file URL:
    # that one carries the bot token.
    public_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "ref": self.ref}
        if self.size is not None:
            out["size"] = self.size
        if self.public_url:
            out["url"] = self.public_url
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceRef:
        size = data.get("size")
        return cls(
            kind=str(data["kind"]),
            ref=str(data["ref"]),
            size=int(size) if isinstance(size, int) else None,
            public_url=data.get("url") or None,
        )

    def __repr__(self) -> str:  # a file id is an opaque capability: keep it short in logs
        return f"SourceRef({self.kind}, {self.ref[:24]}…)"


def stored_source_key(job_id: str, index: int) -> str:
    """Where a worker keeps a job's fetched source ``index`` (rerolls read it back)."""
    return f"jobs/{job_id}/source-{index}"


def stored_mask_key(job_id: str) -> str:
    return f"jobs/{job_id}/mask"

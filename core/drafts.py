"""Drafts: the state behind an options keyboard (prompt and chosen options), kept in
the database under a short id so buttons keep working after a restart and fit
Telegram's 64-byte callback data."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace

from core.options import Defaults
from core.ports import UserRef
from storage.interfaces import Store

DRAFT_TTL = 86_400.0
PREFIX = "draft:"


@dataclass(frozen=True, slots=True)
class Draft:
    id: str
    user_key: str
    prompt: str
    defaults: Defaults
    created_at: float


class Drafts:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _key(draft_id: str) -> str:
        return f"{PREFIX}{draft_id}"

    async def purge_expired(self, now: float | None = None) -> int:
        """Drafts nobody finished: their rows go once they can no longer be used."""
        before = (time.time() if now is None else now) - DRAFT_TTL
        async with self.store.transaction() as tx:
            return await self.store.flags.purge(tx, PREFIX, before)

    async def create(self, user: UserRef, prompt: str, defaults: Defaults) -> Draft:
        draft = Draft(secrets.token_urlsafe(6), user.key, prompt, defaults, time.time())
        await self._save(draft)
        return draft

    async def _save(self, draft: Draft) -> None:
        value = json.dumps(
            {
                "user": draft.user_key,
                "prompt": draft.prompt,
                "defaults": draft.defaults.to_json(),
                "created": draft.created_at,
            }
        )
        async with self.store.transaction() as tx:
            await self.store.flags.set(tx, self._key(draft.id), value)

    async def get(self, draft_id: str) -> Draft | None:
        async with self.store.read() as tx:
            raw = await self.store.flags.get(tx, self._key(draft_id))
        if raw is None:
            return None
        data = json.loads(raw)
        if time.time() - float(data["created"]) > DRAFT_TTL:
            return None
        return Draft(
            draft_id,
            data["user"],
            data["prompt"],
            Defaults.from_json(data["defaults"]),
            float(data["created"]),
        )

    async def update(self, draft_id: str, **changes: object) -> Draft | None:
        draft = await self.get(draft_id)
        if draft is None:
            return None
        draft = replace(draft, defaults=replace(draft.defaults, **changes))  # type: ignore[arg-type]
        await self._save(draft)
        return draft

    async def delete(self, draft_id: str) -> None:
        async with self.store.transaction() as tx:
            await self.store.flags.delete(tx, self._key(draft_id))

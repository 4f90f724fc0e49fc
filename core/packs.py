"""Credit packs users can buy: what the operator configured, and the invoice
payload that names a pack.

``CREDIT_PACKS`` (Telegram Stars) reads ``credits:stars`` pairs, e.g.
``100:50,500:200``; ``DISCORD_SKU_PACKS`` reads ``sku id:credits`` pairs for the
consumable SKUs made in Discord's developer portal (Discord holds their prices)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError

STARS = "XTR"
"""Telegram's currency code for Stars."""
MAX_PACK_CREDITS = 10**9
# Telegram accepts 1 to 10,000 Stars per invoice.
MAX_STARS = 10_000
_PAIR = re.compile(r"(\d{1,20}):(\d{1,12})")
_PAYLOAD = re.compile(r"pack:(\d{1,12}):(\d{1,12})")


@dataclass(frozen=True, slots=True)
class CreditPack:
    credits: int
    price: int
    """Stars for a Telegram pack; 0 for a Discord SKU (the store holds its price)."""
    sku_id: str | None = None

    @property
    def key(self) -> str:
        """How the ledger and ``/payments`` name the pack."""
        return f"sku:{self.sku_id}" if self.sku_id else f"{self.credits}:{self.price}"

    @property
    def payload(self) -> str:
        """The invoice payload: the pack and its price, checked again at pre-checkout."""
        return f"pack:{self.credits}:{self.price}"


def _pairs(raw: str | None, name: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        found = _PAIR.fullmatch(item.replace(" ", ""))
        if found is None:
            raise ConfigError(
                f"{name} entry {item!r} is not a pair of whole numbers like {example}.",
                setting=name,
            )
        pairs.append((found[1], found[2]))
    return pairs


def parse_star_packs(raw: str | None) -> tuple[CreditPack, ...]:
    packs: list[CreditPack] = []
    for credits, stars in _pairs(raw, "CREDIT_PACKS", "100:50 (credits:stars)"):
        pack = CreditPack(int(credits), int(stars))
        if not 0 < pack.credits <= MAX_PACK_CREDITS or not 0 < pack.price <= MAX_STARS:
            raise ConfigError(
                f"CREDIT_PACKS entry {pack.key}: credits must be 1 to {MAX_PACK_CREDITS:,} "
                f"and Stars 1 to {MAX_STARS:,}.",
                setting="CREDIT_PACKS",
            )
        if pack in packs:
            raise ConfigError(f"CREDIT_PACKS lists {pack.key} twice.", setting="CREDIT_PACKS")
        packs.append(pack)
    return tuple(packs)


def parse_sku_packs(raw: str | None) -> tuple[CreditPack, ...]:
    packs: dict[str, CreditPack] = {}
    for sku, credits in _pairs(raw, "DISCORD_SKU_PACKS", "1234567890:100 (sku id:credits)"):
        if sku in packs:
            raise ConfigError(
                f"DISCORD_SKU_PACKS lists SKU {sku} twice.", setting="DISCORD_SKU_PACKS"
            )
        if not 0 < int(credits) <= MAX_PACK_CREDITS:
            raise ConfigError(
                f"DISCORD_SKU_PACKS entry {sku}: credits must be 1 to {MAX_PACK_CREDITS:,}.",
                setting="DISCORD_SKU_PACKS",
            )
        packs[sku] = CreditPack(int(credits), 0, sku)
    return tuple(packs.values())


def pack_of_payload(payload: str, packs: tuple[CreditPack, ...]) -> CreditPack | None:
    """The configured pack an invoice payload names, at the price it names; None when
    the operator has since removed or repriced it."""
    found = _PAYLOAD.fullmatch(payload or "")
    if found is None:
        return None
    wanted = CreditPack(int(found[1]), int(found[2]))
    return wanted if wanted in packs else None


def payload_credits(payload: str) -> CreditPack | None:
    """The pack a paid invoice named, configured or not: a payment Telegram took is
    credited even when the operator removed the pack after the pre-checkout."""
    found = _PAYLOAD.fullmatch(payload or "")
    return None if found is None else CreditPack(int(found[1]), int(found[2]))

"""The configured vendors in failover order, and the rule for moving a job on.

With ``VENDOR=`` alone the pool holds one vendor and behaves as it always did.
With ``VENDORS=a,b`` a job goes to the first vendor that can do the request and is
in the rotation (``core.vendor_health``); it moves on to the next one only when
nothing can have been billed (``nothing_billed``), and docs/vendors.md
("Several vendors") states that policy for operators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import (
    InvalidRequest,
    ServicePaused,
    TaskFailed,
    Unsupported,
    VendorBusy,
    VendorMisconfigured,
    VendorOutOfCredits,
    VendorRejected,
    VendorUnavailable,
)
from core.pricing import Quote, quote
from core.types import ImageRequest
from core.vendor_health import VendorHealth, VendorState
from core.vendor_offer import offered
from core.vendors.base import ImageVendor
from core.vendors.preset import Preset
from core.vendors.sizing import check_request
from storage.interfaces import Tx


def nothing_billed(err: BaseException) -> bool:
    """True when the vendor cannot have carried the request out, so another vendor
    may be asked without paying twice: it was never sent (``Unsupported``, a
    refused connection), or the vendor answered an explicit failure (402, 401/403,
    409/429 past the retries, a 4xx refusal, a task it reported failed). A timeout
    or lost connection after sending, a 5xx to a request and a moderation refusal
    (another vendor must not be used to get around it) never move a job on."""
    if isinstance(err, Unsupported):
        return True
    if isinstance(err, VendorUnavailable):
        return not err.maybe_billed
    if isinstance(err, VendorRejected):
        return not err.params.get("moderation")
    return isinstance(err, VendorOutOfCredits | VendorMisconfigured | VendorBusy | TaskFailed)


@dataclass(frozen=True, slots=True)
class PoolMember:
    name: str
    vendor: ImageVendor
    health: VendorHealth

    @property
    def preset(self) -> Preset:
        return self.vendor.preset


@dataclass(frozen=True, slots=True)
class Candidate:
    member: PoolMember
    quote: Quote


class VendorPool:
    def __init__(self, members: Sequence[PoolMember]) -> None:
        if not members:
            raise ValueError("a vendor pool needs a vendor")
        self.members = tuple(members)
        self._by_name = {m.name: m for m in self.members}
        # What users are offered: the union of what the vendors can do.
        self.offer = offered([m.preset for m in self.members])

    @property
    def primary(self) -> PoolMember:
        return self.members[0]

    @property
    def failover(self) -> bool:
        return len(self.members) > 1

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def get(self, name: str | None) -> PoolMember | None:
        """The member a job recorded; None (rows of ``VENDOR=`` alone): the primary."""
        return self.primary if name is None else self._by_name.get(name)

    def find(self, name: str) -> PoolMember | None:
        """A vendor by the name an admin typed."""
        return self._by_name.get(name.strip().lower())

    def label(self, name: str | None) -> str | None:
        """The service name a caption shows: only when several vendors could have
        served (one vendor's captions stay as they always were)."""
        member = self.get(name)
        return member.name if self.failover and member is not None else None

    def candidates(self, request: ImageRequest) -> list[Candidate]:
        """The vendors that can do ``request``, in order, each with its quote. When
        none can: one vendor's own refusal; with several, a refusal naming what they
        offer together (``refusal``)."""
        found: list[Candidate] = []
        first: InvalidRequest | None = None
        for member in self.members:
            try:
                found.append(Candidate(member, quote(member.preset, request)))
            except InvalidRequest as err:
                first = first or err
        if not found:
            assert first is not None
            raise self.refusal(request) if self.failover else first
        return found

    def refusal(self, request: ImageRequest) -> InvalidRequest:
        """Why no vendor can do ``request``: an option none of them offers (with the
        values they offer between them), or options each offered by some vendor but
        never all by the same one."""
        try:
            check_request(self.offer, request)
        except Unsupported as err:
            if "kind" in err.params:  # edits or new images: nobody offers them
                return err
            params = {k: v for k, v in err.params.items() if k != "reason"}
            return Unsupported(err.detail, kind="unsupported_vendors", **params)
        return Unsupported(
            f"no vendor does {request.aspect} {request.resolution} {request.quality} "
            f"n={request.n} together",
            kind="vendor_combination",
        )

    def hold(self, request: ImageRequest) -> int:
        """The most any vendor that can do ``request`` may cost: the job's hold."""
        return max(c.quote.hold for c in self.candidates(request))

    def price_range(self, request: ImageRequest) -> tuple[int, int]:
        holds = [c.quote.hold for c in self.candidates(request)]
        return min(holds), max(holds)

    async def admit(self, tx: Tx, now: float, request: ImageRequest) -> None:
        """The intake's look: one vendor keeps its historical pause (the probe is
        claimed here); with several, refuse only when none that can do the request
        is in the rotation or due for a probe (the worker claims the probe)."""
        if not self.failover:
            await self.primary.health.admit(tx, now)
            return
        for candidate in self.candidates(request):
            if await candidate.member.health.usable(tx, now):
                return
        raise ServicePaused()

    async def states(self, tx: Tx) -> list[VendorState]:
        out = []
        for member in self.members:
            state = await member.health.state(tx)
            out.append(
                VendorState(member.name, state.state, state.since, state.why, state.probe_at)
            )
        return out

"""Domain errors. Adapters and use cases raise these; frontends turn each into one
sentence from the message catalogue (``core.messages``), in one place.

Each error has a stable ``code`` (the catalogue key) and ``params`` that the
sentence may use. ``detail`` is for logs only: it may quote a vendor body and
must never be shown in a chat.
"""

from __future__ import annotations

from typing import ClassVar


class ImagineError(Exception):
    code: ClassVar[str] = "error"
    # The job this error ended, so the frontend that shows it can acknowledge it.
    job_id: str | None = None

    def __init__(self, detail: str = "", **params: object) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.params: dict[str, object] = params


# --- the user's side: refused before anything is reserved ---------------------------


class InvalidRequest(ImagineError):
    """The user's input is wrong (bad option, prompt too long, bad image)."""

    code = "invalid_request"

    def __init__(self, detail: str, /, **params: object) -> None:
        params.setdefault("reason", detail)
        super().__init__(detail, **params)
        self.reason = str(params["reason"])


class Unsupported(InvalidRequest):
    """The configured vendor cannot do this; ``params['supported']`` says what it can."""

    code = "unsupported"


class InsufficientCredits(ImagineError):
    code = "insufficient_credits"

    def __init__(self, price: int, balance: int, platform: str | None = None) -> None:
        # ``platform``: where the user asked, so the refusal can offer that
        # platform's /buy when the operator sells packs there.
        super().__init__(
            f"price {price} > balance {balance}", price=price, balance=balance, platform=platform
        )
        self.price = price
        self.balance = balance


class PackUnavailable(ImagineError):
    """An invoice names a pack the operator no longer sells at that price."""

    code = "payments.pack_gone"


class UnknownPayment(ImagineError):
    code = "payments.unknown"


class RefundRefused(ImagineError):
    """The credits a refund would take back were already spent (a user balance
    never goes below zero)."""

    code = "payments.refund_spent"


class RefundUnconfirmed(ImagineError):
    """The credits were taken back but the platform did not confirm returning the
    money; running the refund again is safe."""

    code = "payments.refund_unconfirmed"


class UserRateLimited(ImagineError):
    code = "user_rate_limited"


class TooManyActiveJobs(ImagineError):
    code = "too_many_active_jobs"


class NotAdmin(ImagineError):
    code = "not_admin"


class UnknownUser(ImagineError):
    code = "unknown_user"


class ServicePaused(ImagineError):
    """Jobs refused quickly while the vendor's own account is empty (after a 402)."""

    code = "service_paused"


class DeliveryFailed(ImagineError):
    """The images were made but the platform would not take them; nothing charged."""

    code = "delivery_failed"


class DeliveryIncomplete(DeliveryFailed):
    """Some of the images reached the user before the platform refused the rest:
    the user pays for those ``delivered``."""

    def __init__(self, detail: str, delivered: int) -> None:
        super().__init__(detail, delivered=delivered)
        self.delivered = delivered


class ResultGone(ImagineError):
    """The job delivered, but its files are past ``FILE_RETENTION_DAYS``: ``/show``
    has nothing to post."""

    code = "result_gone"


class LeaseLost(ImagineError):
    """Another worker took this job over (this one's lease had run out): stop
    without delivering or settling anything."""

    code = "job_interrupted"


class ConfigError(ImagineError):
    """A setting is missing or invalid; the message names it. Stops start-up."""

    code = "config_error"


# --- the vendor's side ------------------------------------------------------------


class VendorError(ImagineError):
    """Base for everything a vendor call can end in.

    ``maybe_billed`` is True when the vendor may have produced (and billed) images
    even though we have none: the job use case books that as a vendor loss instead
    of charging the user.
    """

    code = "vendor_error"
    maybe_billed: bool = False


class VendorOutOfCredits(VendorError):
    code = "vendor_out_of_credits"


class VendorRejected(VendorError):
    """400/422/code != 0/moderation: the vendor refused this request."""

    code = "vendor_rejected"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason, reason=reason)
        self.reason = reason


class VendorMisconfigured(VendorError):
    """401, or 404 on create: the operator's key, URL or model is wrong."""

    code = "vendor_misconfigured"


class VendorBusy(VendorError):
    """409/429 and the bounded retries ran out."""

    code = "vendor_busy"


class VendorUnavailable(VendorError):
    """5xx, timeouts, malformed bodies: the vendor is broken right now."""

    code = "vendor_unavailable"

    def __init__(self, detail: str = "", *, maybe_billed: bool = False) -> None:
        super().__init__(detail)
        self.maybe_billed = maybe_billed


class TaskFailed(VendorError):
    """An async task ended in state ``fail``; ``reason`` is the vendor's failMsg."""

    code = "task_failed"

    def __init__(self, reason: str, fail_code: str | None = None) -> None:
        super().__init__(f"{fail_code}: {reason}", reason=reason)
        self.reason = reason
        self.fail_code = fail_code


class TaskTimedOut(VendorError):
    """The task did not finish before our deadline; it may still be billed."""

    code = "task_timed_out"
    maybe_billed = True


class CannotResume(VendorError):
    """A synchronous vendor's request cannot be picked up again after a crash."""

    code = "cannot_resume"

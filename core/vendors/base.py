"""The one interface every vendor adapter offers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from core.types import ImageRequest, ImageResult, Progress
from core.vendors.preset import Preset

ProgressCallback = Callable[[Progress], Awaitable[None]]
# Called with the vendor's request or task id as soon as it is known, before any
# polling, so the job use case can persist it and resume after a crash.
SubmittedCallback = Callable[[str], Awaitable[None]]


class ImageVendor(Protocol):
    preset: Preset

    async def run(
        self,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
        on_submitted: SubmittedCallback | None = None,
    ) -> ImageResult:
        """Generate (no sources) or edit (sources) and return decoded images.

        Raises a ``core.errors.VendorError`` subclass for every vendor fault and
        ``core.errors.Unsupported`` for what the preset cannot do.
        """
        ...

    async def resume(
        self,
        vendor_ref: str,
        request: ImageRequest,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> ImageResult:
        """Pick a submitted job up again after a restart (async-task vendors only);
        synchronous styles raise ``core.errors.CannotResume``."""
        ...

    async def aclose(self) -> None: ...

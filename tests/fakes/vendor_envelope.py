"""Fake code/data-envelope image-edit vendor (wire style 2: gptimageapi).

``POST /v1/images/edit`` (JSON): ``prompt``, ``image`` (public http URL, downloaded
and checked, or a base64 data URL), ``model`` ``gpt-image-2``, ``size`` as an aspect
ratio (1:1, 4:3, 16:9, 9:16, 2:1, 1:2), ``quality`` low/medium/high, ``n``.
Success: ``{"code": 0, "message": "ok", "data": {"images": [{"url": ...}]}}``.
Parameter failures are HTTP 200 with ``code != 0`` and the reason in ``message``;
auth, credit, rate and server failures are HTTP errors with the same envelope.
Billing (seed): low 2, medium 6, high 12 credits per image (``credits`` on the fake).
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from .vendor_base import Call, FakeVendor, Handler, InputImageError, json_response, new_id

RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "4:3": (1024, 768),
    "16:9": (1536, 864),
    "9:16": (864, 1536),
    "2:1": (1536, 768),
    "1:2": (768, 1536),
}
QUALITIES = ("low", "medium", "high")
CREDITS = {"low": 2, "medium": 6, "high": 12}

# Envelope codes for parameter failures (HTTP 200).
CODE_INVALID_PARAM = 1001
CODE_INVALID_IMAGE = 1002
CODE_PRIVATE_URL = 1003


class FakeEnvelopeVendor(FakeVendor):
    """Fake of gptimageapi's image-edit API.

    Extra attributes: ``max_n`` (default 4), ``default_size`` (``"1:1"``),
    ``default_quality`` (``"medium"``), ``credits_spent`` (seed prices x images).
    """

    style: ClassVar[str] = "envelope"
    default_random_fault_kinds: ClassVar[tuple[str, ...]] = (
        "envelope_error",
        "429",
        "500",
        "503",
        "slow",
        "malformed",
        "disconnect",
    )
    _CONFIG_ATTRS: ClassVar[frozenset[str]] = FakeVendor._CONFIG_ATTRS | {"max_n"}

    def __init__(self, key: str = "sk-test", **kwargs: Any) -> None:
        super().__init__(key=key, **kwargs)
        self.max_n = 4
        self.default_size = "1:1"
        self.default_quality = "medium"
        self.credits_spent = 0

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("POST", "/v1/images/edit"): self._edit}

    def error_body(self, status: int, message: str, code: str | None = None) -> Any:
        text = f"{code}: {message}" if code == "moderation_blocked" else message
        return {"code": status, "message": text, "data": None}

    def envelope_error_body(self, code: int, message: str) -> Any:
        return {"code": code, "message": message, "data": None}

    def sample_success_body(self) -> Any:
        return {
            "code": 0,
            "message": "ok",
            "data": {"images": [{"url": f"{self.root_url}/files/{'0' * 32}.png"}]},
        }

    def wrong_shape_body(self) -> Any:
        return {"code": 0, "message": "ok", "data": {"images": "none"}}

    def _fail(self, code: int, message: str) -> web.Response:
        return json_response(self.envelope_error_body(code, message))

    async def _edit(self, call: Call) -> web.StreamResponse:
        params = call.rec.json
        if not isinstance(params, dict):
            return self._fail(CODE_INVALID_PARAM, "request body must be a JSON object")
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return self._fail(CODE_INVALID_PARAM, "prompt is required")
        model = params.get("model", "gpt-image-2")
        if model != "gpt-image-2":
            return self._fail(CODE_INVALID_PARAM, f"unsupported model: {model}")
        size = params.get("size", self.default_size)
        if size not in RATIOS:
            return self._fail(
                CODE_INVALID_PARAM, f"invalid size {size!r}: use one of {', '.join(RATIOS)}"
            )
        quality = params.get("quality", self.default_quality)
        if quality not in QUALITIES:
            return self._fail(CODE_INVALID_PARAM, f"invalid quality {quality!r}")
        n = params.get("n", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.max_n:
            return self._fail(CODE_INVALID_PARAM, f"n must be an integer from 1 to {self.max_n}")
        image = params.get("image")
        if not isinstance(image, str) or not image:
            return self._fail(CODE_INVALID_PARAM, "image is required (URL or base64 data URL)")
        try:
            await self.load_image_ref(image)
        except InputImageError as exc:
            code = CODE_PRIVATE_URL if exc.private else CODE_INVALID_IMAGE
            return self._fail(code, f"invalid image: {exc.message}")

        bad = self.take_fault(call, {"bad_result_url"})
        w, h = RATIOS[size]
        data = await self.render_output(w, h, "png")
        await self.sleep(self.latency)
        urls = [
            self.publish(data, "png", (bad.variant or "404") if bad else None) for _ in range(n)
        ]
        job_id = new_id("edit_")
        self.bill(job_id, n, size=size, quality=quality, n=n, path=call.rec.path)
        self.credits_spent += CREDITS[quality] * n
        if self.take_fault(call, {"billed_then_500"}) is not None:
            return self.fault_error(500, "internal error after generation")
        return json_response(
            {"code": 0, "message": "ok", "data": {"images": [{"url": u} for u in urls]}}
        )

"""Fake OpenAI-style images vendor (wire style 1): compat-sizes, compat-b64, aiearth
and OpenAI itself.

``FakeOpenAIVendor(flavor=...)`` serves ``POST /v1/images/generations`` and
``POST /v1/images/edits`` and validates what it receives the way each seed says:

- ``compat-sizes`` (compat-sizes): ``size`` required and from the 1K/2K/4K matrix, no
  ``aspect_ratio``, quality low/medium/high (default medium), ``n`` 1..8, model
  ``gpt-image-2``; JSON-only edits with ``image`` (URL / data URL / ``{"image_url"}``)
  or ``images``; answers ``url`` unless ``response_format=b64_json``.
- ``compat-b64`` (compat-b64): sizes 1024x1024/1024x1536/1536x1024/auto, png/jpeg only,
  answers ``b64_json`` unless ``response_format=url`` (which the ``url_not_available``
  fault or ``url_available = False`` turns into ``image_url_not_available``); edits
  as JSON ``images[].image_url`` or multipart ``image``/``image[]`` + ``mask``; usage.
- ``aiearth`` (aiearth): base URL documented with ``/v1``; answers ``url`` or
  ``b64_json`` (``answer_with``), ``usage``, ``stream: true`` as server-sent events,
  edits up to 16 images (multipart ``image[]`` or JSON ``images``) + ``mask``.
- ``openai``: like ``aiearth`` but always ``b64_json``, unknown parameters refused
  and OpenAI's ``gpt-image-2`` size rules.

Every request body is validated against OpenAI's schemas (``openai_schemas.json``,
kept in ``tests/fakes/openai_schemas.json``) before the vendor's own rules.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import jsonschema
from aiohttp import web

from .images import not_an_image
from .vendor_base import (
    Call,
    FakeVendor,
    Handler,
    InputImage,
    InputImageError,
    json_response,
    new_id,
)

Flavor = Literal["compat-sizes", "compat-b64", "aiearth", "openai"]
FLAVORS: tuple[str, ...] = ("compat-sizes", "compat-b64", "aiearth", "openai")

SEED_002_SIZES: dict[str, str] = {
    "1024x768": "1K",
    "768x1024": "1K",
    "1024x1024": "1K",
    "1536x864": "1K",
    "864x1536": "1K",
    "1920x1080": "2K",
    "1080x1920": "2K",
    "1536x1536": "2K",
    "2048x2048": "4K",
    "3840x2160": "4K",
    "2160x3840": "4K",
}
STANDARD_SIZES = ("1024x1024", "1024x1536", "1536x1024", "auto")
GPT_IMAGE_MODELS = (
    "gpt-image-1.5",
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-1",
    "gpt-image-1-mini",
    "chatgpt-image-latest",
)

# Output tokens per image (OpenAI's published gpt-image table); others scale by pixels.
_OUTPUT_TOKENS = {
    "1024x1024": {"low": 272, "medium": 1056, "high": 4160},
    "1024x1536": {"low": 408, "medium": 1584, "high": 6240},
    "1536x1024": {"low": 408, "medium": 1584, "high": 6240},
}
IMAGE_INPUT_TOKENS = 323


@dataclass(frozen=True)
class FlavorRules:
    """What one flavor accepts and how it answers."""

    sizes: tuple[str, ...] | None  # None: OpenAI's arbitrary-size rule
    size_required: bool
    forbid_aspect_ratio: bool
    qualities: tuple[str, ...]
    default_quality: str
    n_max: int
    output_formats: tuple[str, ...]
    answer: str  # "url" | "b64" | "alternate": default answer when not asked
    honours_response_format: bool
    rejects_response_format: bool
    json_image_field: bool  # JSON edits may use a single ``image``
    multipart: bool
    mask: bool
    stream: bool
    usage: bool
    echo_params: bool  # top-level size/quality/background/output_format in the answer
    revised_prompt: bool
    strict_keys: bool
    model: str | None  # the only model accepted, when the vendor fixes one
    v1_in_base: bool


RULES: dict[str, FlavorRules] = {
    "compat-sizes": FlavorRules(
        sizes=tuple(SEED_002_SIZES),
        size_required=True,
        forbid_aspect_ratio=True,
        qualities=("low", "medium", "high"),
        default_quality="medium",
        n_max=8,
        output_formats=("png", "jpeg", "webp"),
        answer="url",
        honours_response_format=True,
        rejects_response_format=False,
        json_image_field=True,
        multipart=False,
        mask=False,
        stream=False,
        usage=False,
        echo_params=False,
        revised_prompt=False,
        strict_keys=False,
        model="gpt-image-2",
        v1_in_base=False,
    ),
    "compat-b64": FlavorRules(
        sizes=STANDARD_SIZES,
        size_required=False,
        forbid_aspect_ratio=False,
        qualities=("low", "medium", "high", "auto"),
        default_quality="auto",
        n_max=10,
        output_formats=("png", "jpeg"),
        answer="b64",
        honours_response_format=True,
        rejects_response_format=False,
        json_image_field=False,
        multipart=True,
        mask=True,
        stream=False,
        usage=True,
        echo_params=True,
        revised_prompt=False,
        strict_keys=False,
        model=None,
        v1_in_base=False,
    ),
    "aiearth": FlavorRules(
        sizes=STANDARD_SIZES,
        size_required=False,
        forbid_aspect_ratio=False,
        qualities=("low", "medium", "high", "auto"),
        default_quality="auto",
        n_max=10,
        output_formats=("png", "jpeg", "webp"),
        answer="alternate",
        honours_response_format=False,
        rejects_response_format=False,
        json_image_field=False,
        multipart=True,
        mask=True,
        stream=True,
        usage=True,
        echo_params=True,
        revised_prompt=True,
        strict_keys=False,
        model=None,
        v1_in_base=True,
    ),
    "openai": FlavorRules(
        sizes=None,
        size_required=False,
        forbid_aspect_ratio=False,
        qualities=("low", "medium", "high", "auto"),
        default_quality="auto",
        n_max=10,
        output_formats=("png", "jpeg", "webp"),
        answer="b64",
        honours_response_format=False,
        rejects_response_format=True,
        json_image_field=False,
        multipart=True,
        mask=True,
        stream=True,
        usage=True,
        echo_params=True,
        revised_prompt=False,
        strict_keys=True,
        model=None,
        v1_in_base=False,
    ),
}

SCHEMA_FILE = Path(__file__).with_name("openai_schemas.json")


@cache
def _schemas() -> dict[str, Any]:
    components: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())["components"]
    return components


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A jsonschema validator for one of the extracted OpenAI schemas."""
    root = {"$ref": f"#/components/schemas/{name}", "components": _schemas()}
    cls = jsonschema.validators.validator_for(
        {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    )
    return cls(root)


def schema_properties(name: str) -> frozenset[str]:
    """Top-level property names of a schema (the strict flavor refuses others)."""
    return frozenset(_schemas()["schemas"][name]["properties"])


class Invalid(Exception):
    """A request the vendor refuses, with OpenAI's error fields."""

    def __init__(
        self, message: str, param: str | None = None, code: str = "invalid_value", status: int = 400
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


def parse_size(size: str) -> tuple[int, int]:
    """``"1536x1024"`` -> ``(1536, 1024)``."""
    w, _, h = size.partition("x")
    return int(w), int(h)


def output_tokens(size: str, quality: str) -> int:
    """Plausible gpt-image output tokens for one image."""
    quality = "medium" if quality == "auto" else quality
    if size in _OUTPUT_TOKENS:
        return _OUTPUT_TOKENS[size][quality]
    w, h = parse_size(size)
    return round(_OUTPUT_TOKENS["1024x1024"][quality] * (w * h) / (1024 * 1024))


@dataclass
class ImageJob:
    """A validated generation or edit request, ready to answer."""

    kind: str  # "generation" | "edit"
    prompt: str
    n: int
    size: str  # resolved, WxH
    requested_size: str
    quality: str  # resolved: low/medium/high
    output_format: str
    background: str
    response_format: str | None
    stream: bool
    partial_images: int
    inputs: list[InputImage]


class FakeOpenAIVendor(FakeVendor):
    """Fake of an OpenAI-compatible images API; see the module docstring for flavors.

    Extra attributes: ``flavor``, ``rules`` (``FlavorRules``), ``answer_with``
    (``"url"|"b64"|"alternate"``, default from the flavor), ``url_available`` (compat-b64
    object storage configured), ``stream_enabled`` (honour ``stream: true``),
    ``sse_event_lines`` (write ``event:`` lines), ``sse_done`` (finish with
    ``data: [DONE]``), ``revised_prompt`` (text added to each output, or ``None``).
    """

    style: ClassVar[str] = "openai"
    _CONFIG_ATTRS: ClassVar[frozenset[str]] = FakeVendor._CONFIG_ATTRS | {
        "answer_with",
        "url_available",
        "stream_enabled",
        "sse_event_lines",
        "sse_done",
    }

    def __init__(
        self,
        flavor: Flavor | str = "openai",
        key: str = "sk-test",
        *,
        stream: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if flavor not in RULES:
            raise ValueError(f"unknown flavor {flavor!r}; one of {FLAVORS}")
        super().__init__(key=key, **kwargs)
        self.flavor = flavor
        self.rules = RULES[flavor]
        self.answer_with = self.rules.answer
        self.url_available = True
        self.stream_enabled = self.rules.stream if stream is None else stream
        self.sse_event_lines = True
        self.sse_done = False
        self.revised_prompt: str | None = "" if self.rules.revised_prompt else None
        self._answers = 0

    @property
    def base_url(self) -> str:
        """Root URL, plus ``/v1`` for aiearth (aiearth documents its base with /v1)."""
        return self.root_url + ("/v1" if self.rules.v1_in_base else "")

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/images/generations"): self._generations,
            ("POST", "/v1/images/edits"): self._edits,
        }

    # ----- style hooks -------------------------------------------------------------
    def error_body(self, status: int, message: str, code: str | None = None) -> Any:
        kind = (
            "invalid_request_error"
            if status in (400, 404, 409, 422)
            else "authentication_error"
            if status in (401, 403)
            else "insufficient_quota"
            if status == 402
            else "rate_limit_error"
            if status == 429
            else "image_generation_user_error"
            if code == "moderation_blocked"
            else "server_error"
        )
        if code == "moderation_blocked":
            kind = "image_generation_user_error"
        return {"error": {"message": message, "type": kind, "code": code}}

    def envelope_error_body(self, code: int, message: str) -> Any:
        return {"code": code, "message": message, "data": None}

    def sample_success_body(self) -> Any:
        return {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(not_an_image() * 8).decode()}],
        }

    def wrong_shape_body(self) -> Any:
        return {"created": int(time.time()), "data": {"image": "missing-list"}}

    # ----- handlers ----------------------------------------------------------------
    async def _generations(self, call: Call) -> web.StreamResponse:
        try:
            job = await self._validate(call, edit=False)
        except Invalid as exc:
            return self._invalid(exc)
        return await self._answer(call, job)

    async def _edits(self, call: Call) -> web.StreamResponse:
        try:
            job = await self._validate(call, edit=True)
        except Invalid as exc:
            return self._invalid(exc)
        return await self._answer(call, job)

    def _invalid(self, exc: Invalid) -> web.Response:
        body = self.error_body(exc.status, exc.message, exc.code)
        body["error"]["param"] = exc.param
        return json_response(body, exc.status)

    # ----- validation --------------------------------------------------------------
    async def _validate(self, call: Call, *, edit: bool) -> ImageJob:
        rec = call.rec
        rules = self.rules
        inputs: list[InputImage] = []
        if rec.files or rec.form is not None:
            if not edit or not rules.multipart:
                raise Invalid(
                    "Unsupported content type: send application/json",
                    code="unsupported_content_type",
                )
            params, inputs = self._multipart_params(call)
            self._check_schema("CreateImageEditRequest", params)
        else:
            if rec.json is None and rec.body:
                raise Invalid(
                    "We could not parse the JSON body of your request.", code="invalid_json"
                )
            if not isinstance(rec.json, dict):
                raise Invalid("Request body must be a JSON object", code="invalid_json")
            params = dict(rec.json)
            if edit:
                inputs = await self._json_edit_images(params)
            else:
                self._check_schema("CreateImageRequest", params)
        if rules.strict_keys:
            allowed = schema_properties(
                "CreateImageEditRequest"
                if edit and rec.files
                else "EditImageBodyJsonParam"
                if edit
                else "CreateImageRequest"
            )
            for key in params:
                if key not in allowed or key == "response_format":
                    raise Invalid(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
        return self._common_rules(params, inputs, edit)

    def _check_schema(self, name: str, params: dict[str, Any]) -> None:
        errors = sorted(validator(name).iter_errors(params), key=lambda e: list(e.path))
        if errors:
            err = errors[0]
            param = ".".join(str(p) for p in err.path) or None
            raise Invalid(f"Invalid value for '{param or 'body'}': {err.message}", param)

    def _multipart_params(self, call: Call) -> tuple[dict[str, Any], list[InputImage]]:
        form = dict(call.rec.form or {})
        if "__parse_error__" in form:
            raise Invalid("malformed multipart body", code="invalid_multipart")
        params: dict[str, Any] = {}
        for key, value in form.items():
            if key in ("n", "partial_images", "output_compression"):
                try:
                    params[key] = int(value)
                except ValueError:
                    raise Invalid(f"Invalid value for '{key}': expected an integer", key) from None
            elif key == "stream":
                params[key] = value.lower() in ("true", "1")
            else:
                params[key] = value
        images = [f for f in call.rec.files if f[0] in ("image", "image[]")]
        masks = [f for f in call.rec.files if f[0] == "mask"]
        others = [f[0] for f in call.rec.files if f[0] not in ("image", "image[]", "mask")]
        if others:
            raise Invalid(f"Unknown file field: '{others[0]}'", others[0], "unknown_parameter")
        if not images:
            raise Invalid("Missing required parameter: 'image'.", "image", "missing_required")
        if len(images) > 16:
            raise Invalid("Too many images: at most 16", "image")
        params["image"] = (
            "<binary>"
            if len(images) == 1 and images[0][0] == "image"
            else ["<binary>"] * len(images)
        )
        inputs = []
        for i, (_, _, _, data) in enumerate(images):
            try:
                inputs.append(self.load_upload(data))
            except InputImageError as exc:
                raise Invalid(
                    f"Invalid image file {i}: {exc.message}", "image", "invalid_image_file"
                ) from None
        if masks:
            if not self.rules.mask:
                raise Invalid("mask is not supported", "mask", "unknown_parameter")
            params["mask"] = "<binary>"
            self._check_mask(masks[0][3], inputs[0])
        return params, inputs

    def _check_mask(self, data: bytes, first: InputImage) -> None:
        try:
            mask = self.load_upload(data, formats=("png",))
        except InputImageError as exc:
            raise Invalid(
                f"Invalid mask: {exc.message}; it must be a PNG", "mask", "invalid_image_file"
            ) from None
        if (mask.width, mask.height) != (first.width, first.height):
            raise Invalid(
                "Invalid mask: it must have the same dimensions as the image",
                "mask",
                "invalid_image_file",
            )

    async def _json_edit_images(self, params: dict[str, Any]) -> list[InputImage]:
        rules = self.rules
        refs: list[str] = []
        if "image" in params and rules.json_image_field:
            single = params["image"]
            if isinstance(single, dict):
                single = single.get("image_url")
            if not isinstance(single, str):
                raise Invalid("'image' must be a URL or a base64 data URL", "image")
            refs.append(single)
            rest = {k: v for k, v in params.items() if k != "image"}
            rest["images"] = [{"image_url": "https://placeholder.invalid/x.png"}]
            self._check_schema("EditImageBodyJsonParam", rest)
        elif "images" in params:
            raw = params["images"]
            if rules.json_image_field and isinstance(raw, list):  # compat-sizes: plain strings too
                raw = [{"image_url": r} if isinstance(r, str) else r for r in raw]
                params = {**params, "images": raw}
            self._check_schema("EditImageBodyJsonParam", params)
            for item in raw:
                if "file_id" in item:
                    raise Invalid(
                        "file_id references are not supported here", "images", "invalid_value"
                    )
                refs.append(item["image_url"])
        elif "image" in params:
            raise Invalid(
                "Unknown parameter: 'image'. Use 'images': [{\"image_url\": ...}] "
                "in JSON or a multipart upload.",
                "image",
                "unknown_parameter",
            )
        else:
            raise Invalid("Missing required parameter: 'images'.", "images", "missing_required")
        inputs = []
        for i, ref in enumerate(refs):
            try:
                inputs.append(await self.load_image_ref(ref))
            except InputImageError as exc:
                code = "private_url" if exc.private else "invalid_image_url"
                raise Invalid(f"images[{i}]: {exc.message}", "images", code) from None
        mask = params.get("mask")
        if mask is not None:
            if not rules.mask:
                raise Invalid("mask is not supported", "mask", "unknown_parameter")
            url = mask.get("image_url") if isinstance(mask, dict) else None
            if not isinstance(url, str):
                raise Invalid('mask must be {"image_url": ...}', "mask")
            try:
                img = await self.load_image_ref(url, formats=("png",))
            except InputImageError as exc:
                raise Invalid(
                    f"Invalid mask: {exc.message}", "mask", "invalid_image_file"
                ) from None
            self._check_mask(img.data, inputs[0])
        return inputs

    def _common_rules(
        self, params: dict[str, Any], inputs: list[InputImage], edit: bool
    ) -> ImageJob:
        rules = self.rules
        if rules.model is not None and params.get("model") != rules.model:
            raise Invalid(f"model must be '{rules.model}'", "model", "model_not_found")
        if rules.strict_keys and params.get("model") not in (None, *GPT_IMAGE_MODELS):
            raise Invalid(f"Invalid model '{params.get('model')}'", "model", "model_not_found")
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Invalid("Missing required parameter: 'prompt'.", "prompt", "missing_required")
        if len(prompt) > 32000:
            raise Invalid("prompt is too long: at most 32000 characters", "prompt")
        if rules.forbid_aspect_ratio and "aspect_ratio" in params:
            raise Invalid(
                "aspect_ratio is not supported by gpt-image-2; use size",
                "aspect_ratio",
                "unsupported_parameter",
            )
        # size
        size = params.get("size")
        if size is None:
            if rules.size_required:
                raise Invalid("Missing required parameter: 'size'.", "size", "missing_required")
            size = "auto"
        if not isinstance(size, str):
            raise Invalid("size must be a string", "size")
        if rules.sizes is not None:
            if size not in rules.sizes:
                raise Invalid(
                    f"Invalid size '{size}'. Supported: {', '.join(rules.sizes)}",
                    "size",
                    "invalid_size",
                )
        else:
            self._check_openai_size(size)
        resolved = size if size != "auto" else self._auto_size(inputs)
        # quality
        quality = params.get("quality") or rules.default_quality
        if quality not in rules.qualities:
            raise Invalid(
                f"Invalid quality '{quality}'. Supported: {', '.join(rules.qualities)}", "quality"
            )
        quality = "medium" if quality == "auto" else quality
        # n
        n = params.get("n", 1)
        if n is None:
            n = 1
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= rules.n_max:
            raise Invalid(f"n must be an integer from 1 to {rules.n_max}", "n")
        # output format / compression / background
        fmt = params.get("output_format") or "png"
        if fmt not in rules.output_formats:
            raise Invalid(
                f"Invalid output_format '{fmt}'. Supported: {', '.join(rules.output_formats)}",
                "output_format",
            )
        comp = params.get("output_compression")
        if comp is not None and (not isinstance(comp, int) or not 0 <= comp <= 100):
            raise Invalid("output_compression must be 0-100", "output_compression")
        background = params.get("background") or "auto"
        if background == "transparent" and fmt == "jpeg":
            raise Invalid("Transparent background requires output_format png or webp", "background")
        # response format / stream
        response_format = params.get("response_format")
        if response_format is not None:
            if rules.rejects_response_format:
                raise Invalid(
                    "Unknown parameter: 'response_format'.", "response_format", "unknown_parameter"
                )
            if response_format not in ("url", "b64_json"):
                raise Invalid("response_format must be url or b64_json", "response_format")
        stream = bool(params.get("stream")) and self.stream_enabled
        partial = params.get("partial_images") or 0
        if not isinstance(partial, int) or not 0 <= partial <= 3:
            raise Invalid("partial_images must be 0-3", "partial_images")
        if edit and not inputs:
            raise Invalid("Missing required parameter: 'image'.", "image", "missing_required")
        return ImageJob(
            "edit" if edit else "generation",
            prompt,
            n,
            resolved,
            size,
            quality,
            fmt,
            "transparent" if background == "transparent" else "opaque",
            response_format,
            stream,
            partial,
            inputs,
        )

    @staticmethod
    def _check_openai_size(size: str) -> None:
        if size == "auto":
            return
        try:
            w, h = parse_size(size)
        except ValueError:
            raise Invalid(
                f"Invalid size '{size}': use WIDTHxHEIGHT or auto", "size", "invalid_size"
            ) from None
        if w % 16 or h % 16:
            raise Invalid("Width and height must both be divisible by 16", "size", "invalid_size")
        if max(w, h) > 3840 or max(w, h) / min(w, h) > 3:
            raise Invalid(
                "Size out of range: max edge 3840, aspect ratio within 1:3..3:1",
                "size",
                "invalid_size",
            )
        if not 655_360 <= w * h <= 8_294_400:
            raise Invalid(
                "Size out of range: total pixels must be 655360..8294400", "size", "invalid_size"
            )

    @staticmethod
    def _auto_size(inputs: list[InputImage]) -> str:
        if inputs:
            first = inputs[0]
            if first.width > first.height * 1.2:
                return "1536x1024"
            if first.height > first.width * 1.2:
                return "1024x1536"
        return "1024x1024"

    # ----- answering ---------------------------------------------------------------
    def _answer_mode(self, job: ImageJob) -> str:
        rules = self.rules
        if rules.honours_response_format and job.response_format is not None:
            return "url" if job.response_format == "url" else "b64"
        mode = self.answer_with
        if mode == "alternate":
            mode = "url" if self._answers % 2 == 0 else "b64"
        self._answers += 1
        return mode

    def usage(self, job: ImageJob) -> dict[str, Any]:
        """Plausible token usage for a job (aiearth's shape)."""
        text = max(1, len(job.prompt) // 4)
        image = IMAGE_INPUT_TOKENS * len(job.inputs)
        out = output_tokens(job.size, job.quality) * job.n
        return {
            "input_tokens": text + image,
            "input_tokens_details": {"image_tokens": image, "text_tokens": text},
            "output_tokens": out,
            "total_tokens": text + image + out,
        }

    async def _answer(self, call: Call, job: ImageJob) -> web.StreamResponse:
        url_requested = job.response_format == "url" and self.rules.honours_response_format
        if url_requested:
            fault = self.take_fault(call, {"url_not_available"})
            if fault is not None or not self.url_available:
                return json_response(
                    self.error_body(
                        400,
                        "image_url_not_available: object storage is not configured; "
                        "request b64_json instead",
                        "image_url_not_available",
                    ),
                    400,
                )
        bad = self.take_fault(call, {"bad_result_url"})
        bad_variant = (bad.variant or "404") if bad else None
        w, h = parse_size(job.size)
        data = await self.render_output(w, h, job.output_format, job.background == "transparent")
        if job.stream:
            return await self._stream(call, job, data, bad_variant)
        await self.sleep(self.latency)
        mode = self._answer_mode(job)
        items: list[dict[str, Any]] = []
        for _ in range(job.n):
            if mode == "url":
                item: dict[str, Any] = {"url": self.publish(data, job.output_format, bad_variant)}
            else:
                payload = not_an_image() if bad_variant else data
                item = {"b64_json": base64.b64encode(payload).decode()}
            if self.revised_prompt is not None:
                item["revised_prompt"] = self.revised_prompt
            items.append(item)
        body: dict[str, Any] = {"created": int(time.time()), "data": items}
        if self.rules.echo_params:
            body.update(
                background=job.background, output_format=job.output_format, quality=job.quality
            )
            if job.size in STANDARD_SIZES:
                body["size"] = job.size
        if self.rules.usage:
            body["usage"] = self.usage(job)
        job_id = new_id("img_")
        self.bill(job_id, job.n, size=job.size, quality=job.quality, n=job.n, path=call.rec.path)
        if self.take_fault(call, {"billed_then_500"}) is not None:
            return self.fault_error(500, "internal error after generation")
        return json_response(body)

    async def _stream(
        self, call: Call, job: ImageJob, data: bytes, bad_variant: str | None
    ) -> web.StreamResponse:
        prefix = "image_edit" if job.kind == "edit" else "image_generation"
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(call.request)
        steps = max(1, job.n * (job.partial_images + 1))
        step = self.latency / steps
        b64 = base64.b64encode(not_an_image() if bad_variant else data).decode()
        usage = self.usage(job)
        common = {
            "size": job.requested_size if job.requested_size in STANDARD_SIZES else job.size,
            "quality": job.quality,
            "background": job.background,
            "output_format": job.output_format,
        }
        cut = self.take_fault(call, {"truncated", "disconnect"}, midstream=True)
        for _ in range(job.n):
            for i in range(job.partial_images):
                await self.sleep(step)
                await self._event(
                    resp,
                    f"{prefix}.partial_image",
                    {
                        "type": f"{prefix}.partial_image",
                        "b64_json": b64,
                        "created_at": int(time.time()),
                        "partial_image_index": i,
                        **common,
                    },
                )
            await self.sleep(step)
            if cut is not None:  # the stream dies before any completed event: nothing billed
                if cut.kind == "disconnect" and call.request.transport is not None:
                    call.request.transport.abort()
                    return resp
                await resp.write(f'event: {prefix}.completed\ndata: {{"type": "'.encode())
                await resp.write_eof()
                return resp
            await self._event(
                resp,
                f"{prefix}.completed",
                {
                    "type": f"{prefix}.completed",
                    "b64_json": b64,
                    "created_at": int(time.time()),
                    **common,
                    "usage": usage,
                },
            )
        self.bill(
            new_id("img_"), job.n, size=job.size, quality=job.quality, n=job.n, path=call.rec.path
        )
        if self.sse_done:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _event(self, resp: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
        head = f"event: {name}\n" if self.sse_event_lines else ""
        await resp.write(f"{head}data: {json.dumps(data)}\n\n".encode())

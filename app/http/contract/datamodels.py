"""Request and response types the routes share and the contract each view declares with @api, once: routes
validate with them, /openapi.json is generated from them (KServe's datamodels style; each protocol's own types
are in tfserving_datamodels.py and v2_datamodels.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

import settings
from app.http.errors import ApiError

MAX_IMAGES = int(settings.BY_NAME["MAX_IMAGES_PER_REQUEST"].default)  # the default; openapi.spec takes the served one
# An 8x8 PNG, so generated examples reach the model and not only the validation errors.
TINY_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGM8UaHBgA0wYRUdtBIAHicBeAYWg8oAAAAASUVORK5CYII="
# "image-base64": base64 of a decodable image file. No schema keyword can say "a real image", so the custom
# format names it; tests/schemathesis_hooks.py teaches the fuzzer to generate such strings.
Base64Image = Annotated[str, Field(min_length=1, examples=[TINY_PNG], json_schema_extra={
    "format": "image-base64", "contentEncoding": "base64", "contentMediaType": "image/*",
    "description": "base64-encoded image file (JPEG, PNG, GIF, WebP, BMP, ...)"})]
# An optional request field: absent is fine, null is not (the server refuses it, so the schema must too).
Absent = SkipJsonSchema[None]
Probability = Annotated[float, Field(ge=0, le=1)]
RequestId = Annotated[str, Field(description="the request's id (its X-Request-ID when that was a plain token of up "
                                             "to 128 characters); POST /feedback refers to it")]


class Model(BaseModel):
    """Base of every declared type: unknown request fields are kept (clients send extras), strict types."""

    model_config = ConfigDict(strict=True, extra="allow")


class Error(Model):
    error: str


class Answer(Model):
    """The decision every prediction route shares (model_store.answers.decision)."""

    label: str = Field(description='a class name, or "unknown" when state is "neither"')
    state: Literal["sure", "not_sure", "neither"] = Field(description=(
        'sure: a confident answer; not_sure: an answer (the most likely class) flagged as doubtful; neither: '
        'none of the classes (label "unknown")'))
    confidence: Probability = Field(description="probability of the most likely trained class")
    looks_like: str = Field(description="the most likely class, whatever the state")
    ood_score: Probability = Field(description="higher = less like the trained classes (the version's ood.method)")
    abstained: bool = Field(description='state is "neither": ood_score is above the version\'s threshold, label '
                                        'is "unknown"; the class probabilities stay')


class Prediction(Answer):
    probabilities: dict[str, float]
    model_version: str
    filename: str | None = None
    request_id: RequestId | None = None


class Predictions(Model):
    request_id: RequestId
    predictions: list[Prediction]


class OneImage(Model):
    image: Base64Image


class FeedbackRequest(Model):
    request_id: RequestId = Field(min_length=1)
    index: int = Field(0, ge=0, description="the image's position in its request (0 for a single image)")
    label: str = Field(description='what the image really is: a trained class name, or "neither"',
                       examples=["cats", "neither"])


class Feedback(Model):
    request_id: RequestId
    index: int
    label: str
    model_version: str
    served: str = Field(description="the label answered")
    agreed: bool = Field(description="label confirms the served answer")
    trusted: bool = Field(description="taken as training data as it is (API keys off, or a `curate` key); else it "
                                      "waits for review")


class Status(Model):
    status: str
    model_version: str | None = None
    error: str | None = None


class Live(Model):
    live: bool


class Ready(Model):
    ready: bool
    name: str | None = None


class Explanation(Prediction):
    method: Literal["gradcam", "occlusion"]
    heatmap: list[list[Probability]]
    overlay_png: str = Field(json_schema_extra={"contentEncoding": "base64", "contentMediaType": "image/png"})


Body = type[Model] | Callable[[int], dict]


@dataclass(frozen=True)
class Contract:
    """What one view takes and answers: read by spec(), never by the request path."""

    response: type[Model] | tuple[type[Model], ...] | None  # the 200 JSON body: one type or one of several
    body: Body | None  # a JSON type, or content type -> schema given the served image limit
    query: tuple[dict | Callable[[list[str]], dict], ...]
    errors: dict[int, str | tuple[str, type[Model]]]  # beyond what every POST or model route answers
    content: dict[str, dict]  # other 200 content types
    headers: dict[str, dict] = field(default_factory=dict)


def api(response: type[Model] | tuple[type[Model], ...] | None = None, *, body: Body | None = None,
        query: tuple = (), errors: dict | None = None, content: dict[str, dict] | None = None,
        headers: dict[str, dict] | None = None) -> Callable:
    """Declare a view's contract for /openapi.json (its docstring is the summary)."""
    def mark(view: Callable) -> Callable:
        view.contract = Contract(response, body, query, errors or {}, content or {}, headers or {})
        return view
    return mark


def parse(model: type[Model], body: dict, hint: str) -> Model:
    """body validated as `model`, or a 400 naming each wrong field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        wrong = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiError(f"{wrong} (expected {hint})") from None

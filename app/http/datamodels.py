"""Request and response types of the JSON API and the contract each view declares with @api, once: routes
validate with them, /openapi.json is generated from them (KServe's v2_datamodels style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

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
    """The decision every prediction route shares (model_store.decision)."""

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


class B64(Model):
    b64: Base64Image


class NamedB64(Model):
    image_bytes: B64


class TFPredictRequest(Model):
    # The limit is documented, not validated here: check_count enforces the served MAX_IMAGES_PER_REQUEST.
    instances: list[B64 | NamedB64] = Field(min_length=1, json_schema_extra={"maxItems": MAX_IMAGES})


class TFPredictResponse(Model):
    predictions: list[list[float]]
    answers: list[Answer] = Field(description="per instance, the answer every route gives")


class TFVersionStatus(Model):
    version: str
    state: str = Field(description="AVAILABLE, LOADING or END (failed, with its error_message)")
    status: dict[str, str]


class TFModelStatus(Model):
    model_version_status: list[TFVersionStatus]
    poll: dict[str, Any] = Field(description="the hot-reload poller: failures in a row and the last error")
    feedback: dict[str, dict[str, float]] | None = Field(None, description="live agreement with feedback per version")
    rollout: dict[str, Any] | None = Field(None, description="labels, stable, canary and shadow shares, candidate")


class TFModelMetadata(Model):
    model_spec: dict[str, str]
    metadata: dict[str, Any]


class V2InferInput(Model):
    name: Literal["image"]
    datatype: Literal["BYTES"]
    shape: list[Annotated[int, Field(ge=1, le=MAX_IMAGES)]] = Field(
        min_length=1, max_length=1, description="[number of images]; must equal len(data)")
    data: list[Base64Image] = Field(min_length=1, max_length=MAX_IMAGES)


class V2OutputParameters(Model):
    binary_data: bool | Absent = None


class V2RequestedOutput(Model):
    name: Literal["probabilities", "ood_score", "state"]
    parameters: V2OutputParameters | Absent = None


class V2InferRequest(Model):
    id: str | Absent = None
    inputs: list[V2InferInput] = Field(min_length=1, max_length=1)
    outputs: Annotated[list[V2RequestedOutput], Field(max_length=3)] | Absent = None


class V2ExplainParameters(Model):
    method: Literal["gradcam", "occlusion"] | Absent = None


class V2ExplainInput(V2InferInput):
    shape: list[Annotated[int, Field(ge=1, le=1)]] = Field(min_length=1, max_length=1, description="[1]")
    data: list[Base64Image] = Field(min_length=1, max_length=1)


class V2ExplainRequest(Model):
    id: str | Absent = None
    inputs: list[V2ExplainInput] = Field(min_length=1, max_length=1)
    parameters: V2ExplainParameters | Absent = None


class V2Tensor(Model):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class V2InferResponse(Model):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[V2Tensor]


class V2TensorMetadata(Model):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(Model):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
    parameters: dict[str, Any]


class V2ServerMetadata(Model):
    name: str
    version: str
    extensions: list[str]


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


# Every type the document lists under components/schemas.
COMPONENTS = (Error, OneImage, Prediction, Predictions, FeedbackRequest, Feedback, TFPredictRequest, TFPredictResponse,
              TFModelStatus, TFModelMetadata, V2InferRequest, V2ExplainRequest, V2InferResponse, V2ModelMetadata,
              V2ServerMetadata, Status, Live, Ready, Explanation)


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

"""TF Serving REST API types (`/v1/models/alexnet`): request, response, status and metadata."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.http.contract.datamodels import MAX_IMAGES, Answer, Base64Image, Model


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

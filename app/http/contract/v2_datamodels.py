"""KServe V2 (Open Inference Protocol) types: infer and explain requests, tensors, model and server metadata."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from app.http.contract.datamodels import MAX_IMAGES, Absent, Base64Image, Model


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

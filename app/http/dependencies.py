"""FastAPI dependencies shared by the routes: app state, query parameters, the image batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from app.contract.images import Invert
from app.core.jobs import Job, Model
from app.core.service import Inference, InferenceCore, Output
from app.http.access import count_images
from app.models.registry import ModelRegistry
from app.pipeline.uploads import read_images
from app.settings import Settings


# Dependencies are `async def` although they only read app.state: FastAPI runs a plain `def`
# dependency in its thread pool, and three thread hops per request showed up under load.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_core(request: Request) -> InferenceCore:
    core: InferenceCore = request.app.state.core
    return core


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
CoreDep = Annotated[InferenceCore, Depends(get_core)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


Query = TypeVar("Query", bound=BaseModel)


async def parse_query(request: Request, model: type[Query]) -> Query:
    """The request's query parameters validated as `model`, in one pydantic call; a problem is
    FastAPI's own RequestValidationError at ("query", field).

    Called by the endpoints themselves rather than declared as FastAPI parameters: FastAPI's
    `Annotated[model, Query()]` inspects every field's annotation again on every request
    (7 % of the request path's CPU, bench/path_cost.py, docs/benchmarks.md), and the direct
    routes (app/http/direct.py) run endpoints without FastAPI's parameter machinery. The
    route's OpenAPI parameters come from the same model (`query_parameters`).
    """
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as err:
        problems = [{**e, "loc": ("query", *e["loc"])} for e in err.errors()]
        raise RequestValidationError(problems) from None


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The model's fields as OpenAPI query parameters, as FastAPI would list them."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field,
            **({"description": field["description"]} if "description" in field else {}),
        }
        for name, field in schema["properties"].items()
    ]


class ImageQuery(BaseModel):
    """The query parameters every image endpoint takes, validated in one pydantic call
    (`parse_query`)."""

    model: str | None = Field(
        None, description="model to use; default: the service's default model"
    )
    version: int | None = Field(
        None,
        ge=1,
        description="model version to use (pin it to keep embeddings comparable across "
        "reloads); default: the highest served",
    )
    resize: bool = Field(
        True, description="fit non-28x28 images into 28x28; false makes them a 422"
    )
    invert: Invert = Field(
        "auto",
        description="invert polarity: auto detects dark strokes on a light ground by the "
        "image border; true/false force it",
    )
    debug: Literal["framed"] | None = Field(
        None,
        description="framed: also return each input image as the model saw it (after "
        "polarity, ground removal, cropping and fitting), as base64 28x28 PNGs in `framed`",
    )


class OodQuery(ImageQuery):
    ood_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="ood_score above which in_distribution is false (default: the version's, "
        "0.99, about 1% false alarms on the model's own kind of image)",
    )


@dataclass(frozen=True)
class ImageBatch:
    """The model a request picked and its images (decoded later, in the worker thread)."""

    model: Model
    job: Job
    core: InferenceCore

    async def run(self, *wanted: Output) -> Inference:
        return await self.core.run(self.model, self.job, wanted)


def chosen_model(request: Request, query: ImageQuery) -> Model:
    """The model version a request asked for (404 if it is not served)."""
    registry: ModelRegistry = request.app.state.registry
    return registry.get(query.model, query.version)


async def image_batch(request: Request, query: ImageQuery) -> ImageBatch:
    """What the image endpoints do first: resolve the model, then read the images.

    A plain call from the route, not a FastAPI dependency: each dependency costs its own
    resolution per request, and this one reads only the app's state and the query.
    """
    core: InferenceCore = request.app.state.core
    model = chosen_model(request, query)
    options = core.image_options(model, query.resize, query.invert)
    job = await read_images(request, options, core.settings.max_images)
    count_images(request, job.count)
    return ImageBatch(model, job, core)

"""FastAPI dependencies shared by the routes: app state, query parameters, the image batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from pydantic import BaseModel, Field

from app.images import ImageOptions, Invert
from app.jobs import Job, Model, Operation, Result, Runner
from app.registry import ModelRegistry
from app.settings import Settings
from app.uploads import read_images


# Dependencies are `async def` although they only read app.state: FastAPI runs a plain `def`
# dependency in its thread pool, and three thread hops per request showed up under load.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


async def get_runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
RunnerDep = Annotated[Runner, Depends(get_runner)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


class ImageQuery(BaseModel):
    """The query parameters every image endpoint takes, validated in one pydantic call.

    A query-parameter model rather than one FastAPI parameter (and dependency) each: FastAPI
    inspects every declared parameter's annotation on every request, which cost about as
    much as parsing the image (profile in docs/benchmarks.md). OpenAPI lists the fields as
    query parameters all the same.
    """

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


def image_options(model: Model, settings: Settings, resize: bool, invert: Invert) -> ImageOptions:
    spec = model.manifest.input
    return ImageOptions(
        max_pixels=settings.max_image_pixels,
        resize=resize,
        invert=invert,
        fit_box=spec.fit_box,
        centre_of_mass=spec.centre_of_mass,
    )


@dataclass(frozen=True)
class ImageBatch:
    """The model a request picked, its images (decoded later, in the worker thread) and the
    runner that will run them."""

    model: Model
    job: Job
    runner: Runner

    async def run(self, operation: Operation) -> Result:
        return await self.runner.run(self.model, operation, self.job)


def chosen_model(request: Request, query: ImageQuery) -> Model:
    """The model version a request asked for (404 if it is not served)."""
    registry: ModelRegistry = request.app.state.registry
    return registry.get(query.model, query.version)


async def image_batch(request: Request, query: ImageQuery) -> ImageBatch:
    """What the image endpoints do first: resolve the model, then read the images.

    A plain call from the route, not a FastAPI dependency: each dependency costs its own
    resolution per request, and this one reads only the app's state and the query.
    """
    state = request.app.state
    settings: Settings = state.settings
    model = chosen_model(request, query)
    options = image_options(model, settings, query.resize, query.invert)
    job = await read_images(request, options, settings.max_images)
    request.state.images = job.count  # for the access log line
    return ImageBatch(model, job, state.runner)

"""FastAPI dependencies shared by the routes: app state, query parameters, the image batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from app.images import ImageOptions, Invert
from app.jobs import Job, Model, Runner
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
ModelName = Annotated[
    str | None, Query(description="model to use; default: the service's default model")
]
VersionQuery = Annotated[
    int | None,
    Query(
        ge=1,
        description="model version to use (pin it to keep embeddings comparable across "
        "reloads); default: the highest served",
    ),
]
Resize = Annotated[
    bool, Query(description="fit non-28x28 images into 28x28; false makes them a 422")
]
InvertQuery = Annotated[
    Invert,
    Query(
        description="invert polarity: auto detects dark strokes on a light ground by the "
        "image border; true/false force it"
    ),
]


async def chosen_model(
    request: Request, registry: RegistryDep, model: ModelName = None, version: VersionQuery = None
) -> Model:
    """The model version a request asked for (404 if it is not served)."""
    return registry.get(model, version)


ModelDep = Annotated[Model, Depends(chosen_model)]


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
    """The model a request picked and its images (decoded later, in the worker thread)."""

    model: Model
    job: Job


async def image_batch(
    request: Request,
    model: ModelDep,
    settings: SettingsDep,
    resize: Resize = True,
    invert: InvertQuery = "auto",
) -> ImageBatch:
    """Dependency shared by the image endpoints: resolve the model, then read the images."""
    options = image_options(model, settings, resize, invert)
    job = await read_images(request, options, settings.max_images)
    request.state.images = job.count  # for the access log line
    return ImageBatch(model, job)


ImagesDep = Annotated[ImageBatch, Depends(image_batch)]

"""latentserve's Python client: embeddings, classes, reconstructions and nearest neighbours
of images from a latentserve service. Installs without TensorFlow (`pip install latentserve`).

    from latentserve import Client
    with Client("http://127.0.0.1:8000") as client:
        result = client.embed(["a.png", "b.png"], model="fashion-mnist")
        result.vectors        # float32 (2, dim), in input order
        result.model.version  # the version that made them: pin it with version=
"""

from latentserve.client import AsyncClient, Client
from latentserve.errors import (
    BadRequest,
    DeadlineExceeded,
    IndexNotFound,
    InternalError,
    InvalidEmbedding,
    InvalidImage,
    LatentServeError,
    ModelNotFound,
    NotFound,
    NotReady,
    PayloadTooLarge,
    QueueFull,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    VersionNotFound,
)
from latentserve.results import (
    Classifications,
    ClassScore,
    Embeddings,
    ModelInfo,
    ModelRef,
    Neighbour,
    Neighbours,
    Prediction,
    Reconstructions,
)

__all__ = [
    "AsyncClient",
    "BadRequest",
    "ClassScore",
    "Classifications",
    "Client",
    "DeadlineExceeded",
    "Embeddings",
    "IndexNotFound",
    "InternalError",
    "InvalidEmbedding",
    "InvalidImage",
    "LatentServeError",
    "ModelInfo",
    "ModelNotFound",
    "ModelRef",
    "Neighbour",
    "Neighbours",
    "NotFound",
    "NotReady",
    "PayloadTooLarge",
    "Prediction",
    "QueueFull",
    "Reconstructions",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "VersionNotFound",
]

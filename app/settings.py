"""Service configuration: one pydantic-settings class, every field from LATENTSERVE_* env vars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.models.versions import VersionPolicy

LogLevel = Literal["critical", "error", "warning", "info", "debug"]
Runtime = Literal["auto", "litert", "tensorflow"]


def _split_names(value: object) -> object:
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


class Settings(BaseSettings):
    """Read once at start; invalid values stop the process with a message naming the field."""

    model_config = SettingsConfigDict(
        env_prefix="LATENTSERVE_", extra="forbid", use_attribute_docstrings=True
    )

    model_repository: Path = Path("models")
    """Directory laid out as <name>/<version>/{encoder,decoder,classifier,manifest.json}."""
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated model names to load; empty means every model in the repository."""
    default_model: str | None = None
    """Model used when a request has no ?model=; empty means the first loaded (sorted)."""
    version_policy: Annotated[VersionPolicy, NoDecode, BeforeValidator(VersionPolicy.parse)] = (
        VersionPolicy()
    )
    """Versions of each model to serve (TensorFlow Serving's policies): latest (the highest),
    latest:N (the N highest), all, or explicit versions such as 3,5. Requests pin one with
    ?version=; without it they get the highest served."""
    index_cache_dir: Path | None = None
    """Where similarity graphs built at load are kept, so that the next start, worker or
    reload opens them memory-mapped instead of building them again (seconds for 60,000
    images); empty means <model_repository>/.index-cache. One that cannot be written costs
    nothing but the rebuilds: the graphs are then built at every load."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    """Largest request body accepted, in bytes (larger: 413)."""
    max_images: int = Field(default=256, gt=0)
    """Most images in one request (more: 413)."""
    max_image_pixels: int = Field(default=4096 * 4096, gt=0)
    """Most pixels (width x height) one uploaded image may declare; checked before decoding."""
    batching: bool = True
    """Gather images from concurrent requests into shared model calls (false: one call each)."""
    max_batch_images: int = Field(default=128, gt=0)
    """Most images in one model call (a larger request runs alone, in several calls): bounds
    the activations' memory; 128 runs about as many images/s as 512 (docs/benchmarks.md)."""
    max_batch_delay_ms: float = Field(default=0.0, ge=0)
    """How long a batch that is still filling may wait for more requests under load. 0, as
    Triton's dynamic batcher: requests that arrive while a call runs form the next batch anyway,
    and waiting idled each of 2 workers (2 ms: 0.66x the req/s of 0; docs/benchmarks.md)."""
    max_queue_images: int = Field(default=4096, gt=0)
    """Images allowed to wait per batch queue; beyond that requests get 429 + Retry-After.
    (Besides the queue, one batch is in the model and the next one decoded, waiting for it.)"""
    request_timeout_ms: float = Field(default=30_000, gt=0)
    """Deadline for a request's model work, time in the batch queue included (then 504)."""
    reload_interval_s: float = Field(default=10.0, ge=0)
    """How often to look for a new model version to load, check, warm and swap in; 0 = never."""
    runtime: Runtime = "auto"
    """What runs the models: `litert` (TensorFlow Lite flatbuffers exported beside the
    SavedModels; no TensorFlow in the worker: a fifth of the memory, ready in about a second),
    `tensorflow` (the SavedModels themselves), or `auto`: LiteRT for every version exported
    with LiteRT graphs, TensorFlow for the others (docs/operations.md)."""
    inference_threads: int = Field(default=1, ge=0)
    """LiteRT's or TensorFlow's intra-op threads, and NumPy BLAS threads, per worker; 0 lets
    each library decide (one per core). One by default: their idle pool threads spin on cores
    the event loop and other workers need; with TensorFlow, one thread each served 1.28x the
    single-connection requests and 1.35x the 256-image requests, at half the CPU per request
    (docs/benchmarks.md, `bench/ab.py --before-env LATENTSERVE_INFERENCE_THREADS=0`)."""
    host: str = "127.0.0.1"
    """Address uvicorn binds to (0.0.0.0 in the container)."""
    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port uvicorn listens on."""
    grpc_port: int = Field(default=8001, ge=0, le=65535)
    """TCP port of the Open Inference Protocol V2 over gRPC (same host, models, limits and
    keys as HTTP); 0 turns gRPC off."""
    workers: int = Field(default=1, ge=1)
    """uvicorn worker processes; each loads its own copy of the models."""
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Comma-separated API keys; when any are set (here or in the file), requests need one."""
    api_keys_file: Path | None = None
    """File with one API key per line (blank lines and # comments ignored)."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated origins allowed by CORS; empty turns CORS off."""
    log_level: LogLevel = "info"
    """Log level for the service and uvicorn."""
    log_json: bool = False
    """Write logs as one JSON object per line (request lines carry structured fields)."""
    demo: bool = True
    """Serve the demo page at / (static files; the page only calls this HTTP API)."""

    @model_validator(mode="before")
    @classmethod
    def _parse_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in ("models", "api_keys", "cors_origins"):
                if name in data:
                    data = {**data, name: _split_names(data[name])}
        return data

    @model_validator(mode="after")
    def _check_paths(self) -> Settings:
        if not self.model_repository.is_dir():
            raise ValueError(f"model_repository {self.model_repository} is not a directory")
        if self.default_model and self.models and self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not in models {self.models}")
        if self.grpc_port and self.grpc_port == self.port:
            raise ValueError(f"grpc_port {self.grpc_port} is the HTTP port too")
        if self.api_keys_file is not None and not self.api_keys_file.is_file():
            raise ValueError(f"api_keys_file {self.api_keys_file} does not exist")
        return self

    @property
    def graph_cache(self) -> Path:
        from app.contract.similarity import GRAPH_CACHE_DIR  # usearch only when asked

        return self.index_cache_dir or self.model_repository / GRAPH_CACHE_DIR

    def all_api_keys(self) -> list[str]:
        keys = [key.get_secret_value() for key in self.api_keys]
        if self.api_keys_file is not None:
            lines = self.api_keys_file.read_text().splitlines()
            keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        return keys

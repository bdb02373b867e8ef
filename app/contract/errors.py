"""One error hierarchy for the whole service (no HTTP here: app/http/errors.py renders it).

Each error carries the status code and type every protocol maps it to, and `index`, the
offending image (0-based, request order) where there is one.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    status_code = 500
    error_type = "internal_error"
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index


class BadRequest(ServiceError):
    status_code = 400
    error_type = "bad_request"


class Unauthorized(ServiceError):
    status_code = 401
    error_type = "unauthorized"
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class ModelNotFound(ServiceError):
    status_code = 404
    error_type = "model_not_found"


class VersionNotFound(ServiceError):
    status_code = 404
    error_type = "version_not_found"


class IndexNotFound(ServiceError):
    """The model version has no similarity index (`/similar`)."""

    status_code = 404
    error_type = "index_not_found"


class PayloadTooLarge(ServiceError):
    status_code = 413
    error_type = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = 415
    error_type = "unsupported_media_type"


class InvalidImage(ServiceError):
    status_code = 422
    error_type = "invalid_image"


class InvalidEmbedding(ServiceError):
    status_code = 422
    error_type = "invalid_embedding"


class QueueFull(ServiceError):
    status_code = 429
    error_type = "queue_full"
    headers: ClassVar[dict[str, str] | None] = {"Retry-After": "1"}


class DeadlineExceeded(ServiceError):
    status_code = 504
    error_type = "deadline_exceeded"


class NotReady(ServiceError):
    status_code = 503
    error_type = "not_ready"

"""One exception per error type the service answers with, all under LatentServeError.

The service's errors have one shape, `{"error": {"type", "message", "index"}}`; the client
raises the class registered for `type`, with the message, the HTTP status and, where the
service names one, the index of the offending input in the caller's own sequence (the client
adds the offset of the chunk it sent).
"""

from __future__ import annotations

from typing import ClassVar


class LatentServeError(Exception):
    error_type: ClassVar[str] = "error"

    def __init__(
        self,
        message: str,
        status: int | None = None,
        index: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message if index is None else f"{message} (input {index})")
        self.message = message
        self.status = status
        self.index = index
        self.request_id = request_id


class ServiceUnavailable(LatentServeError):
    """The service could not be reached, or kept answering 429/503, within the retries."""

    error_type = "service_unavailable"


class BadRequest(LatentServeError):
    error_type = "bad_request"


class Unauthorized(LatentServeError):
    error_type = "unauthorized"


class NotFound(LatentServeError):
    error_type = "not_found"


class ModelNotFound(NotFound):
    error_type = "model_not_found"


class VersionNotFound(NotFound):
    error_type = "version_not_found"


class IndexNotFound(NotFound):
    error_type = "index_not_found"


class PayloadTooLarge(LatentServeError):
    error_type = "payload_too_large"


class UnsupportedMediaType(LatentServeError):
    error_type = "unsupported_media_type"


class InvalidImage(LatentServeError):
    error_type = "invalid_image"


class InvalidEmbedding(LatentServeError):
    error_type = "invalid_embedding"


class QueueFull(LatentServeError):
    error_type = "queue_full"


class NotReady(LatentServeError):
    error_type = "not_ready"


class DeadlineExceeded(LatentServeError):
    error_type = "deadline_exceeded"


class InternalError(LatentServeError):
    error_type = "internal_error"


ERRORS: dict[str, type[LatentServeError]] = {
    cls.error_type: cls
    for cls in (
        BadRequest,
        Unauthorized,
        NotFound,
        ModelNotFound,
        VersionNotFound,
        IndexNotFound,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidImage,
        InvalidEmbedding,
        QueueFull,
        NotReady,
        DeadlineExceeded,
        InternalError,
    )
}

"""The /v1 error answer: OpenAI's JSON shape `{"error": {"message", "type", "param", "code"}}` with one
sentence, and the one mapping of exceptions to it (`error_for`): 400 bad input (`InputError`), 404 an
unknown model or voice (`UnknownName`), 429 a caller past its allowances (`RateLimited`, with
`Retry-After`), 503 engine unavailable (`engine_unavailable`) or busy
(`server_busy`, with `Retry-After`), 500 an engine's failure (`engine_error`) or anything unexpected
(`internal_error`, logged with its traceback, never shown)."""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

from engines.base import BusyError, EngineError, InputError, RateLimited, UnavailableError
from service.limits import RateLimiter

from .voices import UnknownName

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as OpenAI's JSON error object."""

    TYPES = {
        400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
        404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
        415: "invalid_request_error", 429: "requests",
    }  # fmt: skip

    def __init__(
        self, status: int, message: str, code: str, param: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        """OpenAI's error object: message, type, param, code."""
        kind = self.TYPES.get(self.status, "server_error")
        return {"message": self.message, "type": kind, "param": self.param, "code": self.code}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.body()}, status_code=self.status, headers=self.headers)


def error_for(exc: Exception) -> ApiError:
    """The API error for any exception; unexpected ones are logged with their traceback."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownName):
        return ApiError(404, exc.message, f"{exc.param}_not_found", exc.param)
    if isinstance(exc, InputError):
        return ApiError(400, str(exc), "invalid_value")
    if isinstance(exc, RateLimited):
        retry = RateLimiter.retry_after(exc.retry_after_s)
        return ApiError(429, str(exc), "rate_limit_exceeded", headers={"Retry-After": retry})
    if isinstance(exc, BusyError):
        retry = max(1, int(round(exc.retry_after_s)))
        return ApiError(503, str(exc), "server_busy", headers={"Retry-After": str(retry)})
    if isinstance(exc, UnavailableError):
        return ApiError(503, str(exc), "engine_unavailable")
    if isinstance(exc, EngineError):
        log.warning("Speech request failed: %s", exc)
        return ApiError(500, str(exc), "engine_error")
    log.exception("Speech request failed unexpectedly")
    return ApiError(500, "Synthesis failed unexpectedly; please try again.", "internal_error")

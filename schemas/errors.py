"""The typed errors of llm-fleet, and their wire form.

Every error a caller can see is an `LLMError`. Errors cross Redis as plain JSON
(`to_dict` / `error_from_dict`), never pickled, and come back as the same class.

    LLMError
    ├── InvalidRequestError          the request breaks a rule (refused before it is queued)
    │   ├── UnknownModelError        the model is not in the catalog
    │   ├── ModelRetiredError        the provider retired the model (the error names its replacement)
    │   └── RequestConflictError     the request_id exists with a different body
    ├── ModelNotAllowedError         the model is not allowed by policy
    ├── RequestNotFoundError         no request with that id (or its result expired)
    ├── ResultTimeoutError           the caller stopped waiting
    ├── QueueFullError               the provider's queue is at its bound
    ├── BudgetExceededError          the source_agent has spent its daily budget
    ├── FleetUnavailableError        Redis could not be reached in time
    │   └── FleetAccessDeniedError   Redis refused our credentials or rights (AUTH, ACL): final
    ├── RequestCancelledError        the request was cancelled
    ├── DeadlineExceededError        the request's time budget ran out
    ├── MalformedJobError            a job in Redis is not a valid request
    ├── WorkerLostError              the worker died mid-request and the job was not re-run
    └── ProviderError                the provider failed; `retryable` says if trying again may help
        ├── RateLimitedError         429 (retry_after when the provider says)
        ├── OverloadedError          Anthropic 529 and the like
        ├── ProviderTimeoutError     the provider did not answer in time
        ├── ProviderUnavailableError 5xx, connection refused or dropped
        ├── MalformedResponseError   the provider answered something we cannot read
        ├── AuthenticationError      401 / 403
        ├── BadRequestError          400 / 422: the provider refused the request
        ├── NotFoundError            404: model (or endpoint) unknown upstream
        └── ContentFilteredError     the prompt was refused before any output
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ContentFilteredError",
    "DeadlineExceededError",
    "FleetAccessDeniedError",
    "FleetUnavailableError",
    "InvalidRequestError",
    "LLMError",
    "MalformedJobError",
    "MalformedResponseError",
    "ModelNotAllowedError",
    "ModelRetiredError",
    "NotFoundError",
    "OverloadedError",
    "ProviderError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "QueueFullError",
    "RateLimitedError",
    "RequestCancelledError",
    "RequestConflictError",
    "RequestNotFoundError",
    "ResultTimeoutError",
    "UnknownModelError",
    "WorkerLostError",
    "error_from_dict",
]

_REGISTRY: dict[str, type[LLMError]] = {}


class LLMError(Exception):
    """Base of every llm-fleet error."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, retryable: bool | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable  # type: ignore[misc]
        self.details: dict[str, Any] = {k: v for k, v in details.items() if v is not None}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["details"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe wire form: type, message, retryable and any details."""
        return {"type": type(self).__name__, "message": self.message, "retryable": self.retryable, **self.details}

    def __reduce__(self) -> tuple[Any, ...]:
        return error_from_dict, (self.to_dict(),)


_REGISTRY["LLMError"] = LLMError


def error_from_dict(data: dict[str, Any]) -> LLMError:
    """Rebuild the typed error written by `LLMError.to_dict` (an unknown type becomes `LLMError`)."""
    fields = dict(data)
    cls = _REGISTRY.get(str(fields.pop("type", "")), LLMError)
    message = str(fields.pop("message", "unknown error"))
    retryable = fields.pop("retryable", None)
    err = cls.__new__(cls)
    LLMError.__init__(err, message, retryable=bool(retryable) if retryable is not None else None, **fields)
    return err


class InvalidRequestError(LLMError):
    """The request breaks a rule; it was refused before it was queued."""


class UnknownModelError(InvalidRequestError):
    def __init__(self, model: str, *, suggestions: list[str] | None = None) -> None:
        hint = f" (did you mean {', '.join(suggestions)}?)" if suggestions else ""
        super().__init__(f"unknown model {model!r}{hint}; `llm-fleet models` lists the catalog", model=model)


class ModelRetiredError(InvalidRequestError):
    def __init__(self, model: str, *, replacement: str | None = None) -> None:
        instead = f"; use {replacement!r} (or LLM_RETIRED_MODELS=replace)" if replacement else ""
        super().__init__(f"model {model!r} is retired by its provider{instead}", model=model, replacement=replacement)


class RequestConflictError(InvalidRequestError):
    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request_id {request_id!r} already exists with a different body; use a new request_id",
            request_id=request_id,
        )


class ModelNotAllowedError(LLMError):
    def __init__(
        self, model: str, *, policy_version: int = 0, request_id: str | None = None, trace_id: str | None = None
    ) -> None:
        super().__init__(
            f"model {model!r} is not allowed by the allowed-models policy (version {policy_version}); "
            "`llm-fleet policy show` says what is",
            model=model,
            policy_version=policy_version,
            request_id=request_id,
            trace_id=trace_id,
        )


class RequestNotFoundError(LLMError):
    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"no request with id {request_id!r} (never submitted, or its result expired)", request_id=request_id
        )


class ResultTimeoutError(LLMError):
    retryable = True


class QueueFullError(LLMError):
    retryable = True


class BudgetExceededError(LLMError):
    def __init__(self, source_agent: str, *, spent_usd: float, budget_usd: float) -> None:
        super().__init__(
            f"source_agent {source_agent!r} has spent ${spent_usd:.4f} of its ${budget_usd:g} daily budget "
            "(UTC day); `llm-fleet budget show` tells",
            source_agent=source_agent,
            spent_usd=spent_usd,
            budget_usd=budget_usd,
        )


class FleetUnavailableError(LLMError):
    retryable = True


class FleetAccessDeniedError(FleetUnavailableError):
    """Redis refused the credentials in REDIS_URL (a missing or wrong password, an ACL user it does not know):
    no wait mends that, so it is raised at once."""

    retryable = False


class RequestCancelledError(LLMError):
    pass


class DeadlineExceededError(LLMError):
    pass


class MalformedJobError(LLMError):
    pass


class WorkerLostError(LLMError):
    retryable = True


class ProviderError(LLMError):
    """The provider failed. `provider`, `status_code` and `retry_after` (seconds) are set when known."""


class RateLimitedError(ProviderError):
    retryable = True


class OverloadedError(ProviderError):
    retryable = True


class ProviderTimeoutError(ProviderError):
    retryable = True


class ProviderUnavailableError(ProviderError):
    retryable = True


class MalformedResponseError(ProviderError):
    retryable = True


class AuthenticationError(ProviderError):
    pass


class BadRequestError(ProviderError):
    pass


class NotFoundError(ProviderError):
    pass


class ContentFilteredError(ProviderError):
    pass

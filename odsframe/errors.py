"""Exceptions and warnings raised by odsframe.

Every error derives from :class:`ODSError`. Errors that come from a portal's answer carry
the HTTP status, the ODS ``error_code`` and the server's ``message`` when there is one.
"""

from __future__ import annotations

from datetime import datetime


class ODSError(Exception):
    """Base class of every odsframe error.

    Parameters
    ----------
    message
        What went wrong and what to do about it.
    status
        HTTP status of the portal's answer, when the error comes from one.
    error_code
        The ODS ``error_code`` (v2) or ``errorcode`` (v1) of the answer.
    server_message
        The server's own message, unchanged.
    dataset
        The dataset concerned, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | int | None = None,
        server_message: str | None = None,
        dataset: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.server_message = server_message
        self.dataset = dataset
        self.url = url


class InvalidQueryArgument(ODSError, ValueError):
    """A query argument was rejected before any request was made."""


class AuthenticationError(ODSError):
    """The portal refused the credentials (401/403, or a login page served with 200)."""


class DatasetNotFoundError(ODSError):
    """The dataset (or record, or attachment) does not exist or is not visible to you."""


class QueryError(ODSError):
    """The portal rejected the query (``ODSQLError`` or ``InvalidRESTParameterError``)."""


class QuotaExceededError(ODSError):
    """The portal's API quota is used up; ``reset_time`` says when it resets."""

    def __init__(
        self, message: str, *, reset_time: datetime | None = None, **kwargs: object
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.reset_time = reset_time


class ServerError(ODSError):
    """The portal failed (5xx) or answered something that is not an ODS response."""


class PortalConnectionError(ODSError, ConnectionError):
    """The portal could not be reached."""


class IncompleteResultError(ODSError):
    """Fewer or more rows arrived than the server said it had."""


class CacheError(ODSError):
    """The on-disk cache could not be read or written."""


class ODSWarning(UserWarning):
    """Base class of odsframe warnings."""


class DeprecationNotice(ODSWarning):
    """The portal announced deprecated behaviour (``ODS-Explore-API-Deprecation``)."""


class StaleCacheWarning(ODSWarning):
    """A cached frame was served although its freshness could not be checked."""

"""Errors the local portal answers with, as ODS writes them.

Every exception here becomes an HTTP answer with the ODS error body; nothing else should
reach the client (the server turns any other exception into a logged 500 with an ODS body).
"""

from __future__ import annotations

from typing import Any


class PortalError(Exception):
    """An error answer: HTTP ``status`` and the v2 body ``{"error_code", "message"}``."""

    status = 400
    error_code = "BadRequest"

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if error_code is not None:
            self.error_code = error_code

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


class ODSQLError(PortalError):
    """Malformed ODSQL, unknown field or function, wrong argument types.

    ``clause`` is the parameter that failed (``select``, ``where``, ``group_by``,
    ``order_by``, ``refine``, ``exclude``, ``facet``); the message ends with
    ``Clause(s) containing the error(s): <clause>.`` as ODS writes it.
    """

    error_code = "ODSQLError"

    def __init__(self, detail: str, clause: str):
        self.detail = detail
        self.clause = clause
        super().__init__(
            f"ODSQL query is malformed: {detail} Clause(s) containing the error(s): {clause}."
        )


class InvalidRESTParameterError(PortalError):
    """A parameter out of range or of the wrong kind (limit, offset, timezone, lang ...)."""

    error_code = "InvalidRESTParameterError"


class NotFoundError(PortalError):
    status = 404
    error_code = "NotFound"


class UnauthorizedError(PortalError):
    status = 401
    error_code = "Unauthorized"


class QuotaError(PortalError):
    """429 with the v1-style body (ods-api.md section 1.3)."""

    status = 429
    error_code = "TooManyRequests"

    def __init__(self, message: str, *, reset_time: str, call_limit: int, errorcode: int = 10005):
        super().__init__(message)
        self.reset_time = reset_time
        self.call_limit = call_limit
        self.errorcode = errorcode

    def body(self) -> dict[str, Any]:
        return {
            "errorcode": self.errorcode,
            "reset_time": self.reset_time,
            "limit_time_unit": "day",
            "call_limit": self.call_limit,
            "error": self.message,
        }

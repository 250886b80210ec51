"""The one HTTP layer: a session, timeouts, retries, the key header and error mapping.

Every request odsframe makes goes through :class:`HTTPClient`:

* one :class:`requests.Session` (yours if you pass ``session=``; then it is never closed
  by odsframe), ``User-Agent: odsframe/<version>`` and ``Accept: application/json``;
* the API key only as the ``Authorization: Apikey`` header (:mod:`odsframe._auth`);
* bounded retries with exponential backoff and jitter on connection failures, 5xx and
  429, honouring ``Retry-After``, ``X-RateLimit-Reset`` or the 429 body's ``reset_time``,
  but raising :class:`~odsframe.errors.QuotaExceededError` at once when the reset is
  further away than :attr:`RetryPolicy.max_wait`;
* the ``ODS-Explore-API-Deprecation`` header as a
  :class:`~odsframe.errors.DeprecationNotice`, once per message per process;
* answers mapped onto the :mod:`odsframe.errors` tree (401/403, an HTML page served with
  200, 404, 400, 429, 5xx, connection failures);
* streamed downloads written to a temporary file and renamed into place, so a failed
  download never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import random
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urlencode, urlsplit

import requests

from odsframe._auth import ApiKey, ApiKeyAuth
from odsframe._spec import DEPRECATION_HEADER, QUOTA_ANONYMOUS_LIMIT, QUOTA_DOMAIN_LIMIT
from odsframe._version import __version__
from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    DeprecationNotice,
    IncompleteResultError,
    InvalidQueryArgument,
    ODSError,
    PortalConnectionError,
    QueryError,
    QuotaExceededError,
    ServerError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "HTTPClient",
    "RetryPolicy",
    "build_url",
    "error_from_response",
]

logger = logging.getLogger(__name__)

USER_AGENT = f"odsframe/{__version__}"
#: (connect, read) seconds; the read timeout is the longest silence between two bytes.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
JSON_ACCEPT = "application/json"

# Quota error codes: v1-style 429 bodies, and the 2014-2017 "License Violation" 403.
_QUOTA_ERROR_CODES = frozenset({10001, QUOTA_DOMAIN_LIMIT, QUOTA_ANONYMOUS_LIMIT})
# ``pushkey`` is the real-time push API's key, which ODS takes only in the URL.
_SECRET_PARAMS = re.compile(r"(?i)([?&](?:apikey|api_key|access_token|pushkey)=)[^&#]*")

Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None

_warned_deprecations: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed request.

    Parameters
    ----------
    attempts
        Tries in total, the first included (1 = no retry).
    backoff
        First wait in seconds; it doubles at each retry (with jitter) up to ``backoff_max``.
    backoff_max
        Longest backoff wait.
    max_wait
        Longest wait a server may ask for (``Retry-After``, quota reset). Further away,
        the request fails at once (for 429: ``QuotaExceededError`` with the reset time).
    statuses
        HTTP statuses that are retried.
    """

    attempts: int = 5
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_wait: float = 60.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidQueryArgument(f"attempts: must be >= 1, got {self.attempts}")
        if self.backoff < 0 or self.backoff_max < 0 or self.max_wait < 0:
            raise InvalidQueryArgument("backoff, backoff_max and max_wait must be >= 0")

    def backoff_delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), jittered."""
        base = min(self.backoff_max, self.backoff * 2 ** (retry - 1))
        return base / 2 + random.uniform(0, base / 2)


def build_url(url: str, params: Params = None) -> str:
    """``url`` with ``params`` encoded as ``requests`` would (repeated names kept, in order)."""
    pairs = _param_pairs(params)
    if not pairs:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(pairs)}"


def _param_pairs(params: Params) -> list[tuple[str, str]]:
    if params is None:
        return []
    items: Iterable[tuple[str, Any]]
    if isinstance(params, Mapping):
        expanded: list[tuple[str, Any]] = []
        for name, value in params.items():
            if isinstance(value, list | tuple):
                expanded.extend((name, item) for item in value)
            else:
                expanded.append((name, value))
        items = expanded
    else:
        items = params
    pairs = []
    for name, value in items:
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((str(name), str(value)))
    return pairs


def safe_url(url: str) -> str:
    """``url`` with any key-like query parameter masked (for logs and messages)."""
    return _SECRET_PARAMS.sub(r"\1***", url)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _about(dataset: str | None, url: str) -> str:
    where = f"the portal {_host(url)}"
    return f"{where} (dataset {dataset!r})" if dataset else where


def _subject(dataset: str | None, url: str) -> str:
    """:func:`_about` at the start of a sentence."""
    text = _about(dataset, url)
    return text[:1].upper() + text[1:]


def _error_body(response: requests.Response) -> dict[str, Any]:
    """The parsed JSON error body, or ``{}``."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _server_message(response: requests.Response, body: Mapping[str, Any]) -> str | None:
    for key in ("message", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])
    if not body and not _looks_like_html(response):
        text = response.text.strip()
        return text[:300] or None
    return None


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    if "html" in content_type:
        return True
    if "json" in content_type or stream_body_unread(response):
        return False
    head = response.content[:200].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _parse_reset_time(value: Any) -> datetime | None:
    """An ISO-8601 reset time (``2024-05-01T00:00:00Z``) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _rate_limit_reset(value: str | None) -> datetime | None:
    """``X-RateLimit-Reset``: a Unix epoch (ODS), or seconds from now when small."""
    if not value:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number < 1e9:  # a delay, not an epoch
        return datetime.now(UTC) + timedelta(seconds=number)
    return datetime.fromtimestamp(number, UTC)


def _quota_reset(response: requests.Response) -> tuple[float | None, datetime | None]:
    """(seconds to wait, reset time) the answer asks for, when it says."""
    now = datetime.now(UTC)
    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
    reset_time = None
    if response.status_code == 429:
        reset_time = _parse_reset_time(_error_body(response).get("reset_time"))
        if reset_time is None:
            reset_time = _rate_limit_reset(response.headers.get("X-RateLimit-Reset"))
    if retry_after is not None:
        return retry_after, reset_time or now + timedelta(seconds=retry_after)
    if reset_time is not None:
        return max(0.0, (reset_time - now).total_seconds()), reset_time
    return None, None


def error_from_response(
    response: requests.Response,
    *,
    dataset: str | None = None,
    authenticated: bool = False,
    attempts: int = 1,
) -> ODSError:
    """The :mod:`odsframe.errors` exception for a failed answer (not raised)."""
    status = response.status_code
    url = safe_url(response.url or "")
    body = _error_body(response)
    code = body.get("error_code", body.get("errorcode"))
    message = _server_message(response, body)
    about = _about(dataset, url)
    subject = _subject(dataset, url)
    details = f"HTTP {status}" + (f": {message}" if message else "")
    common: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "server_message": message,
        "dataset": dataset,
        "url": url,
    }
    if status == 429 or (status == 403 and code in _QUOTA_ERROR_CODES):
        _, reset_time = _quota_reset(response)
        limit = body.get("call_limit")
        unit = body.get("limit_time_unit", "day")
        quota = f" ({limit} calls per {unit})" if limit else ""
        when = f"; it resets at {reset_time.isoformat()}" if reset_time else ""
        return QuotaExceededError(
            f"The API quota of {about} is used up{quota}{when} ({details}). Wait for the "
            "reset, or use an API key whose quota is larger.",
            reset_time=reset_time,
            **common,
        )
    if status in (401, 403):
        if authenticated:
            advice = (
                "The API key was refused: check that it is valid for this portal and "
                "allowed to see the dataset."
            )
        else:
            advice = "The data may be private: pass api_key=... or set ODS_APIKEY."
        return AuthenticationError(f"{subject} refused access ({details}). {advice}", **common)
    if status == 404:
        what = f"Dataset {dataset!r}" if dataset else "The resource"
        return DatasetNotFoundError(
            f"{what} was not found on {_host(url)} ({details}). Check the id (ids are "
            "case-sensitive; federated ids end in @<domain>) or, for private data, pass "
            "api_key=...",
            **common,
        )
    if 400 <= status < 500:
        return QueryError(
            f"{subject} rejected the request ({details}). Fix the argument the message names "
            "(ODSQL in select/where/order_by/group_by, limit, timezone ...).",
            **common,
        )
    if status >= 500:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return ServerError(
            f"{subject} failed{tries} ({details}). This is the portal's side; try again later.",
            **common,
        )
    return ServerError(f"{subject} answered an unexpected HTTP {status}.", **common)


def _note_deprecation(response: requests.Response) -> None:
    header = response.headers.get(DEPRECATION_HEADER)
    if not header:
        return
    for message in (part.strip() for part in header.split(";")):
        if not message:
            continue
        with _warned_lock:
            if message in _warned_deprecations:
                continue
            _warned_deprecations.add(message)
        warnings.warn(
            f"{_host(response.url)} announces deprecated behaviour: {message}",
            DeprecationNotice,
            stacklevel=4,
        )


class HTTPClient:
    """The session every odsframe request goes through.

    Parameters
    ----------
    api_key
        Sent as ``Authorization: Apikey <key>``; ``None`` for anonymous access.
    session
        Your own ``requests.Session`` (proxies, ``requests_cache`` ...). odsframe never
        closes a session it did not create.
    timeout
        ``(connect, read)`` seconds, or one number for both.
    retry
        The retry policy (:class:`RetryPolicy` defaults otherwise).
    user_agent
        Replaces ``odsframe/<version>``.
    """

    def __init__(
        self,
        *,
        api_key: ApiKey | str | None = None,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
    ) -> None:
        self._auth = ApiKeyAuth(api_key) if api_key is not None else None
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.user_agent = user_agent or USER_AGENT

    def __repr__(self) -> str:
        return (
            f"HTTPClient(authenticated={self.authenticated}, timeout={self.timeout!r}, "
            f"attempts={self.retry.attempts})"
        )

    @property
    def authenticated(self) -> bool:
        """Whether requests carry an API key."""
        return self._auth is not None

    def close(self) -> None:
        """Close the session if odsframe created it."""
        if self._owns_session:
            self.session.close()

    def __enter__(self) -> HTTPClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------

    def request(
        self,
        url: str,
        params: Params = None,
        *,
        dataset: str | None = None,
        stream: bool = False,
        accept: str = JSON_ACCEPT,
        method: str = "GET",
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> requests.Response:
        """GET ``url`` with retries; return the successful response or raise an ODSError.

        Parameters
        ----------
        url
            Absolute URL without the query string's parameters.
        params
            Query parameters (a mapping, or ``(name, value)`` pairs for repeated names).
        dataset
            The dataset concerned, named in error messages.
        stream
            Leave the body unread (for downloads); the caller must close the response.
        accept
            The ``Accept`` header.
        method, body, content_type
            Another method than GET (``POST``), its body and the body's ``Content-Type``.
            The same retries apply: only send requests that are safe to repeat.
        """
        full_url = build_url(url, params)
        headers = {"User-Agent": self.user_agent, "Accept": accept}
        if content_type is not None:
            headers["Content-Type"] = content_type
        policy = self.retry
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            logger.debug("%s %s (attempt %d)", method, safe_url(full_url), attempt)
            try:
                response = self.session.request(
                    method,
                    full_url,
                    data=body,
                    headers=headers,
                    auth=self._auth,
                    timeout=self.timeout,
                    stream=stream,
                )
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,  # a body cut off mid-way
            ) as err:
                if attempt < policy.attempts:
                    delay = policy.backoff_delay(attempt)
                    logger.info(
                        "cannot reach %s (%s); retrying in %.2f s (%d attempts left)",
                        _host(full_url),
                        type(err).__name__,
                        delay,
                        policy.attempts - attempt,
                    )
                    time.sleep(delay)
                    continue
                raise PortalConnectionError(
                    f"Could not reach {_about(dataset, full_url)} after {attempt} attempt(s): "
                    f"{type(err).__name__}. Check the portal address and your network.",
                    dataset=dataset,
                    url=safe_url(full_url),
                ) from err
            except requests.RequestException as err:
                raise PortalConnectionError(
                    f"The request to {_about(dataset, full_url)} failed: {safe_url(str(err))}",
                    dataset=dataset,
                    url=safe_url(full_url),
                ) from err
            _note_deprecation(response)
            logger.debug(
                "HTTP %d from %s in %.3f s",
                response.status_code,
                _host(full_url),
                time.monotonic() - started,
            )
            if response.status_code < 400:
                return response
            if response.status_code in policy.statuses and attempt < policy.attempts:
                retry_in = self._retry_delay(response, attempt)
                if retry_in is not None:
                    response.close()
                    logger.info(
                        "HTTP %d from %s; retrying in %.2f s (%d attempts left)",
                        response.status_code,
                        _host(full_url),
                        retry_in,
                        policy.attempts - attempt,
                    )
                    time.sleep(retry_in)
                    continue
            self._raise_for(response, dataset, attempt)

    def _retry_delay(self, response: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or ``None`` when waiting is pointless."""
        if stream_body_unread(response):
            response.content  # noqa: B018  # read the (small) error body before closing
        wait, _ = _quota_reset(response)
        if wait is None:
            return self.retry.backoff_delay(attempt)
        if wait > self.retry.max_wait:
            logger.info(
                "%s asks to wait %.0f s (more than max_wait=%.0f s); not retrying",
                _host(response.url),
                wait,
                self.retry.max_wait,
            )
            return None
        return wait + random.uniform(0, min(1.0, self.retry.backoff))

    def _raise_for(
        self, response: requests.Response, dataset: str | None, attempts: int
    ) -> NoReturn:
        if stream_body_unread(response):
            response.content  # noqa: B018
        error = error_from_response(
            response, dataset=dataset, authenticated=self.authenticated, attempts=attempts
        )
        response.close()
        try:
            response.raise_for_status()
        except requests.HTTPError as err:
            raise error from err
        raise error

    def get_json(self, url: str, params: Params = None, *, dataset: str | None = None) -> Any:
        """GET ``url`` and decode its JSON body.

        An HTML page where JSON was expected (private portals answer their login page with
        200) raises :class:`~odsframe.errors.AuthenticationError`.
        """
        response = self.request(url, params, dataset=dataset)
        if _looks_like_html(response):
            raise AuthenticationError(
                f"{_subject(dataset, response.url)} answered an HTML page where JSON was "
                "expected, as private portals do for their login page. Pass api_key=... "
                "(or set ODS_APIKEY), and check that the portal URL is right.",
                status=response.status_code,
                dataset=dataset,
                url=safe_url(response.url),
            )
        try:
            return response.json()
        except ValueError as err:
            raise ServerError(
                f"{_subject(dataset, response.url)} answered something that is not JSON "
                f"(Content-Type {response.headers.get('Content-Type')!r}).",
                status=response.status_code,
                dataset=dataset,
                url=safe_url(response.url),
            ) from err

    def post_json(
        self, url: str, body: bytes, params: Params = None, *, dataset: str | None = None
    ) -> Any:
        """POST a JSON ``body`` (already encoded) to ``url`` and decode the JSON answer.

        Retried like a GET (connection failures, 5xx, 429): only for requests that are safe to
        repeat, such as real-time pushes of records with ids.
        """
        response = self.request(
            url,
            params,
            dataset=dataset,
            method="POST",
            body=body,
            content_type="application/json; charset=utf-8",
        )
        try:
            return response.json()
        except ValueError as err:
            raise ServerError(
                f"{_subject(dataset, response.url)} answered something that is not JSON "
                f"(Content-Type {response.headers.get('Content-Type')!r}).",
                status=response.status_code,
                dataset=dataset,
                url=safe_url(response.url),
            ) from err

    def stream_to(
        self,
        dest: str | os.PathLike[str] | IO[bytes],
        url: str,
        params: Params = None,
        *,
        chunk_size: int = 1 << 16,
        dataset: str | None = None,
        accept: str = "*/*",
    ) -> int:
        """Download ``url`` to ``dest`` in chunks; return the number of bytes written.

        A path is written atomically: the bytes go to a temporary file in the same folder,
        renamed onto ``dest`` only when the whole body arrived; on any failure the
        temporary file is removed and ``dest`` is left as it was. A binary file object is
        written to directly (the caller owns its clean-up).
        """
        if chunk_size < 1:
            raise InvalidQueryArgument(f"chunk_size: must be >= 1, got {chunk_size}")
        response = self.request(url, params, dataset=dataset, stream=True, accept=accept)
        with contextlib.closing(response):
            content_type = response.headers.get("Content-Type", "").lower()
            if "html" in content_type and "html" not in accept:
                raise AuthenticationError(
                    f"{_subject(dataset, response.url)} answered an HTML page instead of the "
                    "file, as private portals do for their login page. Pass api_key=... "
                    "(or set ODS_APIKEY).",
                    status=response.status_code,
                    dataset=dataset,
                    url=safe_url(response.url),
                )
            started = time.monotonic()
            if isinstance(dest, str | os.PathLike):
                written = _write_atomically(Path(dest), response, chunk_size, dataset)
            else:
                written = _copy_body(response, dest, chunk_size, dataset)
        logger.info(
            "downloaded %d bytes from %s in %.2f s",
            written,
            _host(response.url),
            time.monotonic() - started,
        )
        return written


def save_response(
    response: requests.Response,
    path: str | os.PathLike[str],
    *,
    chunk_size: int = 1 << 16,
    dataset: str | None = None,
) -> int:
    """Write a streamed response's body to ``path`` atomically (as :meth:`HTTPClient.stream_to`
    does); return the number of bytes written. For callers that choose ``path`` from the
    answer's headers. The caller closes the response."""
    return _write_atomically(Path(path), response, chunk_size, dataset)


def stream_body_unread(response: requests.Response) -> bool:
    """True while a streamed response's body has not been read."""
    return not getattr(response, "_content_consumed", True)


def _copy_body(
    response: requests.Response, handle: IO[bytes], chunk_size: int, dataset: str | None
) -> int:
    written = 0
    try:
        for chunk in response.iter_content(chunk_size=chunk_size):
            if chunk:
                handle.write(chunk)
                written += len(chunk)
    except (requests.RequestException, ConnectionError) as err:
        # Both are OSErrors; a full disk (another OSError) must surface as itself.
        raise PortalConnectionError(
            f"The download from {_about(dataset, response.url)} was interrupted after "
            f"{written} bytes ({type(err).__name__}). Try again.",
            dataset=dataset,
            url=safe_url(response.url),
        ) from err
    expected = response.headers.get("Content-Length")
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    if expected and expected.isdigit() and not encoded and int(expected) != written:
        raise IncompleteResultError(
            f"The download from {_about(dataset, response.url)} stopped at {written} of "
            f"{expected} bytes. Try again.",
            dataset=dataset,
            url=safe_url(response.url),
        )
    return written


def _write_atomically(
    path: Path, response: requests.Response, chunk_size: int, dataset: str | None
) -> int:
    folder = path.parent
    if not folder.is_dir():
        raise InvalidQueryArgument(f"dest: the folder {folder} does not exist")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            written = _copy_body(response, handle, chunk_size, dataset)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return written

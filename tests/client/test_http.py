"""The HTTP layer against a real local HTTP server that answers scripted replies."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from odsframe._http import HTTPClient, RetryPolicy, build_url, safe_url
from odsframe._version import __version__
from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    DeprecationNotice,
    IncompleteResultError,
    InvalidQueryArgument,
    PortalConnectionError,
    QueryError,
    QuotaExceededError,
    ServerError,
)

FAST = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05)


@dataclass
class Reply:
    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Announce the whole body but send only this many bytes, then drop the connection.
    cut_after: int | None = None


@dataclass
class Seen:
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]


class ScriptedServer:
    """A ThreadingHTTPServer answering each path with its scripted replies in turn.

    The last reply of a path repeats; unknown paths get 404 with an ODS body.
    """

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def script(self, path: str, *replies: Reply) -> str:
        self.routes[path] = list(replies)
        return self.url + path

    def hits(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next(self, path: str) -> Reply:
        with self._lock:
            replies = self.routes.get(path)
            if not replies:
                return Reply(404, {"error_code": "NotFound", "message": "no such path"})
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.seen.append(
                    Seen(parts.path, parse_qsl(parts.query), dict(self.headers.items()))
                )
                reply = server._next(parts.path)
                body = reply.body
                headers = dict(reply.headers)
                if isinstance(body, dict | list):
                    body = json.dumps(body).encode()
                    headers.setdefault("Content-Type", "application/json; charset=utf-8")
                elif isinstance(body, str):
                    body = body.encode()
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                if reply.cut_after is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if reply.cut_after is not None:
                    self.wfile.write(body[: reply.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture
def client() -> Iterator[HTTPClient]:
    with HTTPClient(retry=FAST, timeout=(5, 10)) as http:
        yield http


# -- success, headers, retries ------------------------------------------------------------


def test_json_answer_and_default_headers(server: ScriptedServer, client: HTTPClient) -> None:
    url = server.script("/ok", Reply(body={"total_count": 3, "results": []}))
    assert client.get_json(url, [("where", 'a = "x y"'), ("limit", 0)]) == {
        "total_count": 3,
        "results": [],
    }
    (seen,) = server.hits("/ok")
    assert seen.query == [("where", 'a = "x y"'), ("limit", "0")]
    assert seen.headers["User-Agent"] == f"odsframe/{__version__}"
    assert seen.headers["Accept"] == "application/json"
    assert "Authorization" not in seen.headers


def test_503_then_200_is_retried(
    server: ScriptedServer, client: HTTPClient, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.script(
        "/flaky",
        Reply(503, {"error_code": "Unavailable", "message": "busy"}),
        Reply(body={"ok": True}),
    )
    with caplog.at_level(logging.INFO, logger="odsframe"):
        assert client.get_json(url) == {"ok": True}
    assert len(server.hits("/flaky")) == 2
    assert "HTTP 503" in caplog.text and "retrying" in caplog.text


def test_persistent_5xx_becomes_server_error(server: ScriptedServer, client: HTTPClient) -> None:
    url = server.script("/down", Reply(500, {"error_code": "InternalError", "message": "boom"}))
    with pytest.raises(ServerError, match="after 3 attempts") as info:
        client.get_json(url, dataset="trees")
    assert len(server.hits("/down")) == FAST.attempts
    assert info.value.status == 500
    assert info.value.server_message == "boom"
    assert info.value.dataset == "trees"
    assert isinstance(info.value.__cause__, requests.HTTPError)


def test_429_with_retry_after_waits_that_long(
    server: ScriptedServer, client: HTTPClient, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.script(
        "/busy",
        Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"}),
        Reply(body={"ok": 1}),
    )
    with caplog.at_level(logging.INFO, logger="odsframe"):
        assert client.get_json(url) == {"ok": 1}
    assert len(server.hits("/busy")) == 2
    assert "HTTP 429" in caplog.text
    assert "retrying in 1.0" in caplog.text  # the server's wait, not the 0.01 s backoff


def test_429_with_a_far_reset_time_raises_at_once(
    server: ScriptedServer, client: HTTPClient
) -> None:
    reset = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    body = {
        "errorcode": 10005,
        "reset_time": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "limit_time_unit": "day",
        "call_limit": 1000,
        "error": "Too many requests on the domain. Please contact the domain administrator.",
    }
    url = server.script("/quota", Reply(429, body))
    with pytest.raises(QuotaExceededError) as info:
        client.get_json(url, dataset="trees")
    error = info.value
    assert len(server.hits("/quota")) == 1  # no pointless retries
    assert error.reset_time == reset
    assert error.status == 429
    assert error.error_code == 10005
    assert "1000 calls per day" in error.message
    assert reset.isoformat() in error.message
    assert "trees" in error.message


def test_429_with_a_far_rate_limit_reset_header(server: ScriptedServer, client: HTTPClient) -> None:
    reset = int((datetime.now(UTC) + timedelta(hours=2)).timestamp())
    url = server.script(
        "/quota-header", Reply(429, {"error": "quota"}, headers={"X-RateLimit-Reset": str(reset)})
    )
    with pytest.raises(QuotaExceededError) as info:
        client.get_json(url)
    assert info.value.reset_time == datetime.fromtimestamp(reset, UTC)
    assert len(server.hits("/quota-header")) == 1


def test_429_without_hints_is_retried_then_raised(
    server: ScriptedServer, client: HTTPClient
) -> None:
    url = server.script("/slow", Reply(429, {"error": "too many"}))
    with pytest.raises(QuotaExceededError):
        client.get_json(url)
    assert len(server.hits("/slow")) == FAST.attempts


def test_legacy_403_license_violation_is_a_quota_error(
    server: ScriptedServer, client: HTTPClient
) -> None:
    body = {"errorcode": 10001, "error": "License Violation Exception: too many calls"}
    url = server.script("/legacy", Reply(403, body))
    with pytest.raises(QuotaExceededError, match="License Violation") as info:
        client.get_json(url)
    assert info.value.reset_time is None
    assert len(server.hits("/legacy")) == 1


def test_503_with_a_far_retry_after_is_not_awaited(
    server: ScriptedServer, client: HTTPClient
) -> None:
    url = server.script("/maint", Reply(503, "maintenance", headers={"Retry-After": "3600"}))
    with pytest.raises(ServerError, match="maintenance"):
        client.get_json(url)
    assert len(server.hits("/maint")) == 1


# -- error mapping ------------------------------------------------------------------------


def test_401_json_is_an_authentication_error(server: ScriptedServer, client: HTTPClient) -> None:
    url = server.script("/private", Reply(401, {"error_code": "Unauthorized", "message": "Login"}))
    with pytest.raises(AuthenticationError, match="api_key") as info:
        client.get_json(url, dataset="secret-data")
    assert info.value.status == 401
    assert info.value.server_message == "Login"
    assert "secret-data" in info.value.message
    assert len(server.hits("/private")) == 1


def test_403_with_a_key_says_the_key_was_refused(server: ScriptedServer) -> None:
    url = server.script("/forbidden", Reply(403, {"error_code": "Forbidden", "message": "no"}))
    with (
        HTTPClient(api_key="k-987", retry=FAST) as http,
        pytest.raises(AuthenticationError) as info,
    ):
        http.get_json(url)
    assert "key was refused" in info.value.message
    (seen,) = server.hits("/forbidden")
    assert seen.headers["Authorization"] == "Apikey k-987"
    assert all("k-987" not in value for _, value in seen.query)


def test_html_page_with_200_is_an_authentication_error(
    server: ScriptedServer, client: HTTPClient
) -> None:
    page = "<!DOCTYPE html><html><body><form>Login</form></body></html>"
    url = server.script("/login", Reply(200, page, headers={"Content-Type": "text/html"}))
    with pytest.raises(AuthenticationError, match="HTML page"):
        client.get_json(url, dataset="trees")
    sniffed = server.script("/login2", Reply(200, "\n  <html><body>x</body></html>"))
    with pytest.raises(AuthenticationError):
        client.get_json(sniffed)


def test_non_json_200_is_a_server_error(server: ScriptedServer, client: HTTPClient) -> None:
    url = server.script("/text", Reply(200, "hello", headers={"Content-Type": "text/plain"}))
    with pytest.raises(ServerError, match="not JSON"):
        client.get_json(url)


def test_404_is_dataset_not_found(server: ScriptedServer, client: HTTPClient) -> None:
    url = server.script("/missing", Reply(404, {"error_code": "NotFound", "message": "Unknown"}))
    with pytest.raises(DatasetNotFoundError, match="'no-such-dataset' was not found") as info:
        client.get_json(url, dataset="no-such-dataset")
    assert info.value.status == 404
    assert len(server.hits("/missing")) == 1


def test_400_odsql_error_is_a_query_error(server: ScriptedServer, client: HTTPClient) -> None:
    message = (
        "ODSQL query is malformed: Unknown field: anzahl Clause(s) containing the error(s): where."
    )
    url = server.script("/bad", Reply(400, {"error_code": "ODSQLError", "message": message}))
    with pytest.raises(QueryError) as info:
        client.get_json(url, [("where", "anzahl > 3")], dataset="trees")
    error = info.value
    assert error.error_code == "ODSQLError"
    assert error.server_message == message
    assert "Unknown field: anzahl" in error.message
    assert error.url is not None and "where=anzahl" in error.url
    assert len(server.hits("/bad")) == 1


def test_invalid_rest_parameter_is_a_query_error(
    server: ScriptedServer, client: HTTPClient
) -> None:
    message = (
        "Invalid value for limit API parameter: 1473 was found but -1 <= limit <= 100 is expected."
    )
    url = server.script(
        "/limit", Reply(400, {"error_code": "InvalidRESTParameterError", "message": message})
    )
    with pytest.raises(QueryError, match="1473"):
        client.get_json(url)


def test_connection_refused_is_a_portal_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HTTPClient(retry=RetryPolicy(attempts=2, backoff=0.01))
    with pytest.raises(PortalConnectionError, match="after 2 attempt") as info:
        client.get_json(f"http://127.0.0.1:{port}/api", dataset="trees")
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert isinstance(info.value, ConnectionError)
    assert "trees" in info.value.message


# -- deprecation notices ------------------------------------------------------------------


def test_deprecation_header_warns_once_per_message(
    server: ScriptedServer, client: HTTPClient
) -> None:
    first, second = f"DATE_KEYS_{uuid.uuid4().hex}: use ISO", f"OTHER_{uuid.uuid4().hex}: x"
    url = server.script(
        "/old", Reply(body={"ok": 1}, headers={"ODS-Explore-API-Deprecation": f"{first}; {second}"})
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.get_json(url)
        client.get_json(url)
        client.get_json(url)
    notices = [str(w.message) for w in caught if issubclass(w.category, DeprecationNotice)]
    assert len(notices) == 2
    assert any(first in notice for notice in notices)
    assert any(second in notice for notice in notices)


# -- streaming ----------------------------------------------------------------------------


def test_stream_to_a_path(server: ScriptedServer, client: HTTPClient, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    url = server.script(
        "/export", Reply(body=payload, headers={"Content-Type": "application/octet-stream"})
    )
    dest = tmp_path / "data.parquet"
    written = client.stream_to(dest, url, [("limit", "-1")], chunk_size=4096, dataset="t")
    assert written == len(payload)
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]
    (seen,) = server.hits("/export")
    assert seen.headers["Accept"] == "*/*"


def test_stream_to_a_file_object(server: ScriptedServer, client: HTTPClient) -> None:
    url = server.script("/csv", Reply(body="a;b\n1;2\n", headers={"Content-Type": "text/csv"}))
    buffer = io.BytesIO()
    assert client.stream_to(buffer, url) == 8
    assert buffer.getvalue() == b"a;b\n1;2\n"


def test_a_cut_download_leaves_no_partial_file(
    server: ScriptedServer, client: HTTPClient, tmp_path: Path
) -> None:
    dest = tmp_path / "data.csv"
    dest.write_bytes(b"previous complete file")
    url = server.script(
        "/cut",
        Reply(body=b"x" * 100_000, headers={"Content-Type": "text/csv"}, cut_after=5_000),
    )
    with pytest.raises((PortalConnectionError, IncompleteResultError)) as info:
        client.stream_to(dest, url, dataset="trees")
    assert "trees" in info.value.message
    assert dest.read_bytes() == b"previous complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_a_failed_download_writes_nothing(
    server: ScriptedServer, client: HTTPClient, tmp_path: Path
) -> None:
    url = server.script("/gone", Reply(404, {"error_code": "NotFound", "message": "x"}))
    with pytest.raises(DatasetNotFoundError):
        client.stream_to(tmp_path / "out.csv", url, dataset="gone")
    html = server.script("/html", Reply(200, "<html>login</html>", {"Content-Type": "text/html"}))
    with pytest.raises(AuthenticationError):
        client.stream_to(tmp_path / "out.csv", html)
    assert list(tmp_path.iterdir()) == []


def test_stream_to_a_missing_folder_is_refused(
    server: ScriptedServer, client: HTTPClient, tmp_path: Path
) -> None:
    url = server.script("/f", Reply(body=b"abc", headers={"Content-Type": "text/csv"}))
    with pytest.raises(InvalidQueryArgument, match="does not exist"):
        client.stream_to(tmp_path / "nope" / "out.csv", url)


# -- sessions, keys, logs -----------------------------------------------------------------


def test_a_users_session_is_used_and_not_closed(server: ScriptedServer) -> None:
    url = server.script("/s", Reply(body={"ok": 1}))
    session = requests.Session()
    session.headers["X-Custom"] = "mine"
    client = HTTPClient(session=session, retry=FAST)
    client.get_json(url)
    client.close()
    assert server.hits("/s")[0].headers["X-Custom"] == "mine"
    # Still usable: odsframe did not close it.
    assert session.get(url, timeout=5).json() == {"ok": 1}
    session.close()


def test_the_key_is_never_logged_nor_in_errors(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = server.script("/err", Reply(400, {"error_code": "ODSQLError", "message": "bad"}))
    client = HTTPClient(api_key="top-secret-key", retry=FAST)
    with caplog.at_level(logging.DEBUG, logger="odsframe"), pytest.raises(QueryError) as info:
        client.get_json(url)
    assert "top-secret-key" not in caplog.text
    assert "top-secret-key" not in str(info.value)
    assert "top-secret-key" not in repr(client)


def test_url_helpers() -> None:
    assert (
        build_url("http://h/p", {"a": [1, 2], "b": True, "c": None}) == "http://h/p?a=1&a=2&b=true"
    )
    assert build_url("http://h/p?x=1", [("y", "a b")]) == "http://h/p?x=1&y=a+b"
    assert safe_url("http://h/p?apikey=abc&x=1") == "http://h/p?apikey=***&x=1"


def test_retry_policy_validation_and_backoff() -> None:
    with pytest.raises(InvalidQueryArgument, match="attempts"):
        RetryPolicy(attempts=0)
    policy = RetryPolicy(backoff=1.0, backoff_max=4.0)
    for retry, cap in ((1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)):
        delay = policy.backoff_delay(retry)
        assert cap / 2 <= delay <= cap

"""Helpers shared by test modules (``from helpers import ...``; ``tests/`` is on the path).

* plain HTTP against a :class:`~odsframe.testing.portal.LocalPortal`: :func:`get`, :func:`ok`,
  :func:`v1_error`;
* one API generation's adapter beside the v2.1 one on the same portal: :func:`adapter_pair`,
  :func:`both`;
* what a portal serves, read from its own DuckDB tables: :func:`portal_frame`;
* a hand-written HTTP server on a free loopback port: :class:`BackgroundServer`,
  :class:`QuietHandler`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import requests

from odsframe.api import ExploreAdapter, ExploreV21, open_adapter
from odsframe.testing.catalog import Catalog, quote_ident
from odsframe.testing.portal import LocalPortal

JSON_MEDIA_TYPE = "application/json; charset=utf-8"
#: Every record of a dataset table, in source order, without the hidden columns.
RECORDS_SQL = "SELECT * EXCLUDE (__rowid, __id, __timestamp, __fts) FROM {table} ORDER BY __rowid"


def get(portal: LocalPortal, path: str, **params: Any) -> requests.Response:
    """``GET`` ``path`` of ``portal`` with ``params``."""
    return requests.get(portal.url + path, params=params, timeout=30)


def ok(portal: LocalPortal, path: str, **params: Any) -> Any:
    """The JSON body of a ``GET`` that must answer 200 with JSON."""
    answer = get(portal, path, **params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == JSON_MEDIA_TYPE
    return answer.json()


def v1_error(answer: requests.Response, status: int) -> str:
    """The message of a Search API v1 error answer ``{"errorcode", "error"}``."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"errorcode", "error"}, body
    assert body["errorcode"] == status
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


@contextmanager
def adapter_pair(portal: LocalPortal, version: str) -> Iterator[tuple[ExploreAdapter, ExploreV21]]:
    """An adapter of API ``version`` and a v2.1 one on ``portal``, closed on exit."""
    other = open_adapter(portal.url, version=version, use_keyring=False)
    v21 = open_adapter(portal.url, version="2.1", use_keyring=False)
    assert other.version == version and isinstance(v21, ExploreV21)
    with other, v21:
        yield other, v21


def both(apis: tuple[ExploreAdapter, ExploreV21], method: str, *args: Any, **kwargs: Any) -> Any:
    """``(answer of the other generation, v2.1 answer)`` of one adapter method."""
    other, v21 = apis
    return getattr(other, method)(*args, **kwargs), getattr(v21, method)(*args, **kwargs)


def portal_frame(catalog: Catalog, dataset: str, sql: str = RECORDS_SQL) -> pd.DataFrame:
    """``sql`` over the DuckDB table of ``dataset`` (``{table}`` in ``sql``), as pandas."""
    table = quote_ident(catalog.get(dataset).table)
    cursor = catalog.cursor()
    try:
        return cursor.sql(sql.format(table=table)).to_arrow_table().to_pandas()
    finally:
        cursor.close()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler speaking HTTP/1.1 that logs nothing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass


class BackgroundServer:
    """A ``ThreadingHTTPServer`` on a free port of 127.0.0.1, served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host!s}:{port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

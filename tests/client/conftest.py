"""Fixtures of the client tests: local ODS portals over real HTTP and an isolated cache.

* ``sample_portal``: the sample datasets (``sample-events`` has ``SAMPLE_EVENTS`` records),
  no API key accepted, so ``sample-budget-restricted`` stays closed;
* ``private_portal``: the same catalog served again with ``API_KEY`` accepted;
* ``extra_portal``: small hand-built datasets (a federated ``@`` id, HTML in metadata);
* every test gets its own cache folder (``ODSFRAME_CACHE_DIR``), so no test sees another's
  cache entries.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

from odsframe import cache
from odsframe.testing.catalog import Catalog
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal

#: Records of ``sample-events``: more than read_ods pages through /records (1 000).
SAMPLE_EVENTS = 3_000
#: The key ``private_portal`` accepts.
API_KEY = "odsframe-test-key-5f2b9c71"
PROCESSED = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
FEDERATED_ID = "prices@public"
HTML_ID = "html-metadata"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty cache folder for each test."""
    folder = tmp_path / "odsframe-cache"
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(folder))
    for name in ("ODS_APIKEY", "ODS_API_KEY", "HUWISE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    # No key from the developer's own ~/.netrc either.
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cache.set_cache_dir(None)
    yield folder
    cache.set_cache_dir(None)


@pytest.fixture(scope="session")
def sample_catalog() -> Catalog:
    from odsframe.testing.portal import build_catalog

    return build_catalog(None, True, SAMPLE_EVENTS)


@pytest.fixture(scope="session")
def sample_portal(sample_catalog: Catalog) -> Iterator[LocalPortal]:
    with LocalPortal(catalog=sample_catalog) as portal:
        yield portal


@pytest.fixture(scope="session")
def private_portal(sample_catalog: Catalog) -> Iterator[LocalPortal]:
    with LocalPortal(catalog=sample_catalog, api_keys=[API_KEY]) as portal:
        yield portal


def metas(title: str, **extra: Any) -> dict[str, dict[str, Any]]:
    """``metas`` of a hand-built dataset."""
    return {
        "default": {
            "title": title,
            "publisher": "odsframe tests",
            "license": "Licence Ouverte v2.0",
            "modified_updates_on_data_change": True,
            **extra,
        }
    }


def price_dataset(dataset_id: str) -> PortalDataset:
    return PortalDataset(
        dataset_id=dataset_id,
        table="",
        fields=[
            PortalField("code", "text", "Code", annotations={"id": []}),
            PortalField("price", "double", "Price", annotations={"unit": ["EUR"]}),
        ],
        metas=metas("Prices"),
        processed_at=PROCESSED,
    )


def price_table(count: int, *, start: int = 0) -> pa.Table:
    return pa.table(
        {
            "code": [f"p{index:04d}" for index in range(start, start + count)],
            "price": [index * 0.5 for index in range(start, start + count)],
        }
    )


class Prices:
    """Builds a small ``code`` (id) / ``price`` dataset: ``prices.dataset(id)``,
    ``prices.table(count, start=0)``."""

    dataset = staticmethod(price_dataset)
    table = staticmethod(price_table)


@pytest.fixture(scope="session")
def prices() -> type[Prices]:
    return Prices


@pytest.fixture(scope="session")
def api_key() -> str:
    """The key ``private_portal`` accepts."""
    return API_KEY


@pytest.fixture(scope="session")
def extra_portal() -> Iterator[LocalPortal]:
    catalog = Catalog()
    catalog.add_dataset(price_dataset(FEDERATED_ID), price_table(12))
    catalog.add_dataset(
        PortalDataset(
            dataset_id=HTML_ID,
            table="",
            fields=[PortalField("name", "text", "<b>Name</b>")],
            metas=metas(
                "<script>alert(1)</script> & co",
                publisher="A <i>publisher</i>",
                license_url="https://example.org/licence?a=1&b=2",
            ),
            processed_at=PROCESSED,
        ),
        pa.table({"name": ["x"]}),
    )
    with LocalPortal(catalog=catalog) as portal:
        yield portal


class RecordingSession(requests.Session):
    """A real ``requests.Session`` that notes the URL of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.headers_sent: list[dict[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.urls.append(str(request.url))
        self.headers_sent.append(dict(request.headers))
        return super().send(request, **kwargs)


@pytest.fixture
def recording_session() -> Iterator[RecordingSession]:
    with RecordingSession() as session:
        yield session

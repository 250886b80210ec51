"""``Portal`` and ``Dataset`` against the local portal over real HTTP."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import pytest

import odsframe
from odsframe.errors import AuthenticationError, DatasetNotFoundError, InvalidQueryArgument
from odsframe.testing.portal import LocalPortal

STATIONS = "sample-bike-stations"
PRICES = "sample-monthly-prices"
BUDGET = "sample-budget-restricted"
HTML_ID = "html-metadata"  # in extra_portal


@pytest.fixture
def portal(sample_portal: LocalPortal) -> Any:
    with odsframe.Portal(sample_portal.url) as opened:
        yield opened


def test_portal_addresses_resolve_without_requests(recording_session: Any) -> None:
    assert odsframe.Portal("public", session=recording_session).url == (
        "https://public.opendatasoft.com"
    )
    assert odsframe.Portal("data.example.org/explore/dataset/x/").url == (
        "https://data.example.org"
    )
    assert repr(odsframe.Portal("localhost:8000")) == (
        "Portal('http://localhost:8000', authenticated=False)"
    )
    assert recording_session.urls == []
    with pytest.raises(InvalidQueryArgument, match="portal"):
        odsframe.Portal("ftp://data.example.org")


def test_dataset_metadata(portal: Any, sample_portal: LocalPortal, recording_session: Any) -> None:
    stations = portal.dataset(STATIONS)
    assert stations.id == STATIONS
    assert stations.title == "Stations de vélos en libre-service (échantillon)"
    assert stations.records_count == 150
    assert stations.license == "Licence Ouverte v2.0 (Etalab)"
    assert stations.publisher
    assert stations.metas["theme"] == ["Mobilité", "Transports"]
    assert stations.modified is not None and stations.modified.tzinfo is not None
    assert stations.data_processed is not None
    assert "geo" in stations.features
    assert stations.geo_fields == ["coordonnees_geo", "geo_shape"]
    assert stations.visibility == "domain"


def test_dataset_fields_frame(portal: Any) -> None:
    fields = portal.dataset(PRICES).fields
    assert list(fields.columns) == ["name", "label", "type", "unit", "description"]
    assert list(fields["name"]) == ["month", "commodity", "price_index", "unit"]
    assert list(fields["type"]) == ["date", "text", "double", "text"]
    assert fields.loc[0, "label"] == "Mois"


def test_dataset_attachments(portal: Any, sample_portal: LocalPortal) -> None:
    attachments = portal.dataset(STATIONS).attachments
    assert len(attachments) == 2
    assert set(attachments["mimetype"]) == {"text/csv", "application/pdf"}
    assert (
        attachments["href"]
        .str.startswith(
            f"{sample_portal.url}/api/explore/v2.1/catalog/datasets/{STATIONS}/attachments/"
        )
        .all()
    )
    assert portal.dataset(PRICES).attachments.empty


def test_dataset_repr_is_readable(portal: Any) -> None:
    text = repr(portal.dataset(STATIONS))
    lines = text.splitlines()
    assert lines[0].startswith(f"<Dataset '{STATIONS}' on http://127.0.0.1:")
    assert "Stations de vélos en libre-service (échantillon)" in lines[0]
    assert "150 records" in lines[1] and "14 fields" in lines[1]
    assert "geo: coordonnees_geo, geo_shape" in lines[1]
    assert any(line.strip().startswith("- capacity") and " int" in line for line in lines)


def test_dataset_html_card(portal: Any) -> None:
    card = portal.dataset(STATIONS)._repr_html_()
    for expected in (
        "Stations de vélos en libre-service (échantillon)",
        "Licence Ouverte v2.0 (Etalab)",
        "150",
        "2024-06-01",
        ">geo<",
        "<code>coordonnees_geo</code>",
        "geo_point_2d",
        "14 fields",
    ):
        assert expected in card, expected
    no_geo = portal.dataset(PRICES)._repr_html_()
    assert ">geo<" not in no_geo
    assert "Observatoire des prix" in no_geo


def test_html_card_escapes_metadata(extra_portal: LocalPortal) -> None:
    with odsframe.Portal(extra_portal.url) as portal:
        card = portal.dataset(HTML_ID)._repr_html_()
    assert "<script>" not in card and "<i>publisher" not in card and "<b>Name" not in card
    assert html.escape("<script>alert(1)</script> & co") in card
    assert 'href="https://example.org/licence?a=1&amp;b=2"' in card


def test_portal_read_equals_read_ods(portal: Any, sample_portal: LocalPortal) -> None:
    options = {"where": {"commune": "Paris"}, "order_by": "stationcode"}
    via_portal = portal.read(STATIONS, cache=False, **options)
    via_function = odsframe.read_ods(sample_portal.url, STATIONS, cache=False, **options)
    pd.testing.assert_frame_equal(via_portal, via_function)
    via_dataset = portal.dataset(STATIONS).read(cache=False, **options)
    pd.testing.assert_frame_equal(via_portal, via_dataset)


def test_portal_reuses_one_session(sample_portal: LocalPortal, recording_session: Any) -> None:
    with odsframe.Portal(sample_portal.url, session=recording_session) as portal:
        portal.read(PRICES, limit=5, cache=False)
        portal.dataset(PRICES)
        catalog = portal.catalog()
        text = portal.explain(PRICES, limit=5)
    assert len(catalog) == 5
    assert "GET " in text and "limit=5" in text
    assert len(recording_session.urls) >= 5
    # odsframe never closes a session it did not create
    assert recording_session.get(sample_portal.url + "/").status_code == 200


def test_portal_with_a_key(private_portal: LocalPortal, api_key: str) -> None:
    with (
        odsframe.Portal(private_portal.url) as anonymous,
        pytest.raises(AuthenticationError, match=BUDGET),
    ):
        anonymous.dataset(BUDGET)
    with odsframe.Portal(private_portal.url, api_key=api_key) as portal:
        assert portal.authenticated
        assert api_key not in repr(portal)
        budget = portal.dataset(BUDGET)
        assert budget.visibility == "restricted"
        assert "restricted" in budget._repr_html_()
        assert len(budget.read(cache=False)) == 60


def test_unknown_dataset(portal: Any) -> None:
    with pytest.raises(DatasetNotFoundError, match="nope"):
        portal.dataset("nope")
    with pytest.raises(InvalidQueryArgument):
        portal.dataset("  ")

"""Search API v1 dataset search, dataset lookup and ``/download/`` of the local portal.

The dataset object is checked against the real v1 catalog captures: the transparencia.sns.gov.pt
dataset (written as a dataset schema in a temporary folder) must come back with the same
fields, annotations and metadata.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from helpers import get, ok, v1_error

from odsframe.testing.catalog import Catalog
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal

DATASETS = "/api/datasets/1.0"
DOWNLOAD = "/api/records/1.0/download/"
SNS = "amagovpt__udata-pt__sns_dataset.json"


@pytest.fixture(scope="module")
def portal() -> Iterator[LocalPortal]:
    with LocalPortal(sample=True, sample_records=200, api_keys=["v1-key"]) as running:
        yield running


# -- dataset lookup and search --------------------------------------------------------------


def test_dataset_lookup_gives_back_a_real_v1_dataset(real_fixtures: Path, tmp_path: Path) -> None:
    captured = json.loads((real_fixtures / SNS).read_text("utf-8"))["datasets"][0]
    dataset_id = captured["datasetid"]
    (tmp_path / f"{dataset_id}.schema.json").write_text(json.dumps(captured), "utf-8")
    with LocalPortal(tmp_path) as running:
        body = ok(running, f"{DATASETS}/{dataset_id}/")
    assert list(body) == [key for key in captured if not key.endswith("_metas")]
    assert body["fields"] == captured["fields"]
    assert sorted(body["features"]) == sorted(captured["features"])
    differing = {k for k, v in captured["metas"].items() if body["metas"].get(k) != v}
    assert differing == {"records_count"}  # no data file: no records
    assert body["metas"]["records_count"] == 0 and body["has_records"] is False


def test_other_templates_are_flattened_and_listed_as_interop_metas() -> None:
    catalog = Catalog()
    catalog.add_dataset(
        PortalDataset(
            dataset_id="templated",
            table="",
            fields=[PortalField("name", "text", "Name")],
            metas={
                "default": {"title": "Templated", "publisher": "tests"},
                "dcat": {"creator": "someone", "issued": None},
                "explore": {"download_count": 3},
            },
        ),
        pa.table({"name": ["a", "b"]}),
    )
    with LocalPortal(catalog=catalog) as running:
        plain = ok(running, f"{DATASETS}/templated/")
        interop = ok(running, f"{DATASETS}/templated/", interopmetas="true")
    assert plain["metas"]["creator"] == "someone"
    assert "issued" not in plain["metas"]  # null metadata is left out
    assert "download_count" not in plain["metas"]  # application metadata stays out
    assert "interop_metas" not in plain
    assert interop["interop_metas"] == {"dcat": {"creator": "someone", "issued": None}}


def test_dataset_lookup_on_the_sample(portal: LocalPortal) -> None:
    body = ok(portal, f"{DATASETS}/sample-events/")
    assert body["datasetid"] == "sample-events"
    assert body["metas"]["records_count"] == 200
    assert body["metas"]["visibility"] == "domain" and body["metas"]["staged"] is False
    category = next(f for f in body["fields"] if f["name"] == "category")
    assert category["annotations"] == [{"name": "facet"}, {"name": "disjunctive"}]
    venue = next(f for f in body["fields"] if f["name"] == "venue")
    assert "annotations" not in venue  # none: the key is left out, as in v1 captures
    v1_error(get(portal, f"{DATASETS}/nope/"), 404)
    v1_error(get(portal, f"{DATASETS}/sample-budget-restricted/"), 401)
    private = ok(portal, f"{DATASETS}/sample-budget-restricted/", apikey="v1-key")
    assert private["metas"]["visibility"] == "restricted"


def test_dataset_search_shape(portal: LocalPortal, real_fixtures: Path) -> None:
    captured = json.loads(
        (real_fixtures / "opendatateam__udata__search-ods.json").read_text("utf-8")
    )
    body = ok(portal, f"{DATASETS}/search/")
    assert list(body) == list(captured)
    assert set(captured["parameters"]) <= set(body["parameters"])
    assert body["nhits"] == 5  # the restricted dataset needs a key
    assert all(set(captured["datasets"][0]) <= set(d) for d in body["datasets"])
    keyed = ok(portal, f"{DATASETS}/search/", apikey="v1-key")
    assert keyed["nhits"] == 6


def test_dataset_search_filters_sort_and_facets(portal: LocalPortal) -> None:
    def ids(**params: Any) -> list[str]:
        return [d["datasetid"] for d in ok(portal, f"{DATASETS}/search/", **params)["datasets"]]

    assert ids(q="records_count >= 400 AND records_count < 500") == ["sample-trees"]
    assert ids(q="arbres OR records_count:150") == [
        "sample-bike-stations",
        "sample-trees",
    ]
    counts = ok(portal, f"{DATASETS}/search/", sort="records_count")["datasets"]
    assert [d["metas"]["records_count"] for d in counts] == [720, 400, 200, 150, 20]
    assert ids(sort="-records_count", rows=2, start=1) == ["sample-bike-stations", "sample-events"]
    assert ids(**{"refine.datasetid": "sample-districts"}) == ["sample-districts"]
    assert len(ids(**{"exclude.datasetid": "sample-districts"})) == 4
    assert ids(**{"refine.theme": "Environnement"}) == ["sample-trees"]
    faceted = ok(portal, f"{DATASETS}/search/", facet="publisher", rows=0)
    assert faceted["datasets"] == []
    publishers = faceted["facet_groups"][0]
    assert publishers["name"] == "publisher"
    assert sum(item["count"] for item in publishers["facets"]) == 5
    assert set(publishers["facets"][0]) == {"name", "count", "state", "path"}
    v1_error(get(portal, f"{DATASETS}/search/", sort="description"), 400)


# -- download -------------------------------------------------------------------------------


def test_download_csv_by_default(portal: LocalPortal) -> None:
    answer = get(portal, DOWNLOAD, dataset="sample-bike-stations", q="commune:Paris")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert not answer.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(answer.text), delimiter=";"))
    header = rows[0]
    assert header[:2] == ["stationcode", "name"]
    count = ok(
        portal,
        "/api/records/1.0/search/",
        dataset="sample-bike-stations",
        q="commune:Paris",
        rows=0,
    )["nhits"]
    assert len(rows) - 1 == count > 0
    point = rows[1][header.index("coordonnees_geo")]
    assert "," in point and ", " not in point  # lat,lon without a space (legacy)


def test_download_has_no_window_and_takes_rows(portal: LocalPortal) -> None:
    everything = get(portal, DOWNLOAD, dataset="sample-monthly-prices", format="json").json()
    assert len(everything) == 720  # more than a search page, no cap
    some = get(portal, DOWNLOAD, dataset="sample-monthly-prices", format="json", rows=5).json()
    assert some == everything[:5]
    labels = get(
        portal,
        DOWNLOAD,
        dataset="sample-trees",
        rows=1,
        use_labels_for_header="true",
        csv_separator=",",
    )
    assert labels.text.startswith("Identifiant,")


def test_download_json_records_are_the_search_records(portal: LocalPortal) -> None:
    params = {"dataset": "sample-districts", "sort": "-c_ar", "fields": "c_ar,l_ar,geom"}
    records = get(portal, DOWNLOAD, format="json", **params).json()
    page = ok(portal, "/api/records/1.0/search/", rows=20, **params)["records"]
    strip = ("record_timestamp",)  # written with an offset by the download, Z by the search
    assert [{k: v for k, v in r.items() if k not in strip} for r in records] == [
        {k: v for k, v in r.items() if k not in strip} for r in page
    ]
    assert [r["fields"]["c_ar"] for r in records] == list(range(1, 21))


def test_download_geojson(portal: LocalPortal) -> None:
    body = get(portal, DOWNLOAD, dataset="sample-districts", format="geojson").json()
    assert body["type"] == "FeatureCollection" and len(body["features"]) == 20
    feature = body["features"][0]
    assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert feature["properties"]["geom_x_y"][0] > 48  # [lat, lon]


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({}, 400, "dataset"),
        ({"dataset": "nope"}, 404, "nope"),
        ({"dataset": "sample-trees", "format": "xlsx"}, 400, "format"),
        ({"dataset": "sample-trees", "csv_separator": "ab"}, 400, "csv_separator"),
        ({"dataset": "sample-trees", "rows": -2}, 400, "rows"),
        ({"dataset": "sample-trees", "q": "(unclosed"}, 400, "q"),
        ({"dataset": "sample-budget-restricted"}, 401, "restricted"),
    ],
)
def test_download_errors(
    portal: LocalPortal, params: dict[str, Any], status: int, fragment: str
) -> None:
    assert fragment in v1_error(get(portal, DOWNLOAD, **params), status)


def test_attachments_and_files(portal: LocalPortal) -> None:
    attachment = get(portal, f"{DATASETS}/sample-bike-stations/attachments/notice_pdf/")
    assert attachment.status_code == 200 and attachment.content.startswith(b"%PDF")
    photo = next(
        r["fields"]["photo"]
        for r in ok(portal, "/api/records/1.0/search/", dataset="sample-trees", rows=20)["records"]
        if "photo" in r["fields"]
    )
    image = get(portal, f"{DATASETS}/sample-trees/files/{photo['id']}/")
    thumbnail = get(portal, f"{DATASETS}/sample-trees/files/{photo['id']}/300/")
    assert image.content.startswith(b"\x89PNG") and thumbnail.content.startswith(b"\x89PNG")
    assert len(thumbnail.content) < len(image.content)
    v1_error(get(portal, f"{DATASETS}/sample-trees/files/nope/"), 404)

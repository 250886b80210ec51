"""Portal address resolution and dataset path escaping."""

from __future__ import annotations

import pytest

from odsframe._portal_url import dataset_path_segment, portal_host, resolve_portal
from odsframe.errors import InvalidQueryArgument


@pytest.mark.parametrize(
    ("portal", "expected"),
    [
        ("https://data.example.org", "https://data.example.org"),
        ("https://data.example.org/", "https://data.example.org"),
        ("HTTPS://Data.Example.ORG/", "https://data.example.org"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("https://data.example.org/api/explore/v2.1/", "https://data.example.org"),
        (
            "https://data.example.org/api/explore/v2.1/catalog/datasets/x/records?limit=3",
            "https://data.example.org",
        ),
        ("https://data.example.org/api/records/1.0/search/?dataset=x", "https://data.example.org"),
        ("https://data.example.org/explore/dataset/trees/table/", "https://data.example.org"),
        ("https://host.example.org/ods/api/v2/catalog", "https://host.example.org/ods"),
        ("https://data.example.org#frag", "https://data.example.org"),
        ("data.example.org", "https://data.example.org"),
        ("data.example.org/", "https://data.example.org"),
        ("data.example.org/api/explore/v2.1", "https://data.example.org"),
        ("localhost:8000", "http://localhost:8000"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
        ("public", "https://public.opendatasoft.com"),
        ("Paris", "https://paris.opendatasoft.com"),
        ("my-portal", "https://my-portal.opendatasoft.com"),
        ("  public  ", "https://public.opendatasoft.com"),
    ],
)
def test_resolve_portal(portal: str, expected: str) -> None:
    assert resolve_portal(portal) == expected


@pytest.mark.parametrize(
    ("portal", "match"),
    [
        ("", "portal"),
        (None, "portal"),
        ("ftp://data.example.org", "http and https"),
        ("https://", "host"),
        ("https://user:pw@data.example.org", "credentials"),
        ("bad name", "neither"),
        ("-dash", "neither"),
        ("https://data.example.org:99999", "port"),
    ],
)
def test_resolve_portal_rejects(portal: object, match: str) -> None:
    with pytest.raises(InvalidQueryArgument, match=match):
        resolve_portal(portal)  # type: ignore[arg-type]


def test_portal_host_keeps_the_port() -> None:
    assert portal_host("http://127.0.0.1:8765/api/") == "127.0.0.1:8765"
    assert portal_host("public") == "public.opendatasoft.com"


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("trees", "trees"),
        ("commodity-prices@public", "commodity-prices@public"),
        ("a b", "a%20b"),
        ("a/b", "a%2Fb"),
        ("x?y#z", "x%3Fy%23z"),
        ("100%", "100%25"),
        ("données", "donn%C3%A9es"),
    ],
)
def test_dataset_path_segment(dataset: str, expected: str) -> None:
    assert dataset_path_segment(dataset) == expected


@pytest.mark.parametrize("dataset", ["", ".", ".."])
def test_dataset_path_segment_rejects(dataset: str) -> None:
    with pytest.raises(InvalidQueryArgument, match="dataset"):
        dataset_path_segment(dataset)

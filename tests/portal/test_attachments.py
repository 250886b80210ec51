"""Dataset attachments and record files over real HTTP, including path traversal attempts."""

from __future__ import annotations

import http.client
import json
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from odsframe.testing.portal import LocalPortal

V21 = "/api/explore/v2.1"
FANTOIR = "nasqueron__datasources__catalog_dataset_fantoir.json"
FANTOIR_ATTACHMENTS = "nasqueron__datasources__catalog_dataset_fantoir_attachments.json"
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def png(width: int, height: int) -> bytes:
    """The start of a PNG file: enough for its size to be read from the header."""
    return PNG_HEADER + struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00" + b"\x00" * 8


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, real_fixtures: Path) -> Iterator[LocalPortal]:
    """Sample datasets, the real fantoir dataset with its attachments, and a folder dataset
    with an image field."""
    folder = tmp_path_factory.mktemp("attachments")
    shutil.copyfile(real_fixtures / FANTOIR, folder / "fantoir.schema.json")
    attachments = folder / "fantoir.attachments"
    attachments.mkdir()
    for item in json.loads((real_fixtures / FANTOIR).read_text(encoding="utf-8"))["dataset"][
        "attachments"
    ]:
        name = item["url"].removeprefix("odsfile://")
        (attachments / name).write_bytes(f"content of {name}".encode())
    (folder / "photos.files").mkdir()
    (folder / "photos.files" / "cat.png").write_bytes(png(40, 30))
    photos = [
        {"name": "cat", "image": {"id": "cat.png", "filename": "cat.png", "format": "png"}},
        {"name": "none", "image": None},
    ]
    (folder / "photos.json").write_text(json.dumps(photos), encoding="utf-8")
    # a file outside every dataset folder, which no URL may reach
    (folder / "secret.txt").write_text("top secret", encoding="utf-8")
    with LocalPortal(data_dir=folder, sample=True, sample_records=100, api_keys=["key"]) as running:
        yield running


@pytest.fixture(scope="module")
def datasets_url(portal: LocalPortal) -> str:
    return f"{portal.url}{V21}/catalog/datasets"


def raw_get(portal: LocalPortal, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ``..``)."""
    parts = urlsplit(portal.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_attachments_list(
    portal: LocalPortal, datasets_url: str, validate: Callable[[Any, str], None]
) -> None:
    answer = requests.get(f"{datasets_url}/sample-bike-stations/attachments", timeout=30)
    assert answer.status_code == 200
    body = answer.json()
    dataset = portal.catalog.get("sample-bike-stations")

    assert body["_links"] == []
    assert [item["metas"] for item in body["attachments"]] == [
        {
            "mime-type": attachment.mimetype,
            "title": attachment.title,
            "url": f"odsfile://{attachment.path.name}",
            "id": attachment.id,
        }
        for attachment in dataset.attachments
    ]
    for item, attachment in zip(body["attachments"], dataset.attachments):
        validate(item, "attachment")
        assert item["href"] == f"{datasets_url}/sample-bike-stations/attachments/{attachment.id}"
        download = requests.get(item["href"], timeout=30)
        assert download.status_code == 200
        assert download.content == attachment.path.read_bytes()
        assert download.headers["content-type"].split(";")[0] == attachment.mimetype
        assert f'filename="{attachment.path.name}"' in download.headers["content-disposition"]


def test_real_fantoir_attachments_are_listed_as_on_the_real_portal(
    datasets_url: str, real_fixtures: Path
) -> None:
    real = json.loads((real_fixtures / FANTOIR_ATTACHMENTS).read_text(encoding="utf-8"))
    body = requests.get(f"{datasets_url}/fantoir/attachments", timeout=30).json()

    assert len(body["attachments"]) == len(real["attachments"])
    for ours, theirs in zip(body["attachments"], real["attachments"]):
        expected = dict(theirs["metas"])
        expected["mime-type"] = expected.pop("mimetype")  # v2.0 wrote "mimetype"
        assert ours["metas"] == expected
        assert ours["href"].rsplit("/", 2)[1:] == theirs["href"].rsplit("/", 2)[1:]
        content = requests.get(ours["href"], timeout=30).content
        assert content == f"content of {expected['url'].removeprefix('odsfile://')}".encode()


def test_unknown_attachment_or_dataset(
    datasets_url: str, ods_error: Callable[[requests.Response, int, str], dict[str, Any]]
) -> None:
    missing = requests.get(f"{datasets_url}/sample-bike-stations/attachments/nope", timeout=30)
    assert "nope" in ods_error(missing, 404, "NotFound")["message"]
    ods_error(requests.get(f"{datasets_url}/nope/attachments", timeout=30), 404, "NotFound")
    restricted = f"{datasets_url}/sample-budget-restricted/attachments"
    ods_error(requests.get(restricted, timeout=30), 401, "Unauthorized")
    assert requests.get(restricted, params={"apikey": "key"}, timeout=30).status_code == 200


def test_record_file_field_downloads_through_its_url(
    datasets_url: str, portal: LocalPortal
) -> None:
    records = requests.get(
        f"{datasets_url}/sample-trees/records",
        params={"where": "photo IS NOT NULL", "limit": "1"},
        timeout=30,
    ).json()["results"]
    photo = records[0]["photo"]
    files = portal.catalog.get("sample-trees").files

    assert photo["url"] == f"{datasets_url}/sample-trees/files/{photo['id']}"
    image = requests.get(photo["url"], timeout=30)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == files[photo["id"]].read_bytes()
    assert struct.unpack(">II", image.content[16:24]) == (photo["width"], photo["height"])

    thumbnail = requests.get(photo["url"] + "/thumbnail", timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"
    width, height = struct.unpack(">II", thumbnail.content[16:24])
    assert (width, height) == (photo["width"] // 2, photo["height"] // 2)


def test_file_of_a_folder_dataset_and_its_thumbnail(datasets_url: str) -> None:
    records = requests.get(f"{datasets_url}/photos/records", timeout=30).json()["results"]
    url = records[0]["image"]["url"]

    image = requests.get(url, timeout=30)
    assert image.content == png(40, 30)
    # no thumbnail was registered: the image itself is the thumbnail
    assert requests.get(url + "/thumbnail", timeout=30).content == png(40, 30)


def test_unknown_files(
    datasets_url: str,
    portal: LocalPortal,
    ods_error: Callable[[requests.Response, int, str], dict[str, Any]],
) -> None:
    tree_file = next(iter(portal.catalog.get("sample-trees").files))
    for url in (
        f"{datasets_url}/photos/files/nope.png",
        f"{datasets_url}/photos/files/nope.png/thumbnail",
        f"{datasets_url}/photos/files/{tree_file}",  # another dataset's file
    ):
        ods_error(requests.get(url, timeout=30), 404, "NotFound")


@pytest.mark.parametrize(
    "tail",
    [
        "attachments/..",
        "attachments/%2e%2e",
        "attachments/..%2F..%2F..%2Fsecret.txt",
        "attachments/..%2Ffantoir.attachments%2Fdescriptif-du-fichier-national-fantoir.pdf",
        "attachments/%2Fetc%2Fpasswd",
        "attachments/../../../../../../etc/passwd",
        "files/..",
        "files/%2e%2e%2fsecret.txt",
        "files/..%2F..%2Fsecret.txt",
        "files/cat.png%2F..%2F..%2F..%2Fsecret.txt",
        "files/%2Fetc%2Fpasswd",
        "files/cat.png/thumbnail/../../../../secret.txt",
        "files/..%5C..%5Csecret.txt",
    ],
)
def test_path_traversal_never_reaches_a_file(portal: LocalPortal, tail: str) -> None:
    dataset = "fantoir" if tail.startswith("attachments") else "photos"
    status, body = raw_get(portal, f"{V21}/catalog/datasets/{dataset}/{tail}")

    assert status == 404
    assert json.loads(body)["error_code"] == "NotFound"
    assert b"secret" not in body.replace(b"secret.txt", b"") and b"root:" not in body

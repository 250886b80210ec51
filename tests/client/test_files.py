"""Record files (``download_files`` / ``df.ods.download_files``) and dataset attachments
(``Dataset.download_attachment(s)``) over real HTTP against the sample portal.

``sample-trees`` has a ``photo`` file field (PNG images with half-size thumbnails, on every
8th tree, 12 distinct images); ``sample-bike-stations`` has two attachments, a CSV summary
and a PDF notice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
import requests

import odsframe
from odsframe.errors import DatasetNotFoundError, InvalidQueryArgument, ODSWarning
from odsframe.files import attachment_file_names, download_files, safe_file_name
from odsframe.testing.catalog import Catalog
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal

TREES = "sample-trees"
STATIONS = "sample-bike-stations"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trees(sample_portal: LocalPortal) -> pd.DataFrame:
    return odsframe.read_ods(sample_portal.url, TREES, cache=False)


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


# -- record files -----------------------------------------------------------------------------


def test_every_photo_is_downloaded_once_with_the_portals_bytes(
    trees: pd.DataFrame, tmp_path: Path
) -> None:
    out = trees.ods.download_files("photo", tmp_path / "photos")
    assert list(out.columns) == [*trees.columns, "photo_path"]
    assert isinstance(out, type(trees))  # a GeoDataFrame stays one
    has_photo = trees["photo"].notna()
    assert out["photo_path"].notna().tolist() == has_photo.tolist()
    saved = files_in(tmp_path / "photos")
    assert len(saved) == trees.loc[has_photo, "photo"].nunique() == 12
    for url, path in zip(
        trees.loc[has_photo, "photo"], out.loc[has_photo, "photo_path"], strict=True
    ):
        local = Path(path)
        assert local.parent == (tmp_path / "photos").resolve()
        assert local.name == url.rsplit("/", 1)[-1] + ".png"
        content = local.read_bytes()
        assert content.startswith(PNG_SIGNATURE)
        assert content == requests.get(url, timeout=30).content
    # the frame passed in is left as it was
    assert "photo_path" not in trees.columns


def test_thumbnails_are_smaller_pngs(trees: pd.DataFrame, tmp_path: Path) -> None:
    full = trees.ods.download_files("photo", tmp_path)
    thumbs = trees.ods.download_files("photo", tmp_path, thumbnails=True, path_column="thumb")
    pairs = full[["photo", "photo_path"]].join(thumbs["thumb"]).dropna()
    assert len(pairs) == trees["photo"].notna().sum()
    for url, image, thumb in pairs.itertuples(index=False):
        assert thumb.endswith(".thumbnail.png")
        small = Path(thumb).read_bytes()
        assert small.startswith(PNG_SIGNATURE)
        assert len(small) < len(Path(image).read_bytes())
        assert small == requests.get(url + "/thumbnail", timeout=30).content
    assert len(files_in(tmp_path)) == 24


def test_running_again_downloads_nothing(
    trees: pd.DataFrame, tmp_path: Path, recording_session: Any
) -> None:
    first = download_files(trees, "photo", tmp_path, session=recording_session)
    assert len(recording_session.urls) == 12
    stamps = {p.name: p.stat().st_mtime_ns for p in files_in(tmp_path)}
    again = download_files(trees, "photo", tmp_path, session=recording_session)
    assert len(recording_session.urls) == 12  # no new request
    pd.testing.assert_series_equal(again["photo_path"], first["photo_path"])
    assert {p.name: p.stat().st_mtime_ns for p in files_in(tmp_path)} == stamps
    # One file missing: only that one is fetched.
    missing = files_in(tmp_path)[0]
    missing.unlink()
    download_files(trees, "photo", tmp_path, session=recording_session)
    assert len(recording_session.urls) == 13
    assert recording_session.urls[-1].endswith("/files/" + missing.stem)
    assert missing.exists()
    # overwrite=True fetches everything again.
    download_files(trees, "photo", tmp_path, session=recording_session, overwrite=True)
    assert len(recording_session.urls) == 25


def test_no_temporary_file_is_left_behind(trees: pd.DataFrame, tmp_path: Path) -> None:
    download_files(trees, "photo", tmp_path, workers=8)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_file_objects_work_too(sample_portal: LocalPortal, tmp_path: Path) -> None:
    records = requests.get(
        f"{sample_portal.url}/api/explore/v2.1/catalog/datasets/{TREES}/records",
        params={"where": "photo is not null", "limit": 3, "select": "idbase, photo"},
        timeout=30,
    ).json()["results"]
    frame = pd.DataFrame(records)
    assert isinstance(frame["photo"][0], dict)
    out = download_files(frame, "photo", tmp_path, workers=1)
    for record, path in zip(records, out["photo_path"], strict=True):
        assert Path(path).name == f"{record['photo']['id']}.png"
        assert Path(path).read_bytes() == requests.get(record["photo"]["url"], timeout=30).content
    # Without a url, the id is resolved against the frame's portal and dataset.
    bare = pd.DataFrame({"photo": [{"id": records[0]["photo"]["id"], "format": "png"}]})
    bare.attrs["ods"] = {"portal": sample_portal.url, "dataset": TREES, "api_version": "2.1"}
    (path,) = download_files(bare, "photo", tmp_path / "bare")["photo_path"]
    assert Path(path).read_bytes() == Path(out["photo_path"][0]).read_bytes()


def test_names_from_the_server_cannot_leave_the_folder(
    sample_portal: LocalPortal, tmp_path: Path
) -> None:
    base = f"{sample_portal.url}/api/explore/v2.1/catalog/datasets/{TREES}/files"
    frame = pd.DataFrame({"photo": [f"{base}/..%2F..%2Fescaped", f"{base}/%2E%2E"]})
    target = tmp_path / "inside"
    with pytest.warns(ODSWarning, match="2 of 2 files"):
        out = download_files(frame, "photo", target, errors="warn")
    assert out["photo_path"].isna().all()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inside"]


def test_odd_file_ids_get_safe_distinct_names(tmp_path: Path, recording_session: Any) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    ids = ["..hidden", "a b", "a_b", "CON", "x.png"]
    files = {}
    for number, file_id in enumerate(ids):
        files[file_id] = blobs / f"blob{number}.png"
        files[file_id].write_bytes(PNG_SIGNATURE + bytes([number]) * 10)
    catalog = Catalog()
    catalog.add_dataset(
        PortalDataset(
            "odd-files",
            "",
            [PortalField("n", "int"), PortalField("photo", "file")],
            {"default": {"title": "Odd files"}},
            files=files,
        ),
        pa.table(
            {
                "n": list(range(len(ids))),
                "photo": [json.dumps({"id": i, "filename": f"{i}.png"}) for i in ids],
            }
        ),
    )
    with LocalPortal(catalog=catalog) as portal:
        frame = odsframe.read_ods(portal.url, "odd-files", cache=False)
        out = frame.ods.download_files("photo", tmp_path / "out")
        objects = pd.DataFrame(
            requests.get(
                f"{portal.url}/api/explore/v2.1/catalog/datasets/odd-files/records", timeout=30
            ).json()["results"]
        )
        by_object = download_files(
            objects, "photo", tmp_path / "objects", session=recording_session
        )
        assert len(recording_session.urls) == len(ids)
        download_files(objects, "photo", tmp_path / "objects", session=recording_session)
        assert len(recording_session.urls) == len(ids)  # all found, by the same names
    assert [Path(p).name for p in by_object["photo_path"]] == [
        Path(p).name for p in out["photo_path"]
    ]
    names = [Path(path).name for path in out["photo_path"]]
    assert len(set(names)) == len(ids)
    assert names[-1] == "x.png"  # already safe, and already carrying its extension
    for number, path in enumerate(out["photo_path"]):
        local = Path(path)
        assert local.parent == (tmp_path / "out").resolve()
        assert not local.name.startswith(".")
        assert local.read_bytes() == files[ids[number]].read_bytes()


def test_safe_file_names() -> None:
    assert safe_file_name("70924e5ed4750e52ad60f7488c849adc") == "70924e5ed4750e52ad60f7488c849adc"
    assert safe_file_name("notice.pdf") == "notice.pdf"
    escaped = safe_file_name("../../etc/passwd")
    assert "/" not in escaped and not escaped.startswith(".")
    assert escaped.startswith("passwd")
    assert safe_file_name("..") != ".." and not safe_file_name("..").startswith(".")
    assert safe_file_name("a b.PNG") != safe_file_name("a_b.png")
    assert safe_file_name("a b.PNG").endswith(".png")
    assert safe_file_name("CON.txt").startswith("CON-")
    assert safe_file_name("été.csv").endswith(".csv") and safe_file_name("été.csv").isascii()
    assert safe_file_name("x" * 500).__len__() <= 140


def test_a_missing_file_raises_not_found(sample_portal: LocalPortal, tmp_path: Path) -> None:
    base = f"{sample_portal.url}/api/explore/v2.1/catalog/datasets/{TREES}/files"
    frame = pd.DataFrame({"photo": [f"{base}/doesnotexist", None]})
    with pytest.raises(DatasetNotFoundError):
        download_files(frame, "photo", tmp_path)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"column": "nope"}, "column: 'nope' is not a column"),
        ({"workers": 0}, "workers"),
        ({"errors": "ignore"}, "errors"),
    ],
)
def test_bad_arguments(
    trees: pd.DataFrame, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"column": "photo", **kwargs}
    column = arguments.pop("column")
    with pytest.raises(InvalidQueryArgument, match=message):
        download_files(trees, column, tmp_path, **arguments)


def test_a_value_that_is_not_a_url_needs_a_portal(tmp_path: Path) -> None:
    frame = pd.DataFrame({"photo": ["just-an-id"]})
    with pytest.raises(InvalidQueryArgument, match="is not a file URL"):
        download_files(frame, "photo", tmp_path)


def test_the_key_goes_to_the_portals_host_only(
    private_portal: LocalPortal,
    sample_portal: LocalPortal,
    api_key: str,
    tmp_path: Path,
    recording_session: Any,
) -> None:
    own = odsframe.read_ods(private_portal.url, TREES, where="photo is not null", limit=1)
    foreign = odsframe.read_ods(sample_portal.url, TREES, where="photo is not null", limit=2)
    frame = own.copy()
    frame["photo"] = [foreign["photo"].iloc[1]]
    both = pd.concat([own, frame], ignore_index=True)
    both.attrs = own.attrs
    download_files(both, "photo", tmp_path, api_key=api_key, session=recording_session)
    sent = dict(zip(recording_session.urls, recording_session.headers_sent, strict=True))
    assert len(sent) == 2
    for url, headers in sent.items():
        keyed = "Authorization" in headers
        assert keyed == url.startswith(private_portal.url), url


# -- attachments ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stations(sample_portal: LocalPortal) -> odsframe.Dataset:
    return odsframe.Portal(sample_portal.url).dataset(STATIONS)


def test_download_one_attachment_to_a_path(stations: odsframe.Dataset, tmp_path: Path) -> None:
    path = stations.download_attachment("notice_pdf", tmp_path / "the-notice.pdf")
    assert path == tmp_path / "the-notice.pdf"
    content = path.read_bytes()
    assert content.startswith(b"%PDF")
    href = stations.attachments.set_index("id").loc["notice_pdf", "href"]
    assert content == requests.get(href, timeout=30).content


def test_download_one_attachment_into_a_folder_names_it_as_published(
    stations: odsframe.Dataset, tmp_path: Path
) -> None:
    path = stations.download_attachment("stations_summary_csv", tmp_path)
    assert path == tmp_path / "stations-summary.csv"
    assert path.read_bytes().decode("utf-8").count("\n") > 1


def test_download_all_attachments(stations: odsframe.Dataset, tmp_path: Path) -> None:
    paths = stations.download_attachments(tmp_path / "attachments")
    assert [p.name for p in paths] == ["stations-summary.csv", "notice.pdf"]
    assert files_in(tmp_path / "attachments") == sorted(paths)
    again = stations.download_attachments(tmp_path / "attachments")
    assert again == paths
    assert [p.name for p in (tmp_path / "attachments").iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("attachment_id", ["nope", "../notice_pdf", "notice_pdf/../x"])
def test_an_unknown_attachment_is_not_found(
    stations: odsframe.Dataset, tmp_path: Path, attachment_id: str
) -> None:
    with pytest.raises(DatasetNotFoundError) as caught:
        stations.download_attachment(attachment_id, tmp_path)
    message = str(caught.value)
    assert f"Attachment {attachment_id!r} was not found in dataset {STATIONS!r}" in message
    assert "'stations_summary_csv', 'notice_pdf'" in message
    assert caught.value.status == 404
    assert list(tmp_path.iterdir()) == []


def test_attachment_arguments(stations: odsframe.Dataset, tmp_path: Path) -> None:
    with pytest.raises(InvalidQueryArgument, match="attachment_id"):
        stations.download_attachment("", tmp_path)
    with pytest.raises(InvalidQueryArgument, match="does not exist"):
        stations.download_attachment("notice_pdf", tmp_path / "missing" / "x.pdf")


def _fixture(real_fixtures: Path, name: str) -> Any:
    return json.loads((real_fixtures / name).read_text(encoding="utf-8"))


def test_attachment_names_of_real_attachment_lists(real_fixtures: Path) -> None:
    listed = _fixture(
        real_fixtures, "nasqueron__datasources__catalog_dataset_fantoir_attachments.json"
    )
    entries = listed["attachments"]
    names = attachment_file_names(entries)
    assert len(names) == len(entries) == 5 and len(set(names)) == 5
    for entry, name in zip(entries, names, strict=True):
        assert name == entry["metas"]["url"].removeprefix("odsfile://")
        assert name == safe_file_name(name)
    # The dataset object's flat attachments give the same names, in the same order.
    dataset = _fixture(real_fixtures, "nasqueron__datasources__catalog_dataset_fantoir.json")
    assert attachment_file_names(dataset["dataset"]["attachments"]) == names


def test_attachment_names_fall_back_and_never_collide() -> None:
    names = attachment_file_names(
        [
            {"id": "a", "title": "Report 2024.PDF"},
            {"id": "b", "title": "REPORT.pdf"},
            {"id": "b2", "title": "report.pdf"},
            {"id": "../c", "url": "odsfile://../../etc/passwd"},
            {"id": "d"},
            {"title": "no id"},
        ]
    )
    assert len(names) == 5
    assert names[0].endswith(".pdf") and names[0].startswith("Report_2024-")
    # Same name but for case (which some file systems ignore): the id is added.
    assert names[1:3] == ["REPORT.pdf", "report-b2.pdf"]
    assert "/" not in names[3] and not names[3].startswith(".") and "passwd" in names[3]
    assert names[4] == "d"

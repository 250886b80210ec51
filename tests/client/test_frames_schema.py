"""Schemas: FieldSpec, metadata of every API generation, dtypes and inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.frames import (
    FieldSpec,
    as_fields,
    fields_frame,
    fields_from_metadata,
    infer_fields,
    normalize_annotations,
    pandas_dtype,
)


def load(real_fixtures: Path, name: str) -> object:
    return json.loads((real_fixtures / name).read_text(encoding="utf-8"))


# --- metadata of each generation -------------------------------------------------------------


def test_v1_dataset_annotations_become_the_v21_dict_form(real_fixtures: Path) -> None:
    search = load(real_fixtures, "amagovpt__udata-pt__sns_dataset.json")
    fields = fields_from_metadata(search["datasets"][0])  # type: ignore[index]

    assert [f.name for f in fields][:4] == [
        "tempo",
        "regiao",
        "instituicao",
        "localizacao_geografica",
    ]
    tempo = fields[0]
    assert tempo.type == "date"
    assert tempo.label == "Período"
    assert tempo.annotations == {
        "timeserie_precision": ["month"],
        "facet": [],
        "facetsort": ["-alphanum"],
        "timerangeFilter": [],
    }
    assert tempo.date_precision == "month"
    rate = fields[4]
    assert rate.type == "double"
    assert rate.unit == "%"
    assert rate.annotations["decimals"] == [2]
    assert fields[3].is_geo


def test_a_v1_search_page_with_one_dataset_is_accepted(real_fixtures: Path) -> None:
    search = load(real_fixtures, "amagovpt__udata-pt__sns_dataset.json")
    assert len(fields_from_metadata(search)) == 6


def test_v20_dataset_wrapper_and_boolean_annotations(real_fixtures: Path) -> None:
    page = load(real_fixtures, "nasqueron__datasources__catalog_datasets.json")
    relance = page["datasets"][1]  # type: ignore[index]
    fields = fields_from_metadata(relance)  # the {"links", "dataset": {...}} item

    by_name = {f.name: f for f in fields}
    assert by_name["date"].annotations == {"facet": []}  # v2.0 wrote {"facet": true}
    assert by_name["period_date"].annotations == {}
    assert by_name["code_departement"].label == "code_département"
    assert by_name["valeur"].type == "double"
    assert by_name["date"].description is None


def test_v20_dataset_lookup_without_fields(real_fixtures: Path) -> None:
    fantoir = load(real_fixtures, "nasqueron__datasources__catalog_dataset_fantoir.json")
    assert fields_from_metadata(fantoir) == []


def test_v21_catalog_entry(real_fixtures: Path) -> None:
    page = load(real_fixtures, "139bercy__data-eco-datasets-manager__dataset-sample-explore.json")
    assert fields_from_metadata(page) == []
    assert fields_from_metadata(page["results"][0]) == []  # type: ignore[index]


@pytest.mark.parametrize(
    "name",
    [
        "opendatateam__udata-ods__test-b.json",
        "opendatateam__udata-ods__inspire.json",
        "opendatateam__udata-ods__test-shp-limit.json",
    ],
)
def test_v1_dataset_lookup(real_fixtures: Path, name: str) -> None:
    fields = fields_from_metadata(load(real_fixtures, name))
    assert [(f.name, f.type) for f in fields] == [
        ("test", "text"),
        ("geo", "geo_point_2d"),
        ("value", "text"),
    ]


def test_v1_dataset_lookup_with_descriptions(real_fixtures: Path) -> None:
    fields = fields_from_metadata(load(real_fixtures, "opendatateam__udata-ods__test-a.json"))
    assert [(f.name, f.label, f.description) for f in fields] == [
        ("toto", "toto", None),
        ("titi", "titi", None),
    ]


def test_a_catalog_page_with_many_datasets_is_refused(real_fixtures: Path) -> None:
    page = load(real_fixtures, "malkreide__sbb-opendata-mcp__catalog.json")
    with pytest.raises(ServerError, match="12 datasets"):
        fields_from_metadata(page)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"dataset_id": "x"}, "not a dataset metadata object"),
        ({"dataset_id": "x", "fields": {"a": 1}}, "'fields' must be a list"),
        ({"fields": [{"type": "text"}]}, "no usable 'name'"),
        ({"fields": [{"name": "a"}]}, "no usable 'type'"),
        ({"fields": [{"name": "a", "type": "int"}, {"name": "a", "type": "text"}]}, "twice"),
        ("fields", "must be a JSON object"),
    ],
)
def test_unreadable_metadata_is_a_server_error(payload: object, message: str) -> None:
    with pytest.raises(ServerError, match=message):
        fields_from_metadata(payload)


# --- FieldSpec -------------------------------------------------------------------------------


def test_fieldspec_defaults_and_properties() -> None:
    tags = FieldSpec("tags", "text", annotations={"multivalued": [";"]})
    assert tags.label == "tags"
    assert tags.multivalued and tags.multivalued_separator == ";"
    assert FieldSpec("t", "text", annotations={"multivalued": []}).multivalued_separator == ","
    assert FieldSpec("t", "text").multivalued_separator is None
    assert FieldSpec("d", "date").date_precision == "day"
    assert FieldSpec("d", "date", annotations={"timeserie_precision": ["year"]}).date_precision == (
        "year"
    )
    hour = FieldSpec("d", "datetime", annotations={"timeserie_precision": "hour"})
    assert hour.timeserie_precision == "hour" and hour.date_precision == "day"
    assert hash(tags) == hash(FieldSpec("tags", "text", annotations={"multivalued": [";"]}))


def test_fieldspec_json_round_trip() -> None:
    item = {
        "name": "population",
        "label": "Population",
        "type": "int",
        "description": "people",
        "annotations": {"facet": [], "unit": ["hab"]},
    }
    spec = FieldSpec.from_json(item)
    assert spec.to_json() == item
    assert spec.unit == "hab"


def test_fieldspec_rejects_empty_names() -> None:
    with pytest.raises(InvalidQueryArgument, match="field name"):
        FieldSpec("", "text")


def test_normalize_annotations_forms() -> None:
    assert normalize_annotations([{"name": "facet"}, {"name": "unit", "args": ["€"]}]) == {
        "facet": [],
        "unit": ["€"],
    }
    assert normalize_annotations({"facet": True, "sortable": False, "unit": "km"}) == {
        "facet": [],
        "unit": ["km"],
    }
    assert normalize_annotations(None) == {}
    with pytest.raises(ServerError, match="annotations"):
        normalize_annotations(3)


def test_as_fields_accepts_simple_mappings() -> None:
    fields = as_fields({"a": "int", "b": {"type": "text", "label": "Bee"}})
    assert fields == [FieldSpec("a", "int"), FieldSpec("b", "text", label="Bee")]
    assert as_fields(None) is None
    with pytest.raises(InvalidQueryArgument, match="field 'a'"):
        as_fields({"a": 3})
    with pytest.raises(InvalidQueryArgument, match="fields must be"):
        as_fields(3)


# --- dtypes ----------------------------------------------------------------------------------


def test_pandas_dtypes_per_type() -> None:
    assert pandas_dtype(FieldSpec("a", "int")) == pd.Int64Dtype()
    assert pandas_dtype(FieldSpec("a", "double")) == pd.Float64Dtype()
    assert pandas_dtype(FieldSpec("a", "text")) == pd.StringDtype()
    lists = pd.ArrowDtype(pa.list_(pa.string()))
    assert pandas_dtype(FieldSpec("a", "text", annotations={"multivalued": []})) == lists
    assert pandas_dtype(FieldSpec("a", "boolean")) == pd.BooleanDtype()
    assert pandas_dtype(FieldSpec("a", "date")) == np.dtype("datetime64[us]")
    assert pandas_dtype(FieldSpec("a", "datetime")) == pd.DatetimeTZDtype("us", "UTC")
    paris = pandas_dtype(FieldSpec("a", "datetime"), timezone="Europe/Paris")
    assert paris == pd.DatetimeTZDtype("us", "Europe/Paris")
    assert pandas_dtype(FieldSpec("a", "file")) == pd.StringDtype()
    for kind in ("geo_point_2d", "geo_shape", "json_blob", "image"):
        assert pandas_dtype(FieldSpec("a", kind)) == np.dtype(object)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(InvalidQueryArgument, match="Mars/Olympus"):
        pandas_dtype(FieldSpec("a", "datetime"), timezone="Mars/Olympus")


def test_fields_frame(real_fixtures: Path) -> None:
    search = load(real_fixtures, "amagovpt__udata-pt__sns_dataset.json")
    table = fields_frame(fields_from_metadata(search))
    assert list(table.columns) == ["name", "label", "type", "unit", "description"]
    assert len(table) == 6
    assert table.loc[4, "unit"] == "%"
    assert pd.isna(table.loc[0, "unit"])
    assert table["name"].dtype == pd.StringDtype()


# --- inference -------------------------------------------------------------------------------


def test_infer_fields_from_typed_and_object_columns() -> None:
    frame = pd.DataFrame(
        {
            "n": [1, 2],
            "x": [1.5, None],
            "flag": [True, False],
            "when": ["2024-01-01T10:00:00+01:00", None],
            "day": ["2024-01-01", "2024-02-01"],
            "point": [{"lon": 2.3, "lat": 48.8}, None],
            "pair": [[48.8, 2.3], [50.0, 4.0]],
            "shape": [{"type": "Point", "coordinates": [1, 2]}, None],
            "geom": [shapely.Point(1, 2), None],
            "tags": [["a", "b"], ["c"]],
            "blob": [{"k": 1}, {"k": 2}],
            "code": ["75056", "01234"],
            "empty": [None, None],
        }
    )
    kinds = {f.name: f.type for f in infer_fields(frame)}
    assert kinds == {
        "n": "int",
        "x": "double",
        "flag": "boolean",
        "when": "datetime",
        "day": "date",
        "point": "geo_point_2d",
        "pair": "geo_point_2d",
        "shape": "geo_shape",
        "geom": "geo_shape",
        "tags": "text",
        "blob": "json_blob",
        "code": "text",  # JSON strings stay text
        "empty": "text",
    }
    assert {f.name for f in infer_fields(frame) if f.multivalued} == {"tags"}


def test_infer_fields_from_text_cells() -> None:
    frame = pd.DataFrame(
        {
            "count": ["1", "22", None],
            "ratio": ["1.5", "2", "-3e2"],
            "zip": ["01000", "75001", "13001"],
            "point": ["48.86, 2.33", "48.8,2.3", None],
            "shape": ['{"coordinates": [1, 2], "type": "Point"}', None, None],
            "word": ["a", "b", "c"],
        }
    )
    kinds = {f.name: f.type for f in infer_fields(frame, from_text=True)}
    assert kinds == {
        "count": "int",
        "ratio": "double",
        "zip": "text",
        "point": "geo_point_2d",
        "shape": "geo_shape",
        "word": "text",
    }

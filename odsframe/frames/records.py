"""Records (JSON payloads of every API generation) into typed DataFrames and GeoDataFrames.

* :func:`records_from_v21`, :func:`records_from_v20`, :func:`records_from_v1` and
  :func:`records_from_payload` unwrap the envelopes into flat ``{field: value}`` dicts;
* :func:`cast_values` turns one column of raw values into the field's pandas dtype;
* :func:`frame_from_records` builds the typed frame; :func:`reindex_on_schema`,
  :func:`to_geodataframe` and :func:`label_columns` finish it.

Nothing here does I/O. Values that cannot be cast become NA with a
:class:`~odsframe.frames.schema.ValueCastWarning`; rows are never dropped.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from odsframe._spec import GEO_TYPES
from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.frames.geo import _object_array, parse_geometries
from odsframe.frames.schema import (
    TECHNICAL_FIELDS,
    TIME_UNIT,
    FieldsLike,
    FieldSpec,
    as_fields,
    check_timezone,
    empty_column,
    infer_field,
    warn_cast_failures,
)

#: Keys of v2.1 records that carry no data.
_DROPPED_KEYS = frozenset({"_links"})
_TRUE_TEXT = frozenset({"true", "t", "1", "yes", "y", "oui", "vrai"})
_FALSE_TEXT = frozenset({"false", "f", "0", "no", "n", "non", "faux"})
#: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (NumPy would also accept words such as "today").
_PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
#: Epoch numbers above this are milliseconds (v2.0 GeoJSON exports write epoch timestamps).
_EPOCH_MS_THRESHOLD = 1e11


# --- envelopes -------------------------------------------------------------------------------


def records_from_v21(payload: Any) -> list[dict[str, Any]]:
    """The flat records of a v2.1 ``/records`` answer (``{"total_count", "results"}``)."""
    if isinstance(payload, list):
        return _check_records(payload, "v2.1 records")
    if not isinstance(payload, Mapping) or not isinstance(payload.get("results"), list):
        raise ServerError(_not_a("v2.1 records answer with a 'results' list", payload))
    return _check_records(payload["results"], "v2.1 records")


def records_from_v20(payload: Any, *, technical: bool = False) -> list[dict[str, Any]]:
    """The flat records of a v2.0 ``/records`` answer (or one record lookup).

    Each ``{"links", "record": {"id", "timestamp", "size", "fields"}}`` becomes its ``fields``;
    with ``technical=True`` also ``_id``, ``_timestamp`` and ``_size``. Grouped answers (items
    without ``record``) are returned as they are.
    """
    if isinstance(payload, Mapping) and isinstance(payload.get("record"), Mapping):
        items: list[Any] = [payload]
    elif isinstance(payload, Mapping) and isinstance(payload.get("records"), list):
        items = payload["records"]
    else:
        raise ServerError(_not_a("v2.0 records answer with a 'records' list", payload))
    records = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ServerError(f"v2.0 record #{position} is not a JSON object: {item!r:.80}")
        record = item.get("record")
        if not isinstance(record, Mapping):
            records.append(dict(item))  # group_by rows are flat
            continue
        fields = record.get("fields")
        if not isinstance(fields, Mapping):
            raise ServerError(f"v2.0 record #{position} has no 'fields' object")
        flat = dict(fields)
        if technical:
            flat["_id"] = record.get("id")
            flat["_timestamp"] = record.get("timestamp")
            flat["_size"] = record.get("size")
        records.append(flat)
    return records


def records_from_v1(payload: Any, *, technical: bool = False) -> list[dict[str, Any]]:
    """The flat records of a v1 search answer, a v1 JSON export or one v1 record lookup.

    Each ``{"datasetid", "recordid", "fields", "geometry"?, "record_timestamp"}`` becomes its
    ``fields`` (v1 leaves out null fields: reindex on the schema, see
    :func:`reindex_on_schema`); with ``technical=True`` also ``_id``, ``_timestamp`` and
    ``_geometry`` (the record's GeoJSON geometry, when present).
    """
    if isinstance(payload, list):
        items: list[Any] = payload
    elif isinstance(payload, Mapping) and isinstance(payload.get("records"), list):
        items = payload["records"]
    elif isinstance(payload, Mapping) and isinstance(payload.get("fields"), Mapping):
        items = [payload]
    else:
        raise ServerError(_not_a("v1 records answer with a 'records' list", payload))
    records = []
    for position, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("fields", {}), Mapping):
            raise ServerError(f"v1 record #{position} has no 'fields' object: {item!r:.80}")
        flat = dict(item.get("fields") or {})
        if technical:
            flat["_id"] = item.get("recordid")
            flat["_timestamp"] = item.get("record_timestamp")
            if item.get("geometry") is not None:
                flat["_geometry"] = item["geometry"]
        records.append(flat)
    return records


def payload_generation(payload: Any) -> str:
    """Which API generation shaped a records payload: ``"v1"``, ``"v2.0"`` or ``"v2.1"``.

    Bare lists are JSON exports: ``v1`` when their items hold ``fields`` and ``recordid``,
    otherwise flat ``v2.1`` items.
    """
    if isinstance(payload, list):
        first = next((item for item in payload if isinstance(item, Mapping)), None)
        if first is not None and _is_v1_record(first):
            return "v1"
        return "v2.1"
    if isinstance(payload, Mapping):
        if isinstance(payload.get("results"), list):
            return "v2.1"
        records = payload.get("records")
        if isinstance(records, list):
            first = next((item for item in records if isinstance(item, Mapping)), None)
            if "nhits" in payload or (first is not None and _is_v1_record(first)):
                return "v1"
            return "v2.0"
        if isinstance(payload.get("record"), Mapping):
            return "v2.0"
        if _is_v1_record(payload):
            return "v1"
    raise ServerError(_not_a("records payload (v1, v2.0 or v2.1)", payload))


def records_from_payload(payload: Any, *, technical: bool = False) -> list[dict[str, Any]]:
    """Flat records from any records payload or JSON export (see :func:`payload_generation`)."""
    generation = payload_generation(payload)
    if generation == "v1":
        return records_from_v1(payload, technical=technical)
    if generation == "v2.0":
        return records_from_v20(payload, technical=technical)
    return records_from_v21(payload)


def _is_v1_record(item: Mapping[str, Any]) -> bool:
    return isinstance(item.get("fields"), Mapping) and ("recordid" in item or "datasetid" in item)


def _check_records(items: list[Any], what: str) -> list[dict[str, Any]]:
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ServerError(f"{what}: item #{position} is not a JSON object: {item!r:.80}")
    return items


def _not_a(what: str, payload: Any) -> str:
    if isinstance(payload, Mapping):
        keys = ", ".join(sorted(map(str, payload))[:10])
        return f"expected a {what}, got an object with keys: {keys}"
    return f"expected a {what}, got {type(payload).__name__}"


# --- frames ----------------------------------------------------------------------------------


def frame_from_records(
    records: Iterable[Mapping[str, Any]],
    fields: FieldsLike = None,
    *,
    timezone: str | None = None,
    geometry: str | bool | None = "auto",
    labels: bool = False,
    file_base_url: str | None = None,
    all_fields: bool = False,
) -> pd.DataFrame:
    """A typed frame from flat records (v2.1 ``results``, or unwrapped v2.0 / v1 records).

    Parameters
    ----------
    records
        Flat ``{field name: value}`` dicts.
    fields
        The schema (see :func:`~odsframe.frames.schema.as_fields`); columns it does not
        describe (aliases, aggregates) have their type inferred. None infers every column.
    timezone
        Timezone of datetime columns (default UTC).
    geometry
        ``"auto"``: a GeoDataFrame when geopandas is installed and a geo field is present;
        ``None``/``False``: a plain DataFrame (shapely objects in object columns); a field
        name: that field as the active geometry.
    labels
        Name the schema columns by their labels instead of their names.
    file_base_url
        Base URL to build file URLs from file ids (``<base>/<id>``) when a file object has no
        ``url``.
    all_fields
        Add every schema field missing from the records as a typed NA column and order the
        columns as the schema (v1 payloads leave null fields out).

    Returns
    -------
    DataFrame or GeoDataFrame
        One row per record, in order; columns in first-seen record order.
    """
    tz = check_timezone(timezone)
    _check_geometry_argument(geometry)
    specs = as_fields(fields)
    rows = records if isinstance(records, list) else list(records)
    _check_records(rows, "records")
    schema = {spec.name: spec for spec in specs or []}
    columns: dict[str, pd.Series] = {}
    used: list[FieldSpec] = []
    for name in _record_keys(rows):
        values = [row.get(name) for row in rows]
        spec = schema.get(name) or TECHNICAL_FIELDS.get(name) or infer_field(name, values)
        columns[name] = cast_values(values, spec, timezone=tz, file_base_url=file_base_url)
        used.append(spec)
    frame = (
        pd.DataFrame(columns, copy=False)
        if columns
        else pd.DataFrame(index=pd.RangeIndex(len(rows)))
    )
    if specs is not None and (all_fields or not rows):
        frame = reindex_on_schema(frame, specs, timezone=tz)
        used = _merge_fields(specs, used)
    return finish_frame(frame, used, geometry=geometry, labels=labels)


def _record_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys of all records in first-seen order (fast when every record has the same keys)."""
    if not rows:
        return []
    first_keys = rows[0].keys()
    keys: dict[str, None] = dict.fromkeys(first_keys)
    for row in rows:
        if row.keys() != first_keys:
            keys.update(dict.fromkeys(row.keys()))
    return [str(key) for key in keys if key not in _DROPPED_KEYS]


def _merge_fields(first: Sequence[FieldSpec], second: Sequence[FieldSpec]) -> list[FieldSpec]:
    names = {spec.name for spec in first}
    return [*first, *(spec for spec in second if spec.name not in names)]


def finish_frame(
    frame: pd.DataFrame,
    fields: Sequence[FieldSpec],
    *,
    geometry: str | bool | None = "auto",
    labels: bool = False,
) -> pd.DataFrame:
    """Apply the geometry choice and the label renaming to a typed frame."""
    frame = to_geodataframe(frame, fields, geometry=geometry)
    if labels:
        frame = label_columns(frame, fields)
    return frame


def reindex_on_schema(
    frame: pd.DataFrame,
    fields: FieldsLike,
    *,
    timezone: str | None = None,
    drop_extra: bool = False,
) -> pd.DataFrame:
    """Order columns as the schema and add missing fields as typed NA columns.

    Columns the schema does not list (technical values, aliases) follow in their current
    order, unless ``drop_extra`` is set.
    """
    specs = as_fields(fields) or []
    tz = check_timezone(timezone)
    missing = [spec for spec in specs if spec.name not in frame.columns]
    if missing:
        frame = frame.copy()
        for spec in missing:
            frame[spec.name] = _typed_missing(frame, spec, tz)
    names = [spec.name for spec in specs]
    known = set(names)
    extra = [] if drop_extra else [c for c in frame.columns if c not in known]
    return frame[[*names, *extra]]


def _typed_missing(frame: pd.DataFrame, spec: FieldSpec, timezone: str) -> Any:
    column = empty_column(spec, len(frame), timezone=timezone)
    column.index = frame.index
    if spec.is_geo and _is_geodataframe(frame):
        import geopandas

        return geopandas.GeoSeries(column, index=frame.index, crs=frame.crs)
    return column


# --- geometry --------------------------------------------------------------------------------


def to_geodataframe(
    frame: pd.DataFrame,
    fields: FieldsLike = None,
    geometry: str | bool | None = "auto",
) -> pd.DataFrame:
    """A GeoDataFrame (EPSG:4326) from a typed frame holding geo fields.

    Parameters
    ----------
    frame
        A typed frame.
    fields
        The schema; without one, columns holding shapely geometries are the geo columns.
    geometry
        ``"auto"``/``True``: the first geo_shape field is the active geometry, else the first
        geo_point_2d field; the other geo columns stay geometry columns. ``None``/``False``:
        return a plain DataFrame. A field name: that field is the active geometry.

    Returns
    -------
    DataFrame or GeoDataFrame
        A plain DataFrame when there is no geo column, when ``geometry`` is None/False, or when
        geopandas is not installed and ``geometry="auto"``.

    Raises
    ------
    InvalidQueryArgument
        If ``geometry`` names no geo column of the frame, or is True with no geo column.
    ImportError
        If a geometry was asked for explicitly and geopandas is not installed.
    """
    _check_geometry_argument(geometry)
    if geometry is None or geometry is False:
        return pd.DataFrame(frame) if _is_geodataframe(frame) else frame
    geo_columns = _geo_columns(frame, fields)
    if not geo_columns:
        if geometry is True or (isinstance(geometry, str) and geometry != "auto"):
            raise InvalidQueryArgument(
                f"geometry={geometry!r}: the frame has no geo_point_2d or geo_shape column"
            )
        return frame
    if isinstance(geometry, str) and geometry != "auto":
        if geometry not in geo_columns:
            raise InvalidQueryArgument(
                f"geometry={geometry!r} is not a geo field of this frame; "
                f"choose one of {sorted(geo_columns)}"
            )
        active = geometry
    else:
        # dataset fields before technical ones (v1 _geometry), shapes before points
        ranked = sorted(
            geo_columns,
            key=lambda n: (n in TECHNICAL_FIELDS, geo_columns[n] != "geo_shape"),
        )
        active = ranked[0]
    try:
        import geopandas
    except ImportError:
        if geometry == "auto":
            return frame
        raise ImportError(
            f"geometry={geometry!r} needs geopandas; install it with "
            "'pip install odsframe[geo]' or pass geometry=None"
        ) from None
    columns = {}
    for name, kind in geo_columns.items():
        values = frame[name]
        if isinstance(values.dtype, geopandas.array.GeometryDtype):
            columns[name] = geopandas.GeoSeries(values, crs=values.crs or "EPSG:4326")
            continue
        array = values.to_numpy(dtype=object)
        if not _all_geometries(array):
            array = parse_geometries(array, kind, name=str(name))
        # A GeometryArray over the same object array: no copy of a million geometries.
        geometries = geopandas.array.from_shapely(array, crs="EPSG:4326")
        columns[name] = geopandas.GeoSeries(geometries, index=frame.index, copy=False)
    data = {name: columns.get(name, frame[name]) for name in frame.columns}
    result = geopandas.GeoDataFrame(data, geometry=active, crs=columns[active].crs, copy=False)
    result.attrs = dict(frame.attrs)
    return result


def _geo_columns(frame: pd.DataFrame, fields: FieldsLike) -> dict[str, str]:
    """Geo columns of the frame, mapped to their ODS type, in schema (or column) order."""
    specs = as_fields(fields)
    found: dict[str, str] = {}
    if specs is not None:
        for spec in [*specs, *TECHNICAL_FIELDS.values()]:
            if spec.type in GEO_TYPES and spec.name in frame.columns:
                found.setdefault(spec.name, spec.type)
        return found
    for name in frame.columns:
        dtype = frame[name].dtype
        if getattr(dtype, "name", "") == "geometry":
            found[str(name)] = "geo_shape"
        elif dtype == np.dtype(object):
            values = frame[name].dropna().to_numpy(dtype=object)[:100]
            if len(values) and _all_geometries(values):
                found[str(name)] = "geo_shape"
    return found


def _all_geometries(values: np.ndarray) -> bool:
    """Whether every value is a shapely geometry or None."""
    shapely = sys.modules.get("shapely")
    if shapely is None:
        return all(v is None for v in values)
    return bool(shapely.is_valid_input(values).all())


def label_columns(frame: pd.DataFrame, fields: FieldsLike) -> pd.DataFrame:
    """Rename the schema columns of a frame to their labels (the active geometry too)."""
    specs = as_fields(fields) or []
    mapping = {s.name: s.label for s in specs if s.name in frame.columns and s.label != s.name}
    if not mapping:
        return frame
    if _is_geodataframe(frame):
        active = getattr(frame, "active_geometry_name", None)
        others = {k: v for k, v in mapping.items() if k != active}
        renamed: Any = frame.rename(columns=others)
        if active in mapping:
            renamed = renamed.rename_geometry(mapping[active])
        return cast(pd.DataFrame, renamed)
    return frame.rename(columns=mapping)


def _is_geodataframe(frame: Any) -> bool:
    geopandas = sys.modules.get("geopandas")
    return geopandas is not None and isinstance(frame, geopandas.GeoDataFrame)


def _check_geometry_argument(geometry: Any) -> None:
    if geometry is None or isinstance(geometry, bool) or (isinstance(geometry, str) and geometry):
        return
    raise InvalidQueryArgument(
        f"geometry must be 'auto', None, True/False or a geo field name, got {geometry!r}"
    )


# --- casting ---------------------------------------------------------------------------------


def cast_values(
    values: Any,
    spec: FieldSpec,
    *,
    timezone: str | None = None,
    file_base_url: str | None = None,
    list_separator: str | None = None,
    from_text: bool = False,
) -> pd.Series:
    """One column of raw values as the field's pandas dtype (see ``pandas_dtype``).

    Parameters
    ----------
    values
        A list, NumPy array, Series, or pyarrow (Chunked)Array of raw values.
    spec
        The field.
    timezone
        Timezone of datetime values (default UTC).
    file_base_url
        Base URL for file ids (``<base>/<id>``).
    list_separator
        Separator of multivalued text written as text (CSV ``list_separator``); defaults to the
        field's own separator.
    from_text
        The values are their text serialisation (CSV cells, parquet strings): JSON blobs are
        parsed and multivalued text is split.

    Returns
    -------
    Series
        Named after the field, with a RangeIndex; unreadable values are NA (warned).
    """
    tz = check_timezone(timezone)
    if _is_arrow(values):
        series = _cast_arrow(values, spec, tz, from_text, list_separator, file_base_url)
        if series is not None:
            return series.rename(spec.name)
        values = _arrow_to_objects(values)
    array = _object_array(values)
    result = _cast_objects(array, spec, tz, from_text, list_separator, file_base_url)
    return result.rename(spec.name)


def _cast_objects(
    array: np.ndarray,
    spec: FieldSpec,
    timezone: str,
    from_text: bool,
    list_separator: str | None,
    file_base_url: str | None,
) -> pd.Series:
    kind, name = spec.type, spec.name
    if kind == "int":
        return _cast_int(array, name)
    if kind == "double":
        return _cast_double(array, name)
    if kind == "boolean":
        return _cast_boolean(array, name)
    if kind == "text":
        if spec.multivalued:
            separator = (list_separator if from_text else None) or spec.multivalued_separator
            return _cast_multivalued(array, separator or ",")
        return _cast_text(array)
    if kind == "date":
        return _cast_date(array, name)
    if kind == "datetime":
        return _cast_datetime(array, name, timezone)
    if kind in GEO_TYPES:
        return pd.Series(parse_geometries(array, kind, name=name), dtype=object)
    if kind == "file":
        return _cast_file(array, file_base_url)
    if kind == "json_blob" and from_text:
        return _cast_json_text(array, name)
    return pd.Series(array, dtype=object)


def _cast_int(array: np.ndarray, name: str) -> pd.Series:
    try:
        return pd.Series(pd.array(array, dtype="Int64"))
    except (TypeError, ValueError, OverflowError):
        pass
    cleaned = _blank_to_none(array)
    numbers = pd.to_numeric(pd.Series(cleaned, dtype=object), errors="coerce")
    if pd.api.types.is_integer_dtype(numbers.dtype):
        return numbers.astype("Int64")
    floats = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(floats) & (np.floor(floats) == floats) & (np.abs(floats) < 2.0**63)
    present = ~pd.isna(cleaned)
    _warn_bad(name, "int", cleaned, present & ~ok)
    return pd.Series(pd.array(np.where(ok, floats, np.nan), dtype="Float64").astype("Int64"))


def _cast_double(array: np.ndarray, name: str) -> pd.Series:
    try:
        return pd.Series(pd.array(array, dtype="Float64"))
    except (TypeError, ValueError, OverflowError):
        pass
    cleaned = _blank_to_none(array)
    numbers = pd.to_numeric(pd.Series(cleaned, dtype=object), errors="coerce")
    _warn_bad(name, "double", cleaned, ~pd.isna(cleaned) & pd.isna(numbers).to_numpy())
    return numbers.astype("Float64")


def _cast_boolean(array: np.ndarray, name: str) -> pd.Series:
    try:
        return pd.Series(pd.array(array, dtype="boolean"))
    except (TypeError, ValueError):
        pass
    result: list[bool | None] = []
    bad = []
    for value in array:
        parsed = _one_boolean(value)
        if parsed is None and not _is_blank(value):
            bad.append(value)
        result.append(parsed)
    warn_cast_failures(name, "boolean", bad)
    return pd.Series(pd.array(result, dtype="boolean"))


def _one_boolean(value: Any) -> bool | None:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in _TRUE_TEXT:
            return True
        if text in _FALSE_TEXT:
            return False
    return None


def _cast_text(array: np.ndarray) -> pd.Series:
    if any(isinstance(v, Mapping | list | tuple) for v in array):
        array = np.array(
            [
                json.dumps(v, ensure_ascii=False) if isinstance(v, Mapping | list | tuple) else v
                for v in array
            ],
            dtype=object,
        )
    return pd.Series(pd.array(array, dtype=pd.StringDtype()))


def _cast_multivalued(array: np.ndarray, separator: str) -> pd.Series:
    result = np.full(len(array), None, dtype=object)
    for i, value in enumerate(array):
        if value is None:
            continue
        if isinstance(value, list | tuple | np.ndarray):
            result[i] = [
                item if isinstance(item, str) or item is None else str(item) for item in value
            ]
        elif isinstance(value, str):
            result[i] = value.split(separator) if value else []
        else:
            result[i] = [str(value)]
    return string_lists_series(result)


def string_lists_series(values: Any) -> pd.Series:
    """A ``list<string>[pyarrow]`` series from Python lists (None for nulls) or arrow lists.

    Multivalued text is held by arrow (one buffer of offsets, one of characters), not as
    a million Python lists: a third of the memory, no conversion, and cells still read as
    lists (``series.iloc[i]``, ``tolist()``, ``explode()``, the ``.list`` accessor).
    """
    import pyarrow as pa

    kind = pa.list_(pa.string())
    if isinstance(values, pa.Array | pa.ChunkedArray):
        arrow = values.cast(kind)  # also decodes dictionary items, narrows large lists
    else:
        arrow = pa.array(values, type=kind)
    if isinstance(arrow, pa.ChunkedArray) and arrow.num_chunks > 1:
        arrow = arrow.combine_chunks()
    return pd.Series(pd.arrays.ArrowExtensionArray(arrow))


def _cast_date(array: np.ndarray, name: str) -> pd.Series:
    texts = np.array([_date_text(v) for v in array], dtype=object)
    try:
        days = np.array(texts, dtype="datetime64[D]")
    except (ValueError, TypeError, OverflowError):
        days = np.full(len(texts), np.datetime64("NaT"), dtype="datetime64[D]")
        bad = []
        for i, text in enumerate(texts):
            if text is None:
                continue
            try:
                days[i] = np.datetime64(text, "D")
            except (ValueError, TypeError, OverflowError):
                bad.append(array[i])
        warn_cast_failures(name, "date", bad)
    return pd.Series(days.astype(f"datetime64[{TIME_UNIT}]"))


def _date_text(value: Any) -> str | None:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` for a date value (partial dates -> first day)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if len(text) > 10 and text[10] in "T ":
            text = text[:10]  # a datetime written for a date field: keep its calendar day
        return text if _PARTIAL_DATE.match(text) else f"invalid:{text}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())[:10]
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return _date_text(str(value))
    return f"invalid:{value!r}"


def _cast_datetime(array: np.ndarray, name: str, timezone: str) -> pd.Series:
    numeric = np.fromiter(
        (isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in array),
        bool,
        len(array),
    )
    texts = _blank_to_none(array).copy()
    texts[numeric] = None
    result = pd.to_datetime(
        pd.Series(texts, dtype=object), format="ISO8601", utc=True, errors="coerce"
    )
    result = result.dt.as_unit(TIME_UNIT)
    if numeric.any():
        epochs = np.full(len(array), np.nan)
        epochs[numeric] = array[numeric].astype(np.float64)
        unit: Literal["ms", "s"] = "ms" if np.nanmax(np.abs(epochs)) > _EPOCH_MS_THRESHOLD else "s"
        stamps = pd.to_datetime(pd.Series(epochs), unit=unit, utc=True, errors="coerce")
        result = result.where(~numeric, stamps.dt.as_unit(TIME_UNIT))
    _warn_bad(name, "datetime", array, ~pd.isna(texts) & result.isna().to_numpy())
    return result.dt.tz_convert(timezone)


def _cast_file(array: np.ndarray, file_base_url: str | None) -> pd.Series:
    base = file_base_url.rstrip("/") if file_base_url else None
    urls: list[str | None] = []
    for value in array:
        if isinstance(value, Mapping):
            url = value.get("url")
            file_id = value.get("id")
            if url:
                urls.append(str(url))
            elif file_id and base:
                urls.append(f"{base}/{file_id}")
            else:
                urls.append(str(file_id) if file_id else None)
        else:
            urls.append(None if value is None else str(value))
    return pd.Series(pd.array(urls, dtype=pd.StringDtype()))


def _cast_json_text(array: np.ndarray, name: str) -> pd.Series:
    result = np.full(len(array), None, dtype=object)
    bad = []
    for i, value in enumerate(array):
        if isinstance(value, str):
            try:
                result[i] = json.loads(value)
            except ValueError:
                bad.append(value)
        else:
            result[i] = value
    warn_cast_failures(name, "json_blob", bad)
    return pd.Series(result, dtype=object)


def _warn_bad(name: str, type_name: str, values: np.ndarray, bad_mask: Any) -> None:
    bad_mask = np.asarray(bad_mask, dtype=bool)
    if bad_mask.any():
        warn_cast_failures(name, type_name, values[bad_mask].tolist())


def _blank_to_none(array: np.ndarray) -> np.ndarray:
    blank = np.fromiter((isinstance(v, str) and not v.strip() for v in array), bool, len(array))
    if not blank.any():
        return array
    cleaned = array.copy()
    cleaned[blank] = None
    return cleaned


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- pyarrow fast paths ----------------------------------------------------------------------


def _is_arrow(values: Any) -> bool:
    pyarrow = sys.modules.get("pyarrow")
    return pyarrow is not None and isinstance(values, pyarrow.Array | pyarrow.ChunkedArray)


def _arrow_to_objects(values: Any) -> np.ndarray:
    import pyarrow as pa

    kind = values.type
    if pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
        items = values.to_pylist()
        return np.fromiter(items, dtype=object, count=len(items))
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)


def _cast_arrow(
    values: Any,
    spec: FieldSpec,
    timezone: str,
    from_text: bool,
    list_separator: str | None,
    file_base_url: str | None,
) -> pd.Series | None:
    """Column-at-once casts from pyarrow types; None when the object path must do it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = values.type
    if pa.types.is_dictionary(kind):
        values = values.cast(kind.value_type)
        kind = values.type
    ods_type = spec.type
    if pa.types.is_null(kind):
        return empty_column(spec, len(values), timezone=timezone)
    if ods_type in GEO_TYPES:
        return pd.Series(parse_geometries(values, ods_type, name=spec.name), dtype=object)
    if ods_type == "text" and spec.multivalued:
        return string_lists_series(values) if _is_string_list_type(kind) else None
    if ods_type == "text":
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            if pa.types.is_nested(kind) or pa.types.is_binary(kind):
                return None
            values = values.cast(pa.string())
        return _arrow_series(values, pd.StringDtype())
    if ods_type == "int":
        if pa.types.is_integer(kind):
            return _arrow_series(values.cast(pa.int64()), pd.Int64Dtype())
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            try:
                return _arrow_series(pc.cast(values, pa.int64()), pd.Int64Dtype())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        return None
    if ods_type == "double":
        if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
            return _arrow_series(values.cast(pa.float64()), pd.Float64Dtype())
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            try:
                return _arrow_series(pc.cast(values, pa.float64()), pd.Float64Dtype())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return None
        return None
    if ods_type == "boolean" and pa.types.is_boolean(kind):
        return _arrow_series(values, pd.BooleanDtype())
    if ods_type == "date" and (pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
        return _arrow_dates(values, timezone)
    if ods_type == "datetime" and (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
        return _arrow_datetimes(values, timezone)
    if ods_type == "file" and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        return _arrow_series(values, pd.StringDtype())
    return None


def _is_string_list_type(kind: Any) -> bool:
    """Whether an arrow type is a list of (possibly dictionary-encoded) strings."""
    import pyarrow as pa

    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return False
    item = kind.value_type
    if pa.types.is_dictionary(item):
        item = item.value_type
    return bool(pa.types.is_string(item) or pa.types.is_large_string(item))


def _arrow_series(values: Any, dtype: Any) -> pd.Series:
    import pyarrow as pa

    mapping = {values.type: dtype}
    if isinstance(values, pa.ChunkedArray) and values.num_chunks == 0:
        return pd.Series(pd.array([], dtype=dtype))
    series = values.to_pandas(types_mapper=mapping.get)
    return pd.Series(series).reset_index(drop=True)


def _arrow_dates(values: Any, timezone: str) -> pd.Series:
    import pyarrow as pa

    if pa.types.is_date(values.type):
        days = values.cast(pa.date32()).to_numpy(zero_copy_only=False)
        return pd.Series(np.asarray(days, dtype="datetime64[D]").astype(f"datetime64[{TIME_UNIT}]"))
    stamps = _arrow_datetimes(values, timezone)
    return stamps.dt.tz_localize(None).dt.normalize()


def _arrow_datetimes(values: Any, timezone: str) -> pd.Series:
    import pyarrow as pa

    if pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("s"))
    stamps = pd.Series(values.to_pandas()).reset_index(drop=True)
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")  # naive instants are UTC (ods-api.md 8.2)
    return stamps.dt.as_unit(TIME_UNIT).dt.tz_convert(timezone)

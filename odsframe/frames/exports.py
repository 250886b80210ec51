"""Dataset exports (CSV, GeoJSON, JSON, JSON Lines, Parquet) into typed frames.

Every reader takes the export's bytes, a path or a binary file object, plus the dataset schema
(or None to infer one), and returns what :func:`~odsframe.frames.records.frame_from_records`
returns: a typed DataFrame, or a GeoDataFrame when a geo field is present and geopandas is
installed. See ods-api.md section 6.3 for the encodings of each format.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any, cast

import pandas as pd

from odsframe.errors import InvalidQueryArgument, ServerError
from odsframe.frames.records import (
    cast_values,
    finish_frame,
    frame_from_records,
    payload_generation,
    records_from_payload,
    reindex_on_schema,
)
from odsframe.frames.schema import (
    TECHNICAL_FIELDS,
    FieldsLike,
    FieldSpec,
    as_fields,
    check_timezone,
    infer_field,
    normalize_header,
)

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]

#: How much of a CSV is read to find its header (grown when the header is longer).
_HEAD_BYTES = 1 << 16
#: pyarrow CSV block size; one row (a large polygon) must fit in a block.
_CSV_BLOCK_BYTES = 1 << 24
_CSV_MAX_BLOCK_BYTES = 1 << 30
_INFER_ROWS = 1000


def frame_from_export(
    source: Source, export_format: str, fields: FieldsLike = None, **options: Any
) -> pd.DataFrame:
    """Read an export of any supported format (``csv``, ``geojson``, ``json``, ``jsonl``,
    ``parquet``); ``options`` go to the format's reader."""
    readers: dict[str, Callable[..., pd.DataFrame]] = {
        "csv": frame_from_csv,
        "geojson": frame_from_geojson,
        "json": frame_from_json_export,
        "jsonl": frame_from_jsonl,
        "parquet": frame_from_parquet,
    }
    reader = readers.get(export_format.lower() if isinstance(export_format, str) else "")
    if reader is None:
        raise InvalidQueryArgument(
            f"cannot read exports in format {export_format!r}; use one of {sorted(readers)}"
        )
    return reader(source, fields, **options)


# --- CSV -------------------------------------------------------------------------------------


def frame_from_csv(
    source: Source,
    fields: FieldsLike = None,
    *,
    delimiter: str | None = None,
    labels: bool | None = None,
    list_separator: str = ",",
    timezone: str | None = None,
    geometry: str | bool | None = "auto",
    file_base_url: str | None = None,
    all_fields: bool = False,
) -> pd.DataFrame:
    """A typed frame from a CSV export (v2.1 ``exports/csv``, v1 or legacy download).

    Parameters
    ----------
    source
        The export's bytes, a path, or a binary file object. A UTF-8 BOM is skipped.
    fields
        The schema; header cells are mapped back to field names (label -> name, with the name
        as fallback). None infers the types from the text.
    delimiter
        The cell separator; None uses ``;`` (the ODS default) unless the header line has no
        ``;`` but has ``,`` or a tab.
    labels
        Whether the header holds labels (``use_labels=true``) or names; None decides by which
        of the two matches more header cells.
    list_separator
        The separator joining multivalued text values (the export's ``list_separator``).
    timezone, geometry, file_base_url, all_fields
        As for :func:`~odsframe.frames.records.frame_from_records`.

    Returns
    -------
    DataFrame or GeoDataFrame
        Columns named by field names; empty cells are missing values.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    tz = check_timezone(timezone)
    specs = as_fields(fields)
    head, reader_source = _csv_head(source)
    text = head.decode("utf-8-sig", errors="replace")
    if not text.strip():
        empty = pd.DataFrame()
        return _finish(empty, specs, [], tz, geometry, all_fields=True)
    separator = delimiter or _sniff_delimiter(text)
    if len(separator) != 1:
        raise InvalidQueryArgument(f"delimiter must be one character, got {separator!r}")
    header = next(csv.reader(io.StringIO(text), delimiter=separator))
    names = map_header(header, specs or [], labels=labels)
    parse_options = pacsv.ParseOptions(delimiter=separator, newlines_in_values=True)
    convert_options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),  # typed below, by the schema
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    block = _CSV_BLOCK_BYTES
    while True:
        read_options = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block)
        try:
            table = pacsv.read_csv(
                _rewound(reader_source),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            break
        except pa.ArrowInvalid as exc:
            if "straddling" in str(exc) and block < _CSV_MAX_BLOCK_BYTES:
                block *= 4  # one row (a large polygon) is larger than a block
                continue
            raise ServerError(f"could not read the CSV export: {exc}") from exc
    schema = {spec.name: spec for spec in specs or []}
    columns: dict[str, pd.Series] = {}
    used: list[FieldSpec] = []
    for name in names:
        values = table.column(name)
        spec = schema.get(name) or TECHNICAL_FIELDS.get(name) or _infer_text_field(name, values)
        columns[name] = cast_values(
            values,
            spec,
            timezone=tz,
            file_base_url=file_base_url,
            list_separator=list_separator,
            from_text=True,
        )
        used.append(spec)
    frame = pd.DataFrame(columns, copy=False) if columns else pd.DataFrame(index=pd.RangeIndex(0))
    return _finish(frame, specs, used, tz, geometry, all_fields=all_fields)


def map_header(
    header: Sequence[str], fields: Sequence[FieldSpec], *, labels: bool | None = None
) -> list[str]:
    """Field names for the header cells of a CSV (or XLSX) export.

    Each cell is matched to a field by label or by name (exactly first, then ignoring case,
    spacing and typographic apostrophes); ``labels`` says which to try first (None: whichever
    matches more cells). Unmatched cells keep their text; duplicates get a ``_2``, ``_3`` suffix.
    """
    cells = [cell.lstrip("\ufeff").strip() for cell in header]
    by_name = {spec.name: spec.name for spec in fields}
    by_label = {spec.label: spec.name for spec in fields}
    loose_name = {normalize_header(spec.name): spec.name for spec in fields}
    loose_label = {normalize_header(spec.label): spec.name for spec in fields}
    if labels is None:
        label_hits = sum(cell in by_label for cell in cells)
        name_hits = sum(cell in by_name for cell in cells)
        labels = label_hits > name_hits
    lookups = (by_label, by_name) if labels else (by_name, by_label)
    loose = (loose_label, loose_name) if labels else (loose_name, loose_label)
    names: list[str] = []
    used: set[str] = set()
    for position, cell in enumerate(cells):
        key = normalize_header(cell)
        name = (
            lookups[0].get(cell)
            or lookups[1].get(cell)
            or loose[0].get(key)
            or loose[1].get(key)
            or cell
            or f"column_{position + 1}"
        )
        unique, suffix = name, 2
        while unique in used:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        used.add(unique)
        names.append(unique)
    return names


def _sniff_delimiter(text: str) -> str:
    first_line = text.split("\n", 1)[0]
    if ";" in first_line:
        return ";"
    for candidate in (",", "\t"):
        if candidate in first_line:
            return candidate
    return ";"


def _csv_head(source: Source) -> tuple[bytes, Any]:
    """The first bytes of a CSV (at least its first line) and a source pyarrow can read."""
    import pyarrow as pa

    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        try:
            with open(path, "rb") as handle:
                head = handle.read(_HEAD_BYTES)
                while b"\n" not in head:
                    more = handle.read(_HEAD_BYTES)
                    if not more:
                        break
                    head += more
        except OSError as exc:
            raise InvalidQueryArgument(f"cannot read CSV file {path!r}: {exc}") from exc
        return head, path
    data = _read_bytes(source, "CSV export")
    size = _HEAD_BYTES
    while size < len(data) and b"\n" not in data[:size]:
        size *= 4
    return data[:size], pa.BufferReader(data)


def _rewound(reader_source: Any) -> Any:
    if hasattr(reader_source, "seek"):
        reader_source.seek(0)
    return reader_source


def _infer_text_field(name: str, values: Any) -> FieldSpec:
    sample = values.drop_null().slice(0, _INFER_ROWS).to_pylist()
    return infer_field(name, sample, from_text=True)


# --- JSON family -----------------------------------------------------------------------------


def frame_from_geojson(
    source: Source | Mapping[str, Any],
    fields: FieldsLike = None,
    *,
    timezone: str | None = None,
    geometry: str | bool | None = "auto",
    labels: bool = False,
    file_base_url: str | None = None,
    all_fields: bool = False,
) -> pd.DataFrame:
    """A typed frame from a GeoJSON export (a FeatureCollection, v1 or v2.x).

    The feature geometry fills the schema's geo field that the properties leave out (the
    geo_shape first, else the geo_point_2d); without a schema, or when every geo field is in the
    properties and none is missing, it becomes a ``geometry`` column only if no property holds
    a geometry already. v2.1 datetimes are ISO text; v2.0 epoch numbers are read too.
    """
    payload = _load_json(source, "GeoJSON export")
    if isinstance(payload, Mapping) and payload.get("type") == "Feature":
        features: Any = [payload]
    elif isinstance(payload, Mapping) and payload.get("type") == "FeatureCollection":
        features = payload.get("features")
    else:
        raise ServerError(_describe("a GeoJSON FeatureCollection", payload))
    if not isinstance(features, list):
        raise ServerError("the GeoJSON FeatureCollection has no 'features' list")
    specs = as_fields(fields)
    records: list[dict[str, Any]] = []
    geometries: list[Any] = []
    for position, feature in enumerate(features):
        if not isinstance(feature, Mapping):
            raise ServerError(f"GeoJSON feature #{position} is not a JSON object")
        properties = feature.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise ServerError(f"GeoJSON feature #{position} has non-object 'properties'")
        records.append(dict(properties))
        geometries.append(feature.get("geometry"))
    target = _geometry_target(records, specs)
    schema = specs
    if target is not None:
        for record, feature_geometry in zip(records, geometries):
            record[target] = feature_geometry
        if specs is not None and target not in {spec.name for spec in specs}:
            schema = [*specs, FieldSpec(target, "geo_shape")]
    return frame_from_records(
        records,
        schema,
        timezone=timezone,
        geometry=geometry,
        labels=labels,
        file_base_url=file_base_url,
        all_fields=all_fields,
    )


def _geometry_target(records: list[dict[str, Any]], specs: list[FieldSpec] | None) -> str | None:
    """The column that receives the feature geometries (None: they duplicate a property)."""
    keys: set[str] = set()
    for record in records:
        keys.update(record)
    if specs is not None:
        geo = [spec for spec in specs if spec.is_geo]
        for kind in ("geo_shape", "geo_point_2d"):
            for spec in geo:
                if spec.type == kind and spec.name not in keys:
                    return spec.name
        if geo:
            return None
    return "geometry" if "geometry" not in keys else "_geometry"


def frame_from_json_export(
    source: Source | list[Any] | Mapping[str, Any],
    fields: FieldsLike = None,
    *,
    timezone: str | None = None,
    geometry: str | bool | None = "auto",
    labels: bool = False,
    file_base_url: str | None = None,
    all_fields: bool | None = None,
    technical: bool = False,
) -> pd.DataFrame:
    """A typed frame from a JSON export (a bare list) or any records answer.

    v2.x exports are lists of flat records; v1 exports are lists of
    ``{datasetid, recordid, fields, geometry, record_timestamp}``. Records answers of v1, v2.0
    and v2.1 are accepted too. ``all_fields=None`` reindexes on the schema for v1 payloads,
    which leave null fields out; ``technical=True`` keeps record ids and timestamps.
    """
    payload = _load_json(source, "JSON export")
    generation = payload_generation(payload)
    records = records_from_payload(payload, technical=technical)
    if all_fields is None:
        all_fields = generation == "v1"
    return frame_from_records(
        records,
        fields,
        timezone=timezone,
        geometry=geometry,
        labels=labels,
        file_base_url=file_base_url,
        all_fields=all_fields,
    )


def frame_from_jsonl(
    source: Source,
    fields: FieldsLike = None,
    *,
    timezone: str | None = None,
    geometry: str | bool | None = "auto",
    labels: bool = False,
    file_base_url: str | None = None,
    all_fields: bool = False,
) -> pd.DataFrame:
    """A typed frame from a JSON Lines export (one flat record per line)."""
    data = _read_bytes(source, "JSON Lines export")
    records = []
    for number, line in enumerate(data.decode("utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ServerError(f"line {number} of the JSON Lines export is not JSON: {exc}") from exc
        if not isinstance(record, Mapping):
            raise ServerError(f"line {number} of the JSON Lines export is not a JSON object")
        records.append(record)
    return frame_from_records(
        records,
        fields,
        timezone=timezone,
        geometry=geometry,
        labels=labels,
        file_base_url=file_base_url,
        all_fields=all_fields,
    )


def _load_json(source: Any, what: str) -> Any:
    if isinstance(source, Mapping | list):
        return source
    data = _read_bytes(source, what)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except ValueError as exc:
        raise ServerError(f"the {what} is not valid JSON: {exc}") from exc


def _read_bytes(source: Any, what: str) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        try:
            with open(os.fspath(source), "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise InvalidQueryArgument(f"cannot read the {what} file {source!r}: {exc}") from exc
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            return data.encode("utf-8")
        return bytes(data)
    raise InvalidQueryArgument(
        f"a {what} must be bytes, a path or a binary file, got {type(source).__name__}"
    )


def _describe(what: str, payload: Any) -> str:
    if isinstance(payload, Mapping):
        return f"expected {what}, got an object with keys {sorted(map(str, payload))[:10]}"
    return f"expected {what}, got {type(payload).__name__}"


# --- Parquet ---------------------------------------------------------------------------------


def frame_from_parquet(
    source: Source | Sequence[Source],
    fields: FieldsLike = None,
    *,
    columns: Sequence[str] | None = None,
    timezone: str | None = None,
    geometry: str | bool | None = "auto",
    labels: bool = False,
    file_base_url: str | None = None,
    all_fields: bool = False,
) -> pd.DataFrame:
    """A typed frame from a Parquet export (GeoParquet included), or from several.

    Geometry columns may be WKB (listed in the GeoParquet ``geo`` metadata) or GeoJSON text;
    geo_point_2d may also be a ``{lon, lat}`` (or ``{x, y}``) struct or ``"lat, lon"`` text. Typed
    columns are converted column-at-once (no per-row Python for numbers, text, timestamps, WKB
    and point structs).

    The file is read one column at a time, and each column is converted and its Arrow
    memory released before the next is read: the peak memory is the finished frame plus
    one column, not the frame plus the whole Arrow table.

    Parameters
    ----------
    source
        The export's bytes, a path or a binary file object; or a list of these (the parts of
        one download, with the same columns), read as one frame in order.
    fields
        The schema (None: types from the Arrow types).
    columns
        Only these columns, in this order.
    timezone, geometry, labels, file_base_url, all_fields
        As for :func:`~odsframe.frames.records.frame_from_records`.
    """
    import pyarrow as pa

    tz = check_timezone(timezone)
    specs = as_fields(fields)
    sources: list[Source] = (
        list(source) if isinstance(source, list | tuple) else [cast(Source, source)]
    )
    if not sources:
        raise InvalidQueryArgument("frame_from_parquet: no Parquet source given")
    schema = {spec.name: spec for spec in specs or []}
    data: dict[str, pd.Series] = {}
    used: list[FieldSpec] = []
    pool = pa.default_memory_pool()
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(_open_parquet(item)) for item in sources]
        names = _parquet_column_names(files[0], columns)
        geo_columns = _geoparquet_columns(files[0].schema_arrow.metadata or {})
        rows = sum(file.metadata.num_rows for file in files)
        for name in _conversion_order(names, schema, files[0].schema_arrow, geo_columns):
            parts = [_read_parquet_column(file, name) for file in files]
            pool.release_unused()  # what decoding used beyond the column itself
            typed = [part.type for part in parts if not pa.types.is_null(part.type)]
            kind = typed[0] if typed else pa.null()
            spec = (
                schema.get(name)
                or TECHNICAL_FIELDS.get(name)
                or _field_from_arrow(name, kind, geo_columns.get(name))
            )
            options: dict[str, Any] = {
                "timezone": tz,
                "file_base_url": file_base_url,
                "from_text": True,
            }
            if all(other == kind for other in typed):
                # One chunked column (all-null parts take the type of the others).
                chunks = [chunk for part in parts for chunk in part.cast(kind).chunks]
                del parts
                data[name] = cast_values(pa.chunked_array(chunks, type=kind), spec, **options)
                del chunks
            else:
                converted = [cast_values(part, spec, **options) for part in parts]
                del parts
                data[name] = pd.concat(converted, ignore_index=True).rename(name)
                del converted
            used.append(spec)
            pool.release_unused()  # the column's Arrow buffers go back to the system
    # Back to the file's column order.
    position = {name: index for index, name in enumerate(names)}
    data = {name: data[name] for name in names}
    used.sort(key=lambda spec: position[spec.name])
    frame = pd.DataFrame(data, copy=False) if data else pd.DataFrame(index=pd.RangeIndex(rows))
    return _finish(frame, specs, used, tz, geometry, labels=labels, all_fields=all_fields)


def _conversion_order(
    names: list[str],
    schema: Mapping[str, FieldSpec],
    arrow_schema: Any,
    geo_columns: Mapping[str, Any],
) -> list[str]:
    """Columns in the order to convert them: the ones needing most scratch memory first.

    Geometries (WKB, then millions of shapely objects), lists and text use several times
    their own size while they are decoded and converted, numbers little more than their
    size. The peak of a read is the frame built so far plus the scratch memory of the
    column at hand: converting the greedy columns first takes their scratch memory while
    little else is held.
    """
    import pyarrow as pa

    def weight(name: str) -> int:
        spec = schema.get(name)
        if (spec is not None and spec.is_geo) or name in geo_columns:
            return 0
        kind = arrow_schema.field(name).type if name in arrow_schema.names else pa.null()
        if pa.types.is_nested(kind) or (spec is not None and spec.multivalued):
            return 1
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return 1
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return 2
        return 3

    return sorted(names, key=weight)


@contextlib.contextmanager
def _open_parquet(source: Source) -> Iterator[Any]:
    """A ``pyarrow.parquet.ParquetFile`` that reads only what is asked, column by column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, bytes | bytearray | memoryview):
        source = pa.BufferReader(pa.py_buffer(source))
    elif isinstance(source, str | os.PathLike):
        source = os.fspath(source)
    try:
        # No pre-buffering: it would read ahead (and hold) more than the one column read.
        parquet_file = pq.ParquetFile(source, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ServerError(f"could not read the Parquet export: {exc}") from exc
    try:
        yield parquet_file
    finally:
        parquet_file.close()


def _parquet_column_names(parquet_file: Any, columns: Sequence[str] | None) -> list[str]:
    names = [
        name for name in parquet_file.schema_arrow.names if not name.startswith("__index_level_")
    ]
    if columns is None:
        return names
    wanted = [columns] if isinstance(columns, str) else list(columns)
    missing = [name for name in wanted if name not in names]
    if missing:
        raise InvalidQueryArgument(
            f"columns: the Parquet export has no column {', '.join(map(repr, missing))} "
            f"(it has {', '.join(names)})"
        )
    return wanted


def _read_parquet_column(parquet_file: Any, name: str) -> Any:
    """One column of a Parquet file as a pyarrow ChunkedArray (one chunk per row group)."""
    import pyarrow as pa

    try:
        return parquet_file.read(columns=[name], use_threads=False).column(0)
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise ServerError(f"could not read column {name!r} of the Parquet export: {exc}") from exc


def _geoparquet_columns(metadata: Mapping[bytes, bytes]) -> dict[str, Mapping[str, Any]]:
    raw = metadata.get(b"geo")
    if not raw:
        return {}
    try:
        geo = json.loads(raw)
    except ValueError:
        return {}
    found = geo.get("columns") if isinstance(geo, Mapping) else None
    return {str(k): v for k, v in found.items() if isinstance(v, Mapping)} if found else {}


def _field_from_arrow(name: str, kind: Any, geo: Mapping[str, Any] | None) -> FieldSpec:
    """A field guessed from an Arrow column type (and its GeoParquet metadata, if any)."""
    import pyarrow as pa

    if geo is not None:  # GeoParquet: WKB, or a GeoArrow point struct
        return FieldSpec(name, "geo_point_2d" if pa.types.is_struct(kind) else "geo_shape")
    if pa.types.is_struct(kind):
        names = {kind.field(i).name for i in range(kind.num_fields)}
        if {"lon", "lat"} <= names:
            return FieldSpec(name, "geo_point_2d")
        return FieldSpec(name, "json_blob")
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return FieldSpec(name, "boolean")
    if pa.types.is_integer(kind):
        return FieldSpec(name, "int")
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return FieldSpec(name, "double")
    if pa.types.is_date(kind):
        return FieldSpec(name, "date")
    if pa.types.is_timestamp(kind):
        return FieldSpec(name, "datetime")
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        if pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type):
            return FieldSpec(name, "text", annotations={"multivalued": [","]})
        return FieldSpec(name, "json_blob")
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return FieldSpec(name, "geo_shape")
    return FieldSpec(name, "text")


# --- shared ----------------------------------------------------------------------------------


def _finish(
    frame: pd.DataFrame,
    specs: list[FieldSpec] | None,
    used: list[FieldSpec],
    timezone: str,
    geometry: str | bool | None,
    *,
    labels: bool = False,
    all_fields: bool = False,
) -> pd.DataFrame:
    if specs is not None and (all_fields or not len(frame.columns)):
        frame = reindex_on_schema(frame, specs, timezone=timezone)
        names = {spec.name for spec in specs}
        used = [*specs, *(spec for spec in used if spec.name not in names)]
    return finish_frame(frame, used, geometry=geometry, labels=labels)

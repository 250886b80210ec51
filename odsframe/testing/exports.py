"""Export writers of the local portal: a query result -> a file, streamed batch by batch.

:func:`plan_export` turns the output columns of a compiled query into an :class:`ExportPlan`:
SQL expressions that DuckDB evaluates over the query result (the heavy formatting: numbers as
text, datetimes in the request timezone, JSON escaping, CSV quoting), and an encoder that
turns the Arrow record batches of that SQL into byte chunks. Nothing is formatted one value
at a time in Python except the rare column kinds listed below, so a million-row export runs
in seconds and the memory held is a few batches, whatever the size.

Formats (v2.1 ``/exports/{format}``, ods-api.md sections 4.1 and 6.3, fixtures README section 3):

``json``
    A bare list of flat records, written as real v2.1 exports are: records dumped with
    Python's default separators (``", "`` and ``": "``), ``\\uXXXX`` escapes for non-ASCII
    characters, and joined by ``","``. Values follow ``serialize.py``: geo_shape is a
    ``{"type": "Feature", "geometry": ..., "properties": {}}`` wrapper, geo_point_2d
    ``{"lon", "lat"}``, datetimes ISO 8601 in the request timezone.
``jsonl``
    The same records, one per line (``\\n`` after each).
``geojson``
    A compact ``FeatureCollection`` with ``\\uXXXX`` escapes. The feature geometry is the
    first geo_shape column, which then leaves the properties, else the first geo_point_2d
    column (a ``Point``, also kept in the properties as ``{"lon", "lat"}``, as in a real
    export); the properties hold the values as in ``json`` (ISO datetimes). ``epsg``
    reprojects the geometry.
``csv``
    ``delimiter`` (``;``), a UTF-8 BOM unless ``with_bom=false``, CRLF line ends, RFC 4180
    quoting (only cells holding the delimiter, a quote or a line break, or every text cell
    with ``quote_all``), empty cells for null, multivalued values joined by
    ``list_separator``, points as ``lat, lon``, shapes as their GeoJSON geometry (written
    with Python's separators, so quoted), file fields as their URL, labels as headers with
    ``use_labels`` (geo columns included).
``parquet``
    Typed columns: int64, double, bool, string, list<string> (multivalued), date32 (partial
    dates as their first day), ``timestamp[us, tz=<request timezone>]``. geo_shape and
    geo_point_2d columns are GeoParquet geometry columns (WKB, ``geo`` metadata version
    1.1.0 naming the CRS of ``epsg``; the primary column is the first shape, else the first
    point). file and json_blob are JSON text. Compression ``snappy`` or ``zstd``.
``xlsx``
    One sheet, a header row, numbers and booleans as such and everything else as the CSV
    cell text (xlsxwriter in ``constant_memory`` mode, then streamed from a temporary file).
``fgb``
    FlatGeobuf through pyogrio (when it is installed): the primary geometry as above, other
    geo columns as JSON text, lists joined by ``,``.

The legacy download (``/explore/dataset/<id>/download/``, ods-api.md 2.8) is the ``legacy``
flavour: v1 JSON records ``{datasetid, recordid, fields, geometry, record_timestamp}`` with
null fields left out, ``[lat, lon]`` points and bare geometries; v1 GeoJSON; CSV without
BOM with points as ``lat,lon`` in 12 significant digits (as in a real legacy download).

Columns formatted in Python, one batch at a time: file objects (their URL needs the portal's
address) and json_blob values in the JSON formats, and geometries reprojected with ``epsg``.
Geometry JSON is assumed to hold no string with white space, ``,`` or ``:`` (GeoJSON type
names only): it is re-spaced in SQL.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from odsframe.testing.model import OutputColumn
from odsframe.testing.serialize import SerializeContext, value_converter

#: Rows per Arrow batch asked from DuckDB.
BATCH_ROWS = 16_384
#: Rows per Parquet row group (several batches).
PARQUET_ROW_GROUP_ROWS = 65_536
#: Size of the chunks a file-backed export (xlsx, fgb) is streamed in.
FILE_CHUNK_BYTES = 1 << 20
#: gzip level of ``compressed=true`` exports.
GZIP_LEVEL = 6
#: Records an xlsx sheet can hold (1 048 576 rows minus the header).
XLSX_MAX_RECORDS = 1_048_575

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
GZIP_MEDIA_TYPE = "application/gzip"


@dataclass(frozen=True)
class ExportFormat:
    """An export format: its name in the URL, media type and file extension."""

    name: str
    media_type: str
    extension: str


EXPORT_FORMATS: dict[str, ExportFormat] = {
    fmt.name: fmt
    for fmt in (
        ExportFormat("csv", "text/csv; charset=utf-8", "csv"),
        ExportFormat("fgb", "application/octet-stream", "fgb"),
        ExportFormat("geojson", "application/geo+json; charset=utf-8", "geojson"),
        ExportFormat("json", "application/json; charset=utf-8", "json"),
        ExportFormat("jsonl", "application/jsonl; charset=utf-8", "jsonl"),
        ExportFormat("parquet", "application/vnd.apache.parquet", "parquet"),
        ExportFormat("xlsx", XLSX_MEDIA_TYPE, "xlsx"),
    )
}
#: Formats of the catalog export (``/catalog/exports/{format}``) this portal writes.
CATALOG_FORMATS: tuple[str, ...] = ("csv", "json")
CSV_DELIMITERS: tuple[str, ...] = (";", ",", "\t", "|")
PARQUET_COMPRESSIONS: tuple[str, ...] = ("snappy", "zstd")


def fgb_available() -> bool:
    """Whether FlatGeobuf can be written (it needs pyogrio)."""
    import importlib.util

    return importlib.util.find_spec("pyogrio") is not None


def dataset_formats() -> list[str]:
    """The dataset export formats this portal writes, in the order ``/exports`` lists them."""
    return [name for name in EXPORT_FORMATS if name != "fgb" or fgb_available()]


@dataclass(frozen=True)
class ExportOptions:
    """Everything an export's bytes depend on besides the rows.

    Parameters
    ----------
    timezone
        IANA name of the request timezone (already validated).
    base_url, dataset_id
        Where file URLs point.
    use_labels
        Field labels as column names (csv, xlsx, parquet, fgb).
    epsg
        EPSG code geometries are written in (geojson, parquet, fgb).
    delimiter, list_separator, quote_all, with_bom
        CSV parameters.
    parquet_compression
        ``snappy`` or ``zstd``.
    legacy
        The v1 download flavour (see the module docstring).
    record_id_key, record_timestamp_key
        Output keys of the record id and timestamp columns (legacy JSON records).
    """

    timezone: str = "UTC"
    base_url: str = ""
    dataset_id: str = ""
    use_labels: bool = False
    epsg: int = 4326
    delimiter: str = ";"
    list_separator: str = ","
    quote_all: bool = False
    with_bom: bool = True
    parquet_compression: str = "snappy"
    legacy: bool = False
    record_id_key: str | None = None
    record_timestamp_key: str | None = None

    @property
    def serialize_context(self) -> SerializeContext:
        return SerializeContext(ZoneInfo(self.timezone), self.base_url, self.dataset_id)


Batches = Iterable[pa.RecordBatch]
Encoder = Callable[[Batches], Iterator[bytes]]


@dataclass
class PreparedExport:
    """An export ready to run: formatting SQL over the records query, and its encoder.

    Run :meth:`sql` over the compiled query's SQL (same parameters), then feed its Arrow
    batches to ``encoder_for(<their schema>)``, which yields the file's bytes chunk by chunk.
    ``inner`` (when set) is a first projection the ``select`` expressions read from.
    """

    format: ExportFormat
    select: list[str]
    encoder_for: Callable[[pa.Schema], Encoder]
    inner: list[str] | None = None

    def sql(self, query_sql: str) -> str:
        """``SELECT <formatting> FROM (<query_sql>)``."""
        source = f'({query_sql}) AS "__query"'
        if self.inner:
            source = f'(SELECT {", ".join(self.inner)} FROM {source}) AS "__cells"'
        items = ", ".join(self.select) if self.select else "NULL AS __empty"
        return f"SELECT {items} FROM {source}"


def _fixed(
    export_format: ExportFormat,
    select: list[str],
    encoder: Encoder,
    inner: list[str] | None = None,
) -> PreparedExport:
    return PreparedExport(export_format, select, lambda schema: encoder, inner)


# -- SQL helpers ----------------------------------------------------------------------------


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _alias(index: int) -> str:
    return f'"__x{index}"'


def _iso_datetime_sql(src: str, timezone: str) -> str:
    """``src`` (TIMESTAMPTZ) as ``YYYY-MM-DDTHH:MM:SS[.ffffff]+HH:MM`` in ``timezone``."""
    if timezone == "UTC":
        local = f"CAST({src} AS TIMESTAMP)"
        offset = "'+00:00'"
    else:
        local = f"timezone({_lit(timezone)}, {src})"
        seconds = f"((epoch_us({local}) - epoch_us({src})) // 1000000)"
        magnitude = f"abs({seconds})"
        offset = (
            f"(CASE WHEN {seconds} < 0 THEN '-' ELSE '+' END"
            f" || lpad(CAST({magnitude} // 3600 AS VARCHAR), 2, '0') || ':'"
            f" || lpad(CAST(({magnitude} % 3600) // 60 AS VARCHAR), 2, '0')"
            f" || CASE WHEN {magnitude} % 60 <> 0"
            f" THEN ':' || lpad(CAST({magnitude} % 60 AS VARCHAR), 2, '0') ELSE '' END)"
        )
    micros = f"(microsecond({local}) % 1000000)"
    fraction = (
        f"CASE WHEN {micros} <> 0 THEN '.' || lpad(CAST({micros} AS VARCHAR), 6, '0') ELSE '' END"
    )
    return (
        f"CASE WHEN {src} IS NULL THEN NULL ELSE "
        f"strftime({local}, '%Y-%m-%dT%H:%M:%S') || {fraction} || {offset} END"
    )


_DATE_FORMATS = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d"}


def _date_sql(src: str, precision: str) -> str:
    return f"strftime({src}, '{_DATE_FORMATS.get(precision, '%Y-%m-%d')}')"


def _double_text_sql(src: str) -> str:
    """A double as its shortest round-trip text (DuckDB writes it as Python does); non-finite
    values are null."""
    return f"CASE WHEN isfinite({src}) THEN CAST({src} AS VARCHAR) ELSE NULL END"


def _number_text_sql(src: str) -> str:
    return (
        f"CASE WHEN {src} IS NULL OR NOT isfinite(CAST({src} AS DOUBLE)) THEN NULL "
        f"ELSE CAST({src} AS VARCHAR) END"
    )


def _geometry_sql(src: str, spaced: bool) -> str:
    """Stored GeoJSON geometry text, compact or with Python's separators."""
    compact = f"regexp_replace({src}, '\\s+', '', 'g')"
    if not spaced:
        return compact
    return f"regexp_replace({compact}, '([,:])', '\\1 ', 'g')"


def _lon(src: str) -> str:
    return f"struct_extract({src}, 'lon')"


def _lat(src: str) -> str:
    return f"struct_extract({src}, 'lat')"


def _point_valid_sql(src: str) -> str:
    return f"({src} IS NOT NULL AND {_lon(src)} IS NOT NULL AND {_lat(src)} IS NOT NULL)"


# -- JSON values ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonStyle:
    """How JSON text is written: separators, and v1 (legacy) value encodings."""

    item: str = ", "
    key: str = ": "
    v1: bool = False

    @property
    def spaced(self) -> bool:
        return self.item == ", "

    def dumps(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(self.item, self.key))


SPACED = JsonStyle()
COMPACT = JsonStyle(",", ":")
V1_SPACED = JsonStyle(v1=True)


def _json_value_sql(column: OutputColumn, src: str, style: JsonStyle, timezone: str) -> str | None:
    """SQL writing the JSON text of one value (SQL NULL for null), or None when the column
    is formatted in Python."""
    kind, sep, colon = column.type, style.item, style.key
    if kind == "text" and column.multivalued:
        if not style.spaced:
            return f"to_json({src})"
        items = f"list_transform({src}, lambda __v: COALESCE(to_json(__v), 'null'))"
        return f"CASE WHEN {src} IS NULL THEN NULL ELSE '[' || array_to_string({items}, ', ') || ']' END"
    if kind in ("text", "range"):
        return f"to_json(CAST({src} AS VARCHAR))"
    if kind in _BARE_KINDS:
        return _bare_text_sql(kind, src)
    if kind == "date":
        return f"'\"' || {_date_sql(src, column.date_precision)} || '\"'"
    if kind == "datetime":
        return f"'\"' || ({_iso_datetime_sql(src, timezone)}) || '\"'"
    if kind == "geo_point_2d":
        lon, lat = f"CAST({_lon(src)} AS VARCHAR)", f"CAST({_lat(src)} AS VARCHAR)"
        if style.v1:
            text = f"'[' || {lat} || '{sep}' || {lon} || ']'"
        else:
            text = f"'{{\"lon\"{colon}' || {lon} || '{sep}\"lat\"{colon}' || {lat} || '}}'"
        return f"CASE WHEN {_point_valid_sql(src)} THEN {text} ELSE NULL END"
    if kind == "geo_shape":
        geometry = _geometry_sql(src, style.spaced)
        if style.v1:
            return geometry
        return (
            f'\'{{"type"{colon}"Feature"{sep}"geometry"{colon}\' || {geometry}'
            f" || '{sep}\"properties\"{colon}{{}}}}'"
        )
    if kind == "cluster":
        text = (
            f'\'{{"cluster_centroid"{colon}{{"lat"{colon}\' || CAST({_lat(src)} AS VARCHAR)'
            f" || '{sep}\"lon\"{colon}' || CAST({_lon(src)} AS VARCHAR) || '}}}}'"
        )
        return f"CASE WHEN {_point_valid_sql(src)} THEN {text} ELSE NULL END"
    return None


#: Kinds whose JSON text and CSV cell are the same bare text (numbers and booleans; CSV
#: ``quote_all`` leaves them unquoted).
_BARE_KINDS = frozenset({"int", "double", "number", "boolean"})


def _bare_text_sql(kind: str, src: str) -> str:
    """SQL writing the text of a number or boolean (NULL for null): ``12``, ``true``."""
    if kind == "int":
        return f"CAST({src} AS VARCHAR)"
    if kind == "double":
        return _double_text_sql(src)
    if kind == "number":
        return _number_text_sql(src)
    return f"CASE WHEN {src} IS NULL THEN NULL WHEN {src} THEN 'true' ELSE 'false' END"


def v1_value(value: Any, column: OutputColumn) -> Any:
    """A v2.1 JSON value (from ``serialize``) in its v1 form (``[lat, lon]`` points, bare
    geometries)."""
    if value is None:
        return None
    if column.type == "geo_point_2d" and isinstance(value, dict):
        return [value.get("lat"), value.get("lon")]
    if column.type == "geo_shape" and isinstance(value, dict) and value.get("type") == "Feature":
        return value.get("geometry")
    return value


def _json_value_python(
    column: OutputColumn, style: JsonStyle, context: SerializeContext
) -> Callable[[pa.Array], pa.Array]:
    """Per-batch formatter of one column through ``serialize.value_converter``."""

    def text(value: Any) -> str | None:
        if style.v1:
            value = v1_value(value, column)
        return None if value is None else style.dumps(value)

    return _python_renderer(column, context, text)


def _python_renderer(
    column: OutputColumn, context: SerializeContext, text: Callable[[Any], str | None]
) -> Callable[[pa.Array], pa.Array]:
    """Per-batch formatter: each value through ``serialize.value_converter``, then ``text``."""
    convert = value_converter(column, context)

    def render(values: pa.Array) -> pa.Array:
        return pa.array([text(convert(raw)) for raw in values.to_pylist()], pa.string())

    return render


# -- batches of rendered fragments ----------------------------------------------------------


@dataclass
class _Part:
    """One column of the export SQL: rendered in SQL, or raw and rendered by ``render``."""

    sql: str
    render: Callable[[pa.Array], pa.Array] | None = None


def _parts_select(parts: Sequence[_Part]) -> list[str]:
    return [f"{part.sql} AS {_alias(i)}" for i, part in enumerate(parts)]


def _rendered(batch: pa.RecordBatch, parts: Sequence[_Part]) -> list[pa.Array]:
    """The string arrays of a batch, Python-rendered parts done."""
    arrays = []
    for index, part in enumerate(parts):
        array = batch.column(index)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if part.render is not None:
            array = part.render(array)
        if not pa.types.is_string(array.type):
            array = array.cast(pa.string())
        arrays.append(array)
    return arrays


def _concat(pieces: Sequence[str | pa.Array], length: int) -> pa.Array:
    """Element-wise concatenation of string arrays and literal strings (no nulls allowed)."""
    arrays = [p for p in pieces if not isinstance(p, str)]
    if not arrays:
        return pa.array(["".join(p for p in pieces if isinstance(p, str))] * length, pa.string())
    merged: list[str | pa.Array] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + piece
        elif not (isinstance(piece, str) and piece == ""):
            merged.append(piece)
    args = [pa.scalar(p, pa.string()) if isinstance(p, str) else p for p in merged]
    return pc.binary_join_element_wise(*args, "")


def _join_lines(lines: pa.Array, separator: str) -> str:
    """Every string of ``lines`` joined by ``separator`` (in Arrow)."""
    if len(lines) == 0:
        return ""
    offsets = pa.array([0, len(lines)], pa.int32())
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, lines), separator)
    return str(joined[0].as_py())


def _json_escape_errors(error: UnicodeError) -> tuple[str, int]:
    """``ensure_ascii`` escapes for the characters ASCII cannot encode."""
    assert isinstance(error, UnicodeEncodeError)
    escaped = []
    for char in error.object[error.start : error.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}")
        else:
            escaped.append(f"\\u{code:04x}")
    return "".join(escaped), error.end


codecs.register_error("odsframe-json-ascii", _json_escape_errors)


def ascii_json(text: str) -> bytes:
    """JSON text with non-ASCII characters as ``\\uXXXX`` escapes (``ensure_ascii``)."""
    if text.isascii():
        return text.encode("ascii")
    return text.encode("ascii", "odsframe-json-ascii")


def _text_encoder(
    parts: Sequence[_Part],
    line: Callable[[list[pa.Array], int], pa.Array],
    *,
    head: str,
    separator: str,
    terminator: str,
    tail: str,
    ascii_only: bool,
    bom: bool = False,
) -> Encoder:
    """Encoder of the text formats: ``head``, lines joined by ``separator`` (each followed by
    ``terminator``), ``tail``."""

    def encode_text(text: str) -> bytes:
        return ascii_json(text) if ascii_only else text.encode("utf-8")

    def encode(batches: Batches) -> Iterator[bytes]:
        first = True
        start = ("\ufeff" if bom else "") + head
        if start:
            yield start.encode("utf-8") if bom else encode_text(start)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            lines = line(_rendered(batch, parts), batch.num_rows)
            text = _join_lines(lines, separator + terminator) + terminator
            if not first and separator:
                text = separator + text
            first = False
            yield encode_text(text)
        if tail:
            yield encode_text(tail)

    return encode


# -- output columns as the export sees them -------------------------------------------------


def column_headers(columns: Sequence[OutputColumn], use_labels: bool) -> list[str]:
    """Column names of a file export: keys, or field labels with ``use_labels`` (a label used
    twice falls back to the key)."""
    headers: list[str] = []
    for column in columns:
        header = column.key
        if use_labels and column.field is not None and column.key == column.field.name:
            header = column.field.label or column.key
        if header in headers:
            header = column.key
        headers.append(header)
    return headers


def _src(column: OutputColumn) -> str:
    return _ident(column.sql_name)


def geometry_column(columns: Sequence[OutputColumn]) -> OutputColumn | None:
    """The column that becomes the feature geometry: the first shape, else the first point."""
    for kind in ("geo_shape", "geo_point_2d"):
        for column in columns:
            if column.type == kind:
                return column
    return None


# -- JSON, JSONL, GeoJSON -------------------------------------------------------------------


def _record_parts(
    columns: Sequence[OutputColumn], style: JsonStyle, options: ExportOptions
) -> list[_Part]:
    context = options.serialize_context
    parts = []
    for column in columns:
        text_sql = _json_value_sql(column, _src(column), style, options.timezone)
        if text_sql is None:
            parts.append(_Part(_src(column), _json_value_python(column, style, context)))
        else:
            parts.append(_Part(text_sql))
    return parts


def _object_pieces(
    keys: Sequence[str], arrays: Sequence[pa.Array], style: JsonStyle
) -> list[str | pa.Array]:
    """``{"k": v, ...}`` as pieces for :func:`_concat` (null values written as ``null``)."""
    pieces: list[str | pa.Array] = ["{"]
    for index, (key, array) in enumerate(zip(keys, arrays)):
        prefix = (style.item if index else "") + json.dumps(key, ensure_ascii=False) + style.key
        pieces += [prefix, pc.fill_null(array, "null")]
    pieces.append("}")
    return pieces


def _json_plan(
    export_format: ExportFormat, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    parts = _record_parts(columns, SPACED, options)
    keys = [column.key for column in columns]

    def line(arrays: list[pa.Array], length: int) -> pa.Array:
        return _concat(_object_pieces(keys, arrays, SPACED), length)

    if export_format.name == "jsonl":
        encoder = _text_encoder(
            parts, line, head="", separator="", terminator="\n", tail="", ascii_only=True
        )
    else:
        encoder = _text_encoder(
            parts, line, head="[", separator=",", terminator="", tail="]", ascii_only=True
        )
    return _fixed(export_format, _parts_select(parts), encoder)


def _geometry_part(column: OutputColumn, style: JsonStyle, options: ExportOptions) -> _Part:
    """The feature geometry (GeoJSON geometry text) of ``column``."""
    src = _src(column)
    if options.epsg != 4326:
        transform = reprojector(options.epsg)

        def render(values: pa.Array) -> pa.Array:
            geometries = geometries_of(values, column.type)
            return pa.array(
                [None if g is None else _geojson_text(g, style) for g in transform(geometries)],
                pa.string(),
            )

        return _Part(src, render)
    if column.type == "geo_shape":
        return _Part(_geometry_sql(src, style.spaced))
    lon, lat = f"CAST({_lon(src)} AS VARCHAR)", f"CAST({_lat(src)} AS VARCHAR)"
    sep, colon = style.item, style.key
    coordinates = f"'[' || {lon} || '{sep}' || {lat} || ']'"
    if style.v1:
        text = f'\'{{"type"{colon}"Point"{sep}"coordinates"{colon}\' || {coordinates} || \'}}\''
    else:
        text = f'\'{{"coordinates"{colon}\' || {coordinates} || \'{sep}"type"{colon}"Point"}}\''
    return _Part(f"CASE WHEN {_point_valid_sql(src)} THEN {text} ELSE NULL END")


def _geojson_text(geometry: Any, style: JsonStyle) -> str:
    import shapely

    mapping = json.loads(shapely.to_geojson(geometry))
    return style.dumps(mapping)


def _geojson_plan(
    export_format: ExportFormat, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    style = V1_SPACED if options.legacy else COMPACT
    geometry = geometry_column(columns)
    # A shape becomes the geometry and leaves the properties; a point stays in them too.
    properties = [c for c in columns if c is not geometry or c.type != "geo_shape"]
    parts = _record_parts(properties, style, options)
    if geometry is not None:
        parts.append(_geometry_part(geometry, style, options))
    keys = [column.key for column in properties]
    sep, colon = style.item, style.key

    def line(arrays: list[pa.Array], length: int) -> pa.Array:
        geometry_text: str | pa.Array = "null"
        if geometry is not None:
            geometry_text = pc.fill_null(arrays[-1], "null")
            arrays = arrays[:-1]
        if options.legacy:
            props: list[str | pa.Array] = _v1_object_pieces(keys, arrays, style)
        else:
            props = _object_pieces(keys, arrays, style)
        pieces: list[str | pa.Array] = [
            f'{{"type"{colon}"Feature"{sep}"geometry"{colon}',
            geometry_text,
            f'{sep}"properties"{colon}',
            *props,
            "}",
        ]
        return _concat(pieces, length)

    encoder = _text_encoder(
        parts,
        line,
        head='{"type":"FeatureCollection","features":[',
        separator=",",
        terminator="",
        tail="]}",
        ascii_only=True,
    )
    return _fixed(export_format, _parts_select(parts), encoder)


# -- legacy (v1) JSON records ---------------------------------------------------------------


def _v1_object_pieces(
    keys: Sequence[str], arrays: Sequence[pa.Array], style: JsonStyle
) -> list[str | pa.Array]:
    """``{"k": v, ...}`` leaving out null values (v1 drops null fields)."""
    if not keys:
        return ["{}"]
    members = []
    for key, array in zip(keys, arrays):
        prefix = style.item + json.dumps(key, ensure_ascii=False) + style.key
        members.append(pc.binary_join_element_wise(pa.scalar(prefix), array, ""))
    # Each present member starts with the item separator: join, then drop the first one.
    joined = pc.binary_join_element_wise(*members, "", null_handling="replace")
    body = pc.utf8_slice_codeunits(joined, len(style.item))
    return ["{", body, "}"]


def _legacy_json_plan(
    export_format: ExportFormat, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    style = V1_SPACED
    technical = {options.record_id_key, options.record_timestamp_key}
    fields = [c for c in columns if c.key not in technical]
    by_key = {c.key: c for c in columns}
    parts = _record_parts(fields, style, options)
    geometry = geometry_column(fields)
    extra: list[str] = []
    if geometry is not None:
        parts.append(_geometry_part(geometry, style, options))
        extra.append("geometry")
    for key in (options.record_id_key, options.record_timestamp_key):
        column = by_key.get(key or "")
        if column is None:
            parts.append(_Part("NULL"))
        else:
            text_sql = _json_value_sql(column, _src(column), style, options.timezone)
            parts.append(_Part(text_sql or "NULL"))
    keys = [c.key for c in fields]
    dataset_text = json.dumps(options.dataset_id, ensure_ascii=False)

    def line(arrays: list[pa.Array], length: int) -> pa.Array:
        record_id, timestamp = arrays[-2], arrays[-1]
        geometry_text = arrays[len(fields)] if geometry is not None else None
        pieces: list[str | pa.Array] = [
            f'{{"datasetid": {dataset_text}, "recordid": ',
            pc.fill_null(record_id, "null"),
            ', "fields": ',
            *_v1_object_pieces(keys, arrays[: len(fields)], style),
        ]
        if geometry_text is not None:
            # v1 records leave "geometry" out when the record has none.
            member = pc.binary_join_element_wise(pa.scalar(', "geometry": '), geometry_text, "")
            pieces.append(pc.fill_null(member, ""))
        pieces += [', "record_timestamp": ', pc.fill_null(timestamp, "null"), "}"]
        return _concat(pieces, length)

    encoder = _text_encoder(
        parts, line, head="[", separator=",", terminator="", tail="]", ascii_only=True
    )
    return _fixed(export_format, _parts_select(parts), encoder)


# -- CSV ------------------------------------------------------------------------------------


def _cell_sql(column: OutputColumn, src: str, options: ExportOptions) -> str | None:
    """SQL writing one CSV cell's text before quoting (NULL for an empty cell), or None when
    the column is formatted in Python."""
    kind = column.type
    if kind == "text" and column.multivalued:
        separator = "," if options.legacy else options.list_separator
        return f"array_to_string({src}, {_lit(separator)})"
    if kind in ("text", "range"):
        return f"CAST({src} AS VARCHAR)"
    if kind in _BARE_KINDS:
        return _bare_text_sql(kind, src)
    if kind == "date":
        return _date_sql(src, column.date_precision)
    if kind == "datetime":
        return _iso_datetime_sql(src, options.timezone)
    if kind in ("geo_point_2d", "cluster"):
        if options.legacy:
            text = f"printf('%.12g', {_lat(src)}) || ',' || printf('%.12g', {_lon(src)})"
        else:
            text = f"CAST({_lat(src)} AS VARCHAR) || ', ' || CAST({_lon(src)} AS VARCHAR)"
        return f"CASE WHEN {_point_valid_sql(src)} THEN {text} ELSE NULL END"
    if kind == "geo_shape":
        return _geometry_sql(src, spaced=True)
    return None


def _cell_python(column: OutputColumn, context: SerializeContext) -> Callable[[pa.Array], pa.Array]:
    """Per-batch CSV cell text of the kinds SQL does not write (file URL, JSON text)."""

    def text(value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if column.type == "file" and isinstance(value, dict):
            return str(value.get("url") or value.get("id") or "")
        return SPACED.dumps(value)

    return _python_renderer(column, context, text)


def _quoted_cell_sql(name: str, delimiter: str, always: bool) -> str:
    """RFC 4180 quoting, in SQL, of the cell text in column ``name`` (null -> empty cell)."""
    needs = (
        f"contains({name}, {_lit(delimiter)}) OR contains({name}, '\"') "
        f"OR contains({name}, chr(10)) OR contains({name}, chr(13))"
    )
    quoted = f"'\"' || replace({name}, '\"', '\"\"') || '\"'"
    condition = "TRUE" if always else needs
    return f"CASE WHEN {name} IS NULL THEN '' WHEN {condition} THEN {quoted} ELSE {name} END"


def _quote_cell_array(values: pa.Array, delimiter: str, always: bool) -> pa.Array:
    """RFC 4180 quoting of Python-rendered cells, in Arrow."""
    values = pc.fill_null(values, "")
    quoted = _concat(['"', pc.replace_substring(values, '"', '""'), '"'], len(values))
    if always:
        needs = pc.not_equal(values, "")
    else:
        needs = pc.or_(
            pc.or_(pc.match_substring(values, delimiter), pc.match_substring(values, '"')),
            pc.or_(pc.match_substring(values, "\n"), pc.match_substring(values, "\r")),
        )
    return pc.if_else(needs, quoted, values)


def csv_header_line(headers: Sequence[str], delimiter: str, quote_all: bool) -> str:
    cells = []
    for header in headers:
        special = any(char in header for char in (delimiter, '"', "\n", "\r"))
        if quote_all or special:
            cells.append('"' + header.replace('"', '""') + '"')
        else:
            cells.append(header)
    return delimiter.join(cells)


def _csv_plan(
    export_format: ExportFormat, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    delimiter = options.delimiter
    context = options.serialize_context
    inner: list[str] = []
    parts: list[_Part] = []
    for index, column in enumerate(columns):
        cell = f'"__t{index}"'
        always = options.quote_all and column.type not in _BARE_KINDS
        text_sql = _cell_sql(column, _src(column), options)
        if text_sql is None:
            inner.append(f"{_src(column)} AS {cell}")
            parts.append(
                _Part(cell, _quoting_renderer(_cell_python(column, context), delimiter, always))
            )
        elif column.type in _BARE_KINDS:
            inner.append(f"COALESCE({text_sql}, '') AS {cell}")
            parts.append(_Part(cell))
        else:
            inner.append(f"{text_sql} AS {cell}")
            parts.append(_Part(_quoted_cell_sql(cell, delimiter, always)))
    headers = column_headers(columns, options.use_labels)
    header = csv_header_line(headers, delimiter, options.quote_all)

    def line(arrays: list[pa.Array], length: int) -> pa.Array:
        pieces: list[str | pa.Array] = []
        for index, array in enumerate(arrays):
            if index:
                pieces.append(delimiter)
            pieces.append(array)
        return _concat(pieces, length)

    encoder = _text_encoder(
        parts,
        line,
        head=header + "\r\n",
        separator="",
        terminator="\r\n",
        tail="",
        ascii_only=False,
        bom=options.with_bom and not options.legacy,
    )
    return _fixed(export_format, _parts_select(parts), encoder, inner)


def _quoting_renderer(
    render: Callable[[pa.Array], pa.Array], delimiter: str, always: bool
) -> Callable[[pa.Array], pa.Array]:
    def render_quoted(values: pa.Array) -> pa.Array:
        return _quote_cell_array(render(values), delimiter, always)

    return render_quoted


# -- geometry helpers -----------------------------------------------------------------------


@lru_cache(maxsize=16)
def _transformer(epsg: int) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)


def check_epsg(epsg: int) -> str | None:
    """Why ``epsg`` cannot be used (``None`` when it can)."""
    if epsg == 4326:
        return None
    try:
        from pyproj import CRS
        from pyproj.exceptions import CRSError
    except ImportError:
        return "only 4326 is available (reprojection needs pyproj, which is not installed)"
    try:
        CRS.from_epsg(epsg)
        _transformer(epsg)
    except (CRSError, ValueError, TypeError) as exc:
        return f"{epsg} is not a known EPSG code ({exc})"
    return None


def reprojector(epsg: int) -> Callable[[np.ndarray], np.ndarray]:
    """Reproject an array of shapely geometries from EPSG:4326 to ``epsg`` (identity for 4326)."""
    if epsg == 4326:
        return lambda geometries: geometries
    transformer = _transformer(epsg)

    def reproject(geometries: np.ndarray) -> np.ndarray:
        import shapely

        def move(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            new_x, new_y = transformer.transform(x, y)
            return np.asarray(new_x), np.asarray(new_y)

        return np.asarray(shapely.transform(geometries, move, interleaved=False))

    return reproject


def geometries_of(values: pa.Array, kind: str) -> np.ndarray:
    """Shapely geometries (``None`` for null) of a geo_shape (GeoJSON text) or geo_point_2d
    (``{lon, lat}`` struct) column."""
    import shapely

    if kind == "geo_shape":
        texts = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
        return np.asarray(shapely.from_geojson(texts, on_invalid="ignore"))
    lon, lat, valid = _point_arrays(values)
    points = np.asarray(shapely.points(lon, lat))
    points[~valid] = None
    return points


def _point_arrays(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(lon, lat, valid)`` numpy arrays of a ``{lon, lat}`` struct column."""
    lon_array = pc.struct_field(values, "lon")
    lat_array = pc.struct_field(values, "lat")
    valid = np.asarray(
        pc.and_(pc.and_(values.is_valid(), lon_array.is_valid()), lat_array.is_valid()).to_numpy(
            zero_copy_only=False
        ),
        dtype=bool,
    )
    lon = np.asarray(pc.fill_null(lon_array, 0.0).to_numpy(zero_copy_only=False), dtype="f8")
    lat = np.asarray(pc.fill_null(lat_array, 0.0).to_numpy(zero_copy_only=False), dtype="f8")
    return lon, lat, valid


_POINT_WKB = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])


def point_wkb(values: pa.Array, epsg: int = 4326) -> pa.Array:
    """WKB points of a ``{lon, lat}`` struct column, built in numpy (null stays null)."""
    lon, lat, valid = _point_arrays(values)
    if epsg != 4326 and len(lon):
        lon, lat = (np.asarray(v, dtype="f8") for v in _transformer(epsg).transform(lon, lat))
    records = np.empty(len(lon), dtype=_POINT_WKB)
    records["order"], records["kind"], records["x"], records["y"] = 1, 1, lon, lat
    offsets = np.arange(len(lon) + 1, dtype=np.int32) * _POINT_WKB.itemsize
    wkb = pa.BinaryArray.from_buffers(
        pa.binary(), len(lon), [None, pa.py_buffer(offsets), pa.py_buffer(records.tobytes())]
    )
    if valid.all():
        return wkb
    return pc.if_else(pa.array(valid), wkb, pa.scalar(None, pa.binary()))


def shape_wkb(values: pa.Array, epsg: int = 4326) -> pa.Array:
    """WKB geometries of a GeoJSON text column (null and invalid values become null)."""
    import shapely

    geometries = reprojector(epsg)(geometries_of(values, "geo_shape"))
    return pa.array(shapely.to_wkb(geometries), pa.binary())


def crs_json(epsg: int) -> dict[str, Any] | None:
    """PROJJSON of ``EPSG:<epsg>`` (``None`` without pyproj, which GeoParquet reads as
    OGC:CRS84)."""
    try:
        from pyproj import CRS
    except ImportError:
        return None
    result: dict[str, Any] = CRS.from_epsg(epsg).to_json_dict()
    return result


# -- typed columns (parquet, fgb, xlsx) -----------------------------------------------------


@dataclass
class _TypedColumn:
    """A column of a typed export: the SQL fetching it and the Arrow conversion per batch."""

    sql: str
    name: str
    kind: str
    convert: Callable[[pa.Array], pa.Array] | None = None
    arrow_type: pa.DataType | None = None


def _typed_columns(
    columns: Sequence[OutputColumn],
    options: ExportOptions,
    *,
    geometry_as_wkb: Sequence[OutputColumn],
    lists: bool,
) -> list[_TypedColumn]:
    """Typed columns: geometries in ``geometry_as_wkb`` become WKB, other geo columns JSON
    text; datetimes carry the request timezone; file and json_blob are JSON text."""
    headers = column_headers(columns, options.use_labels)
    context = options.serialize_context
    typed: list[_TypedColumn] = []
    for column, name in zip(columns, headers):
        src, kind = _src(column), column.type
        if column in geometry_as_wkb:
            if kind == "geo_shape":
                typed.append(
                    _TypedColumn(
                        f"CAST({src} AS VARCHAR)",
                        name,
                        kind,
                        partial(shape_wkb, epsg=options.epsg),
                        pa.binary(),
                    )
                )
            else:
                typed.append(
                    _TypedColumn(
                        src, name, kind, partial(point_wkb, epsg=options.epsg), pa.binary()
                    )
                )
        elif kind == "text" and column.multivalued and not lists:
            typed.append(
                _TypedColumn(f"array_to_string({src}, ',')", name, kind, None, pa.string())
            )
        elif kind == "text" and column.multivalued:
            typed.append(_TypedColumn(src, name, kind, None, pa.list_(pa.string())))
        elif kind in ("text", "range"):
            typed.append(_TypedColumn(f"CAST({src} AS VARCHAR)", name, kind, None, pa.string()))
        elif kind == "int":
            typed.append(_TypedColumn(f"CAST({src} AS BIGINT)", name, kind, None, pa.int64()))
        elif kind == "double":
            typed.append(_TypedColumn(f"CAST({src} AS DOUBLE)", name, kind, None, pa.float64()))
        elif kind == "boolean":
            typed.append(_TypedColumn(f"CAST({src} AS BOOLEAN)", name, kind, None, pa.bool_()))
        elif kind == "date":
            typed.append(_TypedColumn(f"CAST({src} AS DATE)", name, kind, None, pa.date32()))
        elif kind == "datetime":
            tz_type = pa.timestamp("us", tz=options.timezone)
            typed.append(
                _TypedColumn(
                    f"CAST({src} AS TIMESTAMPTZ)",
                    name,
                    kind,
                    partial(_in_timezone, arrow_type=tz_type),
                    tz_type,
                )
            )
        elif kind == "number":
            typed.append(_TypedColumn(src, name, kind))
        else:
            text_sql = _json_value_sql(column, src, COMPACT, options.timezone)
            if text_sql is None:
                render = _json_value_python(column, COMPACT, context)
                typed.append(_TypedColumn(src, name, kind, render, pa.string()))
            else:
                typed.append(_TypedColumn(text_sql, name, kind, None, pa.string()))
    return typed


def _in_timezone(values: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    return values.cast(pa.timestamp("us", tz="UTC")).cast(arrow_type)


def _typed_batch(batch: pa.RecordBatch, typed: Sequence[_TypedColumn]) -> pa.RecordBatch:
    arrays = []
    for index, column in enumerate(typed):
        array = batch.column(index)
        if column.convert is not None:
            array = column.convert(array)
        if column.arrow_type is not None and array.type != column.arrow_type:
            array = array.cast(column.arrow_type)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in typed])


def _typed_schema(source: pa.Schema, typed: Sequence[_TypedColumn]) -> pa.Schema:
    fields = []
    for index, column in enumerate(typed):
        arrow_type = column.arrow_type or source.field(index).type
        if pa.types.is_decimal(arrow_type):
            arrow_type = pa.float64()
        fields.append(pa.field(column.name, arrow_type))
    return pa.schema(fields)


class _ChunkSink:
    """A write-only file object collecting what a writer writes, drained chunk by chunk."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def drain(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def _geo_metadata(
    columns: Sequence[OutputColumn], typed: Sequence[_TypedColumn], epsg: int
) -> dict[str, Any] | None:
    geometry_columns = {
        c.name: c.kind
        for c in typed
        if c.kind in ("geo_shape", "geo_point_2d") and c.arrow_type == pa.binary()
    }
    if not geometry_columns:
        return None
    primary_source = geometry_column(columns)
    primary = next(
        (c.name for c in typed if primary_source is not None and c.kind == primary_source.type),
        next(iter(geometry_columns)),
    )
    crs = crs_json(epsg)
    described: dict[str, Any] = {}
    for name, kind in geometry_columns.items():
        entry: dict[str, Any] = {
            "encoding": "WKB",
            "geometry_types": ["Point"] if kind == "geo_point_2d" else [],
        }
        if crs is not None:
            entry["crs"] = crs
        described[name] = entry
    return {"version": "1.1.0", "primary_column": primary, "columns": described}


def _parquet_plan(
    export_format: ExportFormat, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    geo = [c for c in columns if c.type in ("geo_shape", "geo_point_2d")]
    typed = _typed_columns(columns, options, geometry_as_wkb=geo, lists=True)
    select = [f"{c.sql} AS {_alias(i)}" for i, c in enumerate(typed)]

    def encoder_for(source_schema: pa.Schema) -> Encoder:
        schema = _typed_schema(source_schema, typed)
        metadata = _geo_metadata(columns, typed, options.epsg)
        if metadata is not None:
            schema = schema.with_metadata({"geo": json.dumps(metadata)})

        def encode(batches: Batches) -> Iterator[bytes]:
            sink = _ChunkSink()
            writer = pq.ParquetWriter(
                sink,
                schema,
                compression=options.parquet_compression,
            )
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            try:
                for batch in batches:
                    if batch.num_rows == 0:
                        continue
                    pending.append(_typed_batch(batch, typed).cast(schema))
                    pending_rows += batch.num_rows
                    if pending_rows >= PARQUET_ROW_GROUP_ROWS:
                        writer.write_table(pa.Table.from_batches(pending, schema), pending_rows)
                        pending, pending_rows = [], 0
                        yield sink.drain()
                if pending:
                    writer.write_table(pa.Table.from_batches(pending, schema), pending_rows)
            finally:
                writer.close()
            yield sink.drain()

        return encode

    return PreparedExport(export_format, select, encoder_for)


def _xlsx_plan(
    export_format: ExportFormat, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    context = options.serialize_context
    select: list[str] = []
    renders: list[Callable[[pa.Array], pa.Array] | None] = []
    for index, column in enumerate(columns):
        src = _src(column)
        if column.type == "int":
            sql_text = f"CAST({src} AS BIGINT)"
        elif column.type in ("double", "number"):
            sql_text = f"CASE WHEN isfinite(CAST({src} AS DOUBLE)) THEN CAST({src} AS DOUBLE) END"
        elif column.type == "boolean":
            sql_text = f"CAST({src} AS BOOLEAN)"
        else:
            sql_text = _cell_sql(column, src, options) or ""
        if sql_text:
            renders.append(None)
        else:
            sql_text = src
            renders.append(_cell_python(column, context))
        select.append(f"{sql_text} AS {_alias(index)}")
    headers = column_headers(columns, options.use_labels)

    def encode(batches: Batches) -> Iterator[bytes]:
        import xlsxwriter

        handle, path = tempfile.mkstemp(prefix="odsframe-export-", suffix=".xlsx")
        os.close(handle)
        try:
            workbook = xlsxwriter.Workbook(
                path,
                {
                    "constant_memory": True,
                    "strings_to_urls": False,
                    "strings_to_formulas": False,
                    "strings_to_numbers": False,
                },
            )
            sheet = workbook.add_worksheet(options.dataset_id[:31] or "export")
            sheet.write_row(0, 0, headers)
            row_number = 1
            for batch in batches:
                values = []
                for index, render in enumerate(renders):
                    array = batch.column(index)
                    values.append((render(array) if render else array).to_pylist())
                for row in zip(*values):
                    sheet.write_row(row_number, 0, row)
                    row_number += 1
            workbook.close()
            yield from _file_chunks(path)
        finally:
            os.unlink(path)

    return _fixed(export_format, select, encode)


def _fgb_plan(
    export_format: ExportFormat, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    primary = geometry_column(columns)
    wkb = [primary] if primary is not None else []
    typed = _typed_columns(columns, options, geometry_as_wkb=wkb, lists=False)
    select = [f"{c.sql} AS {_alias(i)}" for i, c in enumerate(typed)]
    geometry_name = next((c.name for c in typed if c.arrow_type == pa.binary()), None)

    def encoder_for(source_schema: pa.Schema) -> Encoder:
        schema = _typed_schema(source_schema, typed)
        if geometry_name is not None:
            index = schema.get_field_index(geometry_name)
            schema = schema.set(
                index,
                schema.field(index).with_metadata({"ARROW:extension:name": "geoarrow.wkb"}),
            )

        def encode(batches: Batches) -> Iterator[bytes]:
            from pyogrio import write_arrow

            typed_batches = (_typed_batch(b, typed).cast(schema) for b in batches if b.num_rows)
            reader = pa.RecordBatchReader.from_batches(schema, typed_batches)
            folder = tempfile.mkdtemp(prefix="odsframe-export-")
            path = os.path.join(folder, "export.fgb")
            try:
                geometry_type = (
                    "Point" if primary is not None and primary.type == "geo_point_2d" else "Unknown"
                )
                write_arrow(
                    reader,
                    path,
                    layer=options.dataset_id or "export",
                    driver="FlatGeobuf",
                    geometry_name=geometry_name,
                    geometry_type=geometry_type if geometry_name else None,
                    crs=f"EPSG:{options.epsg}" if geometry_name else None,
                    SPATIAL_INDEX="NO",
                )
                yield from _file_chunks(path)
            finally:
                for name in os.listdir(folder):
                    os.unlink(os.path.join(folder, name))
                os.rmdir(folder)

        return encode

    return PreparedExport(export_format, select, encoder_for)


def _file_chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(FILE_CHUNK_BYTES)
            if not chunk:
                return
            yield chunk


# -- entry points ---------------------------------------------------------------------------


_PLANNERS: dict[
    str, Callable[[ExportFormat, Sequence[OutputColumn], ExportOptions], PreparedExport]
] = {
    "csv": _csv_plan,
    "json": _json_plan,
    "jsonl": _json_plan,
    "geojson": _geojson_plan,
    "parquet": _parquet_plan,
    "xlsx": _xlsx_plan,
    "fgb": _fgb_plan,
}


def plan_export(
    fmt: str, columns: Sequence[OutputColumn], options: ExportOptions
) -> PreparedExport:
    """The export, in format ``fmt``, of a result with ``columns``.

    Raises
    ------
    KeyError
        For a format this portal does not write (check :func:`dataset_formats` first).
    """
    if options.legacy and fmt == "json":
        return _legacy_json_plan(EXPORT_FORMATS["json"], list(columns), options)
    return _PLANNERS[fmt](EXPORT_FORMATS[fmt], list(columns), options)


def gzip_chunks(chunks: Iterable[bytes], level: int = GZIP_LEVEL) -> Iterator[bytes]:
    """``chunks`` gzip-compressed as one stream (``compressed=true``)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    for chunk in chunks:
        data = compressor.compress(chunk)
        if data:
            yield data
    yield compressor.flush()

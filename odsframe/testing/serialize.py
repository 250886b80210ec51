"""Query results -> ODS JSON values (Explore API v2.1 encodings, ods-api.md section 6.3).

One converter per :class:`~odsframe.testing.model.OutputColumn` is built once per request
(:func:`value_converter`) and then applied to every value of that column, so writing a page
costs one Python call per value. :class:`RecordWriter` bundles the converters of a result and
turns DuckDB results (fetched as Arrow, which needs no ``pytz`` for ``TIMESTAMPTZ``) into
flat ``dict`` records ready for ``json.dumps``. Exports reuse the same writer: call
:meth:`RecordWriter.records` on each Arrow batch and dump each record.

Encodings (v2.1 JSON):

========================  ==================================================================
type                      value
========================  ==================================================================
text                      string; multivalued -> list of strings
int / double / number     number (non-finite doubles -> ``null``)
boolean                   ``true`` / ``false``
date                      ``"YYYY"``, ``"YYYY-MM"`` or ``"YYYY-MM-DD"`` by date precision
datetime                  ISO 8601 in the request timezone with its offset (DST included),
                          fractional seconds only when non-zero
geo_point_2d              ``{"lon": x, "lat": y}``
geo_shape                 ``{"type": "Feature", "geometry": {...}, "properties": {}}``
file                      the file object plus ``url`` (the portal's file route)
json_blob                 the JSON value
cluster                   ``{"cluster_centroid": {"lat": y, "lon": x}}``
range                     the label string
========================  ==================================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from odsframe._spec import EXPLORE_V21
from odsframe.testing.model import OutputColumn

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class SerializeContext:
    """What value encodings depend on besides the column.

    Parameters
    ----------
    timezone
        The request timezone: datetimes are written in it, with its offset.
    base_url
        The portal's base URL (``http://127.0.0.1:8000``), used to build file URLs.
    dataset_id
        The dataset the values come from (file URLs point into it).
    datasets_path
        The path of the datasets of the API generation answering (file URLs use its file
        route): ``/api/explore/v2.1/catalog/datasets`` (default), ``/api/v2/catalog/datasets``
        or ``/api/datasets/1.0``.
    """

    timezone: tzinfo = UTC
    base_url: str = ""
    dataset_id: str = ""
    datasets_path: str = f"{EXPLORE_V21}/catalog/datasets"

    @property
    def files_url(self) -> str:
        """Prefix of the file route: ``<base><datasets_path>/<id>/files/``."""
        dataset = quote(self.dataset_id, safe="@")
        return f"{self.base_url}{self.datasets_path}/{dataset}/files/"


# -- scalar helpers ------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _number(value: Any) -> Any:
    """An aggregate or computed number: ints stay ints, other numbers become floats."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        integral = value.to_integral_value()
        return int(integral) if integral == value else float(value)
    return _generic(value)


def _int(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        number = _number(value)
        if isinstance(number, float) and number.is_integer():
            return int(number)
        return number
    return _generic(value)


def _double(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, int | Decimal):
        return _finite(float(value))
    return _generic(value)


def _boolean(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    return _generic(value)


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return _generic(value)


def _text_list(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [_text(item) for item in value]
    return _generic(value)


def _generic(value: Any) -> Any:
    """Best JSON form of a value whose type the column does not announce."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(key): _generic(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_generic(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _parse_json_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _generic(value)


# -- converters per type --------------------------------------------------------------------


def _datetime_converter(zone: tzinfo) -> Converter:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.astimezone(zone).isoformat()
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=zone).isoformat()
        return _generic(value)

    return convert


def _date_converter(precision: str) -> Converter:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, date):  # datetime is a date too
            if precision == "year":
                return f"{value.year:04d}"
            if precision == "month":
                return f"{value.year:04d}-{value.month:02d}"
            return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        return _generic(value)

    return convert


def _geo_point(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        lon, lat = value.get("lon"), value.get("lat")
    elif isinstance(value, list | tuple) and len(value) == 2:
        lon, lat = value
    else:
        return _generic(value)
    if lon is None or lat is None:
        return None
    return {"lon": _double(lon), "lat": _double(lat)}


def _geo_shape(value: Any) -> Any:
    if value is None:
        return None
    geometry = json.loads(value) if isinstance(value, str) else _generic(value)
    if isinstance(geometry, dict) and geometry.get("type") == "Feature":
        return geometry
    return {"type": "Feature", "geometry": geometry, "properties": {}}


def _cluster(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        if "cluster_centroid" in value:
            return _generic(value)
        return {"cluster_centroid": {"lat": _double(value["lat"]), "lon": _double(value["lon"])}}
    return _generic(value)


def _range_label(value: Any) -> Any:
    return None if value is None else str(value)


def _file_converter(files_url: str) -> Converter:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        file_object = _parse_json_text(value)
        if not isinstance(file_object, dict):
            return file_object
        file_object = dict(file_object)
        file_id = file_object.get("id")
        if file_id is not None and "url" not in file_object:
            file_object["url"] = files_url + quote(str(file_id), safe="")
        return file_object

    return convert


def value_converter(column: OutputColumn, context: SerializeContext) -> Converter:
    """The function writing one value of ``column`` as its v2.1 JSON value.

    Parameters
    ----------
    column
        The result column (its ``type``, ``multivalued`` and ``date_precision`` matter).
    context
        Request timezone and URLs.

    Returns
    -------
    Callable
        Takes a value as DuckDB hands it over (through Arrow) and returns a JSON-ready value.
    """
    kind = column.type
    if kind == "text":
        return _text_list if column.multivalued else _text
    if kind == "int":
        return _int
    if kind == "double":
        return _double
    if kind == "number":
        return _number
    if kind == "boolean":
        return _boolean
    if kind == "date":
        return _date_converter(column.date_precision)
    if kind == "datetime":
        return _datetime_converter(context.timezone)
    if kind == "geo_point_2d":
        return _geo_point
    if kind == "geo_shape":
        return _geo_shape
    if kind == "file":
        return _file_converter(context.files_url)
    if kind == "json_blob":
        return _parse_json_text
    if kind == "cluster":
        return _cluster
    if kind == "range":
        return _range_label
    return _generic


class RecordWriter:
    """Writes the rows of one query result as flat v2.1 records.

    Parameters
    ----------
    columns
        The result columns, in output order.
    context
        Request timezone and URLs.

    Examples
    --------
    >>> writer = RecordWriter(compiled.columns, SerializeContext(ZoneInfo("Europe/Paris")))
    >>> records = writer.records(cursor.sql(compiled.sql, params=compiled.params).to_arrow_table())
    """

    def __init__(self, columns: Sequence[OutputColumn], context: SerializeContext) -> None:
        self.columns = list(columns)
        self.context = context
        self.keys = [column.key for column in self.columns]
        self.converters = [value_converter(column, context) for column in self.columns]

    def records(self, table: Any) -> list[dict[str, Any]]:
        """Records of an Arrow table (or record batch) whose columns are named by ``sql_name``.

        A result with several columns of the same name is read by position.
        """
        names = list(table.schema.names)
        by_position = len(set(names)) != len(names) or len(names) != len(self.columns)
        values: list[list[Any]] = []
        for index, column in enumerate(self.columns):
            if not by_position and column.sql_name in names:
                data = table.column(column.sql_name)
            else:
                data = table.column(index)
            values.append(data.to_pylist())
        return self.from_columns(values)

    def from_columns(self, values: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """Records from column-major Python values (one sequence per output column)."""
        if not values:
            return []
        converted = [list(map(convert, column)) for convert, column in zip(self.converters, values)]
        keys = self.keys
        return [dict(zip(keys, row)) for row in zip(*converted)]

    def from_rows(self, rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
        """Records from row-major Python values (tuples in output-column order)."""
        keys, converters = self.keys, self.converters
        return [
            {key: convert(value) for key, convert, value in zip(keys, converters, row)}
            for row in rows
        ]


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON as ODS writes it (non-ASCII characters kept as they are)."""
    return json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_generic
    ).encode("utf-8")

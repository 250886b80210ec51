"""Dataset schemas: ODS field descriptions, their pandas dtypes, and a light inference fallback.

A schema comes from dataset metadata (v2.1 dataset object, v2.0 ``{"dataset": ...}`` wrapper or
v1 dataset object) and is normalised into :class:`FieldSpec` objects whose annotations always use
the v2.1 dict form (ods-api.md section 6.2).
"""

from __future__ import annotations

import math
import re
import unicodedata
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import numpy as np
import pandas as pd

from odsframe._spec import GEO_TYPES
from odsframe.errors import InvalidQueryArgument, ODSWarning, ServerError

if TYPE_CHECKING:
    from pandas.api.extensions import ExtensionDtype

DatePrecision = Literal["year", "month", "day"]

#: Resolution of every date and datetime column: microseconds cover ODS fractional seconds and
#: the far sentinel dates (``9999-12-31``) that overflow nanoseconds.
TIME_UNIT: Literal["us"] = "us"


class ValueCastWarning(ODSWarning):
    """Some values of a column could not be read as the field's type and became NA."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of a dataset schema, in the v2.1 shape.

    Parameters
    ----------
    name
        The field name (the column name in frames).
    type
        The ODS type (``text``, ``int``, ``double``, ``boolean``, ``date``, ``datetime``,
        ``geo_point_2d``, ``geo_shape``, ``file``, ``json_blob``); unknown types are kept
        and their values left as Python objects.
    label
        The human label (defaults to the name).
    description
        The field description, if any.
    annotations
        Annotations in the v2.1 dict form, ``{"multivalued": [","], "unit": ["km2"], ...}``.
    """

    name: str
    type: str
    label: str = ""
    description: str | None = None
    annotations: Mapping[str, list[Any]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidQueryArgument(
                f"a field name must be a non-empty string, got {self.name!r}"
            )
        if not isinstance(self.type, str) or not self.type:
            raise InvalidQueryArgument(
                f"field {self.name!r}: the type must be a non-empty string, got {self.type!r}"
            )
        if not self.label:
            object.__setattr__(self, "label", self.name)
        object.__setattr__(self, "annotations", normalize_annotations(self.annotations))

    @property
    def unit(self) -> str | None:
        """The display unit (``unit`` annotation), if any."""
        args = self.annotations.get("unit") or []
        return str(args[0]) if args else None

    @property
    def multivalued(self) -> bool:
        """Whether values are lists (a text field with the ``multivalued`` annotation)."""
        return self.type == "text" and "multivalued" in self.annotations

    @property
    def multivalued_separator(self) -> str | None:
        """The separator of a multivalued text field (``","`` when unspecified), else None."""
        if not self.multivalued:
            return None
        args = self.annotations.get("multivalued") or []
        return str(args[0]) if args and args[0] not in (None, "") else ","

    @property
    def timeserie_precision(self) -> str | None:
        """The raw ``timeserie_precision`` (``year``, ``month``, ``day``, ``hour``, ``minute``)."""
        args = self.annotations.get("timeserie_precision") or []
        return str(args[0]) if args else None

    @property
    def date_precision(self) -> DatePrecision:
        """``year``, ``month`` or ``day``: how precise the values of a date field are."""
        precision = self.timeserie_precision
        if precision in ("year", "month"):
            return precision  # type: ignore[return-value]
        return "day"

    @property
    def is_geo(self) -> bool:
        """Whether the field holds geometries."""
        return self.type in GEO_TYPES

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FieldSpec:
        """Build a field from a v1, v2.0 or v2.1 ``fields[]`` item."""
        if not isinstance(obj, Mapping):
            raise ServerError(f"a schema field must be a JSON object, got {type(obj).__name__}")
        name, type_ = obj.get("name"), obj.get("type")
        if not isinstance(name, str) or not name:
            raise ServerError(f"a schema field has no usable 'name': {dict(obj)!r}")
        if not isinstance(type_, str) or not type_:
            raise ServerError(f"schema field {name!r} has no usable 'type': {dict(obj)!r}")
        label = obj.get("label")
        description = obj.get("description")
        return cls(
            name=name,
            type=type_,
            label=label if isinstance(label, str) else "",
            description=description if isinstance(description, str) else None,
            annotations=obj.get("annotations") or {},
        )

    def to_json(self) -> dict[str, Any]:
        """The field as a v2.1 ``fields[]`` item."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "annotations": {key: list(args) for key, args in self.annotations.items()},
            "description": self.description,
        }


def normalize_annotations(annotations: Any) -> dict[str, list[Any]]:
    """Annotations in the v2.1 dict form, from the v1 list form or the v2.0 dict form.

    v1 gives ``[{"name": "facet"}, {"name": "unit", "args": ["%"]}]``; v2.0 may give
    ``{"facet": true}``; v2.1 gives ``{"facet": [], "unit": ["%"]}``.
    """
    if annotations is None:
        return {}
    normalized: dict[str, list[Any]] = {}
    if isinstance(annotations, Mapping):
        for key, args in annotations.items():
            if args is False:
                continue
            normalized[str(key)] = _annotation_args(args)
        return normalized
    if isinstance(annotations, Iterable) and not isinstance(annotations, str | bytes):
        for item in annotations:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                normalized[item["name"]] = _annotation_args(item.get("args"))
            elif isinstance(item, str):
                normalized[item] = []
            else:
                raise ServerError(f"unreadable field annotation {item!r}")
        return normalized
    raise ServerError(f"field annotations must be a list or an object, got {annotations!r}")


def _annotation_args(args: Any) -> list[Any]:
    if args is None or args is True:
        return []
    if isinstance(args, list | tuple):
        return list(args)
    return [args]


#: Technical record values, named as in v2.1 (``_id``, ``_timestamp``, ``_size``); v1 record
#: geometries are kept as ``_geometry``.
TECHNICAL_FIELDS: dict[str, FieldSpec] = {
    "_id": FieldSpec("_id", "text", "Record id"),
    "_timestamp": FieldSpec("_timestamp", "datetime", "Record timestamp"),
    "_size": FieldSpec("_size", "int", "Record size"),
    "_geometry": FieldSpec("_geometry", "geo_shape", "Record geometry"),
}


# --- schemas from metadata -------------------------------------------------------------------


#: Anything :func:`as_fields` turns into a schema.
FieldsLike: TypeAlias = Sequence[FieldSpec] | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None


def fields_from_metadata(payload: Any) -> list[FieldSpec]:
    """The schema of a dataset from its metadata.

    Parameters
    ----------
    payload
        A v2.1 dataset object, a v2.0 ``{"dataset": {...}}`` wrapper, a v1 dataset object, a
        catalog page holding exactly one dataset, or a bare list of ``fields[]`` items.

    Returns
    -------
    list of FieldSpec
        The fields in schema order.

    Raises
    ------
    ServerError
        If the payload holds no readable ``fields`` list.
    """
    dataset = _single_dataset(payload)
    if isinstance(dataset, list):
        raw_fields: Any = dataset
    else:
        raw_fields = dataset.get("fields")
        if raw_fields is None:
            keys = ", ".join(sorted(map(str, dataset))[:12])
            raise ServerError(f"the dataset metadata has no 'fields' list (keys: {keys})")
    if not isinstance(raw_fields, list):
        raise ServerError(f"'fields' must be a list, got {type(raw_fields).__name__}")
    return _unique_fields(FieldSpec.from_json(item) for item in raw_fields)


def _single_dataset(payload: Any) -> Any:
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, Mapping):
        raise ServerError(f"dataset metadata must be a JSON object, got {type(payload).__name__}")
    if isinstance(payload.get("dataset"), Mapping):  # v2.0 wrapper
        return payload["dataset"]
    if "fields" in payload:
        return payload
    for key in ("results", "datasets"):  # a catalog page (v2.1, v1 / v2.0)
        items = payload.get(key)
        if isinstance(items, list):
            if len(items) != 1:
                raise ServerError(
                    f"a catalog page with {len(items)} datasets was given where the metadata "
                    "of one dataset was expected"
                )
            return _single_dataset(items[0])
    keys = ", ".join(sorted(map(str, payload))[:12])
    raise ServerError(f"not a dataset metadata object (keys: {keys})")


def _unique_fields(fields: Iterable[FieldSpec]) -> list[FieldSpec]:
    result: list[FieldSpec] = []
    seen: set[str] = set()
    for spec in fields:
        if spec.name in seen:
            raise ServerError(f"the schema lists field {spec.name!r} twice")
        seen.add(spec.name)
        result.append(spec)
    return result


def as_fields(fields: Any) -> list[FieldSpec] | None:
    """Normalise whatever describes a schema into a list of :class:`FieldSpec`.

    Accepts None (no schema), a sequence of ``FieldSpec`` or of ``fields[]`` dicts, dataset
    metadata (see :func:`fields_from_metadata`), or a mapping ``{name: type}`` /
    ``{name: {"type": ..., "label": ...}}``.
    """
    if fields is None:
        return None
    if isinstance(fields, FieldSpec):
        return [fields]
    if isinstance(fields, Mapping):
        if "fields" in fields or "dataset" in fields or "results" in fields:
            return fields_from_metadata(fields)
        specs = []
        for name, description in fields.items():
            if isinstance(description, FieldSpec):
                specs.append(description)
            elif isinstance(description, str):
                specs.append(FieldSpec(str(name), description))
            elif isinstance(description, Mapping):
                specs.append(FieldSpec.from_json({"name": name, **description}))
            else:
                raise InvalidQueryArgument(
                    f"field {name!r}: expected a type name or a field object, got {description!r}"
                )
        return _unique_fields(specs)
    if isinstance(fields, Sequence) and not isinstance(fields, str | bytes):
        return _unique_fields(
            item if isinstance(item, FieldSpec) else FieldSpec.from_json(item) for item in fields
        )
    raise InvalidQueryArgument(
        f"fields must be a list of FieldSpec, dataset metadata or a {{name: type}} mapping, "
        f"got {type(fields).__name__}"
    )


# --- dtypes ----------------------------------------------------------------------------------


def check_timezone(timezone: str | None) -> str:
    """The timezone name to convert datetimes to (``UTC`` when None).

    Raises
    ------
    InvalidQueryArgument
        If the name is not a known timezone.
    """
    if timezone is None:
        return "UTC"
    if not isinstance(timezone, str) or not timezone:
        raise InvalidQueryArgument(f"timezone must be a timezone name, got {timezone!r}")
    try:
        pd.Timestamp(0, tz=timezone)
    except Exception as exc:
        raise InvalidQueryArgument(
            f"unknown timezone {timezone!r} (use an IANA name such as 'Europe/Paris')"
        ) from exc
    return timezone


def pandas_dtype(spec: FieldSpec, *, timezone: str | None = None) -> np.dtype[Any] | ExtensionDtype:
    """The pandas dtype of a field's column.

    ``int`` -> ``Int64``, ``double`` -> ``Float64``, ``text`` -> ``string`` (multivalued ->
    ``list<string>[pyarrow]``), ``boolean`` -> ``boolean``, ``date`` -> naive ``datetime64[us]``,
    ``datetime`` -> ``datetime64[us, <timezone or UTC>]``, ``file`` -> ``string`` (URLs);
    geometries, ``json_blob`` and unknown types -> ``object``.
    """
    kind = spec.type
    if kind == "int":
        return pd.Int64Dtype()
    if kind == "double":
        return pd.Float64Dtype()
    if kind == "text":
        if spec.multivalued:
            import pyarrow as pa

            return pd.ArrowDtype(pa.list_(pa.string()))
        return pd.StringDtype()
    if kind == "file":
        return pd.StringDtype()
    if kind == "boolean":
        return pd.BooleanDtype()
    if kind == "date":
        return np.dtype(f"datetime64[{TIME_UNIT}]")
    if kind == "datetime":
        return pd.DatetimeTZDtype(TIME_UNIT, check_timezone(timezone))
    return np.dtype(object)


def empty_column(spec: FieldSpec, length: int, *, timezone: str | None = None) -> pd.Series:
    """A column of ``length`` typed missing values for a field."""
    dtype = pandas_dtype(spec, timezone=timezone)
    if dtype == np.dtype(object):
        return pd.Series(np.full(length, None, dtype=object), name=spec.name)
    missing: list[Any] = [None] * length
    return pd.Series(pd.array(missing, dtype=cast(Any, dtype)), name=spec.name)


def fields_frame(fields: Iterable[FieldSpec]) -> pd.DataFrame:
    """A table of the fields: name, label, type, unit and description (for ``df.ods.fields``)."""
    rows = [(f.name, f.label, f.type, f.unit, f.description) for f in fields]
    frame = pd.DataFrame(rows, columns=["name", "label", "type", "unit", "description"])
    return frame.astype(pd.StringDtype())


# --- cast warnings ---------------------------------------------------------------------------


def warn_cast_failures(column: str, type_name: str, bad_values: Sequence[Any]) -> None:
    """Warn that some values of ``column`` could not be read as ``type_name`` (now NA)."""
    if not len(bad_values):
        return
    examples = ", ".join(_short_repr(value) for value in list(bad_values[:3]))
    warnings.warn(
        f"{len(bad_values)} value(s) of column {column!r} could not be read as {type_name} "
        f"and became NA (e.g. {examples})",
        ValueCastWarning,
        stacklevel=4,
    )


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- inference -------------------------------------------------------------------------------

_INT_TEXT = re.compile(r"^[+-]?(0|[1-9]\d{0,17})$")
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
)
_LATLON_TEXT = re.compile(r"^\s*[+-]?\d+(\.\d+)?\s*,\s*[+-]?\d+(\.\d+)?\s*$")
_GEOJSON_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
        "Feature",
    }
)
_INFER_SAMPLE = 1000


def infer_fields(frame: pd.DataFrame, *, from_text: bool = False) -> list[FieldSpec]:
    """Guess a schema from a frame when no dataset metadata is available.

    Uses the column dtypes and, for object or string columns, a sample of the values: shapely
    geometries and GeoJSON objects -> ``geo_shape``; ``{lon, lat}`` objects and ``[lat, lon]``
    pairs -> ``geo_point_2d``; ISO dates and datetimes written as text; other lists ->
    multivalued ``text`` or ``json_blob``. With ``from_text=True`` (every value was text, as
    in a CSV) numbers, ``"lat, lon"`` points and GeoJSON text are recognised too; codes with
    leading zeros stay text.
    """
    return [infer_field(str(name), frame[name], from_text=from_text) for name in frame.columns]


def infer_field(name: str, values: Any, *, from_text: bool = False) -> FieldSpec:
    """Guess the field of one column (a Series, array or list of values); see infer_fields."""
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return FieldSpec(name, "boolean")
    if pd.api.types.is_integer_dtype(dtype):
        return FieldSpec(name, "int")
    if pd.api.types.is_float_dtype(dtype):
        return FieldSpec(name, "double")
    if isinstance(dtype, pd.DatetimeTZDtype):
        return FieldSpec(name, "datetime")
    if pd.api.types.is_datetime64_dtype(dtype):
        stamps = series.dropna()
        midnight = bool((stamps == stamps.dt.normalize()).all())
        return FieldSpec(name, "date" if midnight else "datetime")
    if getattr(dtype, "name", "") == "geometry":
        return FieldSpec(name, "geo_shape")
    sample = [v for v in series.to_numpy(dtype=object)[: _INFER_SAMPLE * 4] if not _is_null(v)]
    kind, annotations = _infer_kind(sample[:_INFER_SAMPLE], from_text)
    return FieldSpec(name, kind, annotations=annotations)


def _infer_kind(sample: list[Any], from_text: bool) -> tuple[str, dict[str, list[Any]]]:
    if not sample:
        return "text", {}
    if all(isinstance(v, bool | np.bool_) for v in sample):
        return "boolean", {}
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in sample):
        return "int", {}
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in sample):
        return "double", {}
    if all(_is_shapely(v) for v in sample):
        return "geo_shape", {}
    if all(isinstance(v, Mapping) for v in sample):
        if all(set(v) == {"lon", "lat"} for v in sample):
            return "geo_point_2d", {}
        if all(v.get("type") in _GEOJSON_TYPES for v in sample):
            return "geo_shape", {}
        return "json_blob", {}
    if all(isinstance(v, list | tuple) for v in sample):
        if all(_is_latlon_pair(v) for v in sample):
            return "geo_point_2d", {}
        if all(all(isinstance(item, str) for item in v) for v in sample):
            return "text", {"multivalued": [","]}
        return "json_blob", {}
    if all(isinstance(v, str) for v in sample):
        return _infer_text_kind(sample, from_text), {}
    return "json_blob", {}


def _infer_text_kind(sample: list[str], from_text: bool) -> str:
    texts = [v.strip() for v in sample if v.strip()]
    if not texts:
        return "text"
    if all(_DATE_TEXT.match(v) for v in texts):
        return "date"
    if all(_DATETIME_TEXT.match(v) for v in texts):
        return "datetime"
    if not from_text:  # JSON strings stay text unless they are dates
        return "text"
    if all(_INT_TEXT.match(v) for v in texts):
        return "int"
    if all(_FLOAT_TEXT.match(v) for v in texts) and not any(_leading_zero(v) for v in texts):
        return "double"
    if all(_LATLON_TEXT.match(v) for v in texts):
        return "geo_point_2d"
    if all(v.startswith("{") and _looks_like_geojson(v) for v in texts):
        return "geo_shape"
    return "text"


def _leading_zero(text: str) -> bool:
    digits = text.lstrip("+-")
    return len(digits) > 1 and digits[0] == "0" and digits[1] != "."


def _looks_like_geojson(text: str) -> bool:
    return any(f'"type": "{kind}"' in text or f'"type":"{kind}"' in text for kind in _GEOJSON_TYPES)


def _is_latlon_pair(value: Any) -> bool:
    return (
        len(value) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
        and -90 <= value[0] <= 90
        and -180 <= value[1] <= 180
    )


def _is_shapely(value: Any) -> bool:
    return type(value).__module__.startswith("shapely")


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def normalize_header(text: str) -> str:
    """A header or label reduced for tolerant matching (NFC, case, apostrophes, spaces)."""
    text = unicodedata.normalize("NFC", text).replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.split()).casefold()

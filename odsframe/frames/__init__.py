"""Pure parsing: ODS payloads and exports (bytes or dicts) into typed pandas/GeoPandas frames.

No network code lives here. ``schema`` describes fields and their dtypes, ``geo`` parses every
geometry encoding into shapely objects, ``records`` builds frames from JSON records and
``exports`` reads CSV, GeoJSON, JSON, JSON Lines and Parquet exports.
"""

from odsframe.frames.exports import (
    frame_from_csv,
    frame_from_export,
    frame_from_geojson,
    frame_from_json_export,
    frame_from_jsonl,
    frame_from_parquet,
    map_header,
)
from odsframe.frames.geo import parse_geometries, parse_points, parse_shapes, points_from_lonlat
from odsframe.frames.records import (
    cast_values,
    frame_from_records,
    label_columns,
    payload_generation,
    records_from_payload,
    records_from_v1,
    records_from_v20,
    records_from_v21,
    reindex_on_schema,
    to_geodataframe,
)
from odsframe.frames.schema import (
    TECHNICAL_FIELDS,
    FieldSpec,
    ValueCastWarning,
    as_fields,
    fields_frame,
    fields_from_metadata,
    infer_field,
    infer_fields,
    normalize_annotations,
    pandas_dtype,
)

__all__ = [
    "TECHNICAL_FIELDS",
    "FieldSpec",
    "ValueCastWarning",
    "as_fields",
    "cast_values",
    "fields_frame",
    "fields_from_metadata",
    "frame_from_csv",
    "frame_from_export",
    "frame_from_geojson",
    "frame_from_json_export",
    "frame_from_jsonl",
    "frame_from_parquet",
    "frame_from_records",
    "infer_field",
    "infer_fields",
    "label_columns",
    "map_header",
    "normalize_annotations",
    "pandas_dtype",
    "parse_geometries",
    "parse_points",
    "parse_shapes",
    "payload_generation",
    "points_from_lonlat",
    "records_from_payload",
    "records_from_v1",
    "records_from_v20",
    "records_from_v21",
    "reindex_on_schema",
    "to_geodataframe",
]

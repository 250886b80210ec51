"""Facts about the ODS APIs that both the client and the local portal need.

Nothing here does anything: it names field types, reserved words, limits and paths
(see ``shared/reference/ods-api.md``). Keep it import-free so either side can use it.
"""

from __future__ import annotations

#: Field types of dataset schemas (ods-api.md section 6.1).
FIELD_TYPES: frozenset[str] = frozenset(
    {
        "text",
        "int",
        "double",
        "boolean",
        "date",
        "datetime",
        "geo_point_2d",
        "geo_shape",
        "file",
        "json_blob",
    }
)
GEO_TYPES: frozenset[str] = frozenset({"geo_point_2d", "geo_shape"})
NUMERIC_TYPES: frozenset[str] = frozenset({"int", "double"})
TEMPORAL_TYPES: frozenset[str] = frozenset({"date", "datetime"})

#: ODSQL reserved words in v2.1 (field names equal to one of these need back-quotes).
RESERVED_WORDS_V21: frozenset[str] = frozenset(
    [
        "and",
        "as",
        "asc",
        "avg",
        "by",
        "count",
        "date_format",
        "day",
        "dayofweek",
        "desc",
        "distinct",
        "equi",
        "false",
        "group",
        "hour",
        "ifnull",
        "or",
        "limit",
        "lower",
        "max",
        "millisecond",
        "min",
        "minute",
        "month",
        "not",
        "null",
        "quarter",
        "range",
        "search",
        "second",
        "select",
        "sum",
        "top",
        "true",
        "upper",
        "where",
        "year",
    ]
)
#: v2.0 has the same list minus ``distinct``, ``ifnull`` and ``search``.
RESERVED_WORDS_V20: frozenset[str] = RESERVED_WORDS_V21 - {"distinct", "ifnull", "search"}

#: Records and catalog pages without group_by: -1 <= limit <= 100, offset + limit <= 10 000.
RECORDS_MAX_LIMIT = 100
RECORDS_MAX_WINDOW = 10_000
#: With group_by: limit <= 20 000 and offset + limit <= 20 000.
GROUP_BY_MAX_LIMIT = 20_000
#: Default page size when ``limit`` is not sent.
DEFAULT_LIMIT = 10

#: Values of the ``lang`` parameter.
LANGS: tuple[str, ...] = ("en", "fr", "nl", "pt", "it", "ar", "de", "es", "ca", "eu", "sv")
DEFAULT_LANG = "fr"

#: Dataset export formats of v2.1 (the spec's enum plus ical and mvt).
DATASET_EXPORT_FORMATS: tuple[str, ...] = (
    "csv",
    "fgb",
    "geojson",
    "gpx",
    "json",
    "jsonl",
    "jsonld",
    "kml",
    "n3",
    "ov2",
    "parquet",
    "rdfxml",
    "shp",
    "turtle",
    "xlsx",
)
CATALOG_EXPORT_FORMATS: tuple[str, ...] = (
    "csv",
    "data.json",
    "dcat",
    "dublin_core",
    "json",
    "rdf",
    "rss",
    "ttl",
    "xlsx",
)

#: Geo clustering: zoom range and default radius in pixels (ods-api.md section 7.2).
GEO_CLUSTER_MAX_ZOOM = 25
GEO_CLUSTER_DEFAULT_RADIUS = 40

#: Base paths per API generation.
EXPLORE_V21 = "/api/explore/v2.1"
EXPLORE_V20 = "/api/v2"
SEARCH_V1_RECORDS = "/api/records/1.0"
SEARCH_V1_DATASETS = "/api/datasets/1.0"

#: The header in which ODS announces deprecated behaviour.
DEPRECATION_HEADER = "ODS-Explore-API-Deprecation"

#: Quota error codes of the v1-style 429 body.
QUOTA_DOMAIN_LIMIT = 10002
QUOTA_ANONYMOUS_LIMIT = 10005

"""The local portal's data model: what a dataset is and how its records are stored.

This module is the contract between the three parts of the portal:

* ``catalog.py`` / ``sample.py`` build :class:`PortalDataset` objects and load their records
  into one DuckDB connection;
* ``engine.py`` turns ODSQL parameters into SQL over those tables (:class:`CompiledQuery`);
* ``server.py`` / ``serialize.py`` run the SQL and write ODS-shaped answers.

Storage convention (one DuckDB table per dataset, named :attr:`PortalDataset.table`):

==============  ===========================================================================
ODS type        DuckDB column (named exactly like the field)
==============  ===========================================================================
text            ``VARCHAR``; a multivalued text field is ``VARCHAR[]``
int             ``BIGINT``
double          ``DOUBLE``
boolean         ``BOOLEAN``
date            ``DATE`` (partial dates are stored as their first day; the field's
                :attr:`PortalField.date_precision` says how to write them back)
datetime        ``TIMESTAMPTZ`` (an instant; written in the request's timezone)
geo_point_2d    ``STRUCT(lon DOUBLE, lat DOUBLE)``
geo_shape       ``VARCHAR``: the GeoJSON *geometry* object as compact JSON text
file            ``JSON``: the ODS file object ``{id, filename, format, width, height,
                thumbnail, mimetype, color_summary?}``
json_blob       ``JSON``
==============  ===========================================================================

Hidden columns every table has (never returned as fields; names start with ``__``):

* ``__rowid`` ``BIGINT``: position in the source (0-based); the default order of exports
  and of records when no ``order_by`` is given.
* ``__id`` ``VARCHAR``: the record id (SHA1, ods-api.md section 8.4).
* ``__timestamp`` ``TIMESTAMPTZ``: the record timestamp (the source file's mtime, or the
  sample's fixed processing time).
* ``__fts`` ``VARCHAR``: lower-cased, accent-free text of every text value of the record joined by
  ``" "``, for full-text search.
* ``__bbox__<field>`` ``STRUCT(xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE)`` for
  each geo_shape field (null when the shape is null), for spatial pre-filtering.
* ``__enum__<field>``, an ``ENUM`` copy of a single-valued text field whose few values repeat
  (listed in :attr:`PortalDataset.enum_fields`): equality filters on it are several times
  faster than on ``VARCHAR``. Only filters use it; answers always read the text column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

DatePrecision = Literal["year", "month", "day"]

HIDDEN_ROWID = "__rowid"
HIDDEN_ID = "__id"
HIDDEN_TIMESTAMP = "__timestamp"
HIDDEN_FTS = "__fts"
HIDDEN_BBOX_PREFIX = "__bbox__"
HIDDEN_ENUM_PREFIX = "__enum__"


@dataclass
class PortalField:
    """One field of a dataset schema, in the v2.1 shape.

    ``annotations`` uses the v2.1 dict form: ``{"facet": [], "multivalued": [","],
    "timeserie_precision": ["month"], "hierarchical": ["/"], "id": [], ...}``; a v1 list of
    ``{"name", "args"}`` must be converted on load.
    """

    name: str
    type: str
    label: str = ""
    description: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name

    @property
    def multivalued(self) -> bool:
        return self.type == "text" and "multivalued" in self.annotations

    @property
    def multivalued_separator(self) -> str:
        args = self.annotations.get("multivalued") or [","]
        return str(args[0]) if args else ","

    @property
    def is_facet(self) -> bool:
        return "facet" in self.annotations

    @property
    def disjunctive(self) -> bool:
        return "disjunctive" in self.annotations

    @property
    def hierarchical_separator(self) -> str | None:
        if "hierarchical" not in self.annotations:
            return None
        args = self.annotations.get("hierarchical") or ["/"]
        return str(args[0]) if args else "/"

    @property
    def is_id(self) -> bool:
        return "id" in self.annotations

    @property
    def date_precision(self) -> DatePrecision:
        """``year``, ``month`` or ``day`` for date fields (from ``timeserie_precision``)."""
        args = self.annotations.get("timeserie_precision") or []
        if args and str(args[0]) in ("year", "month"):
            return str(args[0])  # type: ignore[return-value]
        return "day"

    def to_json(self) -> dict[str, Any]:
        """The field as a v2.1 ``fields[]`` item."""
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "annotations": self.annotations,
            "description": self.description,
        }


@dataclass
class PortalAttachment:
    """A file attached to a dataset (``/attachments``)."""

    id: str
    title: str
    mimetype: str
    path: Path


@dataclass
class PortalDataset:
    """A dataset served by the local portal.

    ``metas`` holds the metadata templates (``{"default": {...}, "dcat": {...}}``) exactly as a
    v2.1 ``GET /catalog/datasets/<id>`` returns them; ``metas["default"]`` always carries
    ``title``, ``records_count``, ``modified``, ``data_processed`` and ``metadata_processed``.
    ``files`` maps a file-field id to the local file holding its bytes.
    """

    dataset_id: str
    table: str
    fields: list[PortalField]
    metas: dict[str, dict[str, Any]]
    dataset_uid: str = ""
    visibility: Literal["domain", "restricted"] = "domain"
    features: list[str] = field(default_factory=list)
    attachments: list[PortalAttachment] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    alternative_exports: list[dict[str, Any]] = field(default_factory=list)
    source_path: Path | None = None
    processed_at: datetime | None = None
    #: Text fields with an ``__enum__<field>`` twin column (see the module docstring).
    enum_fields: set[str] = field(default_factory=set)

    def field(self, name: str) -> PortalField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def records_count(self) -> int:
        return int(self.metas.get("default", {}).get("records_count") or 0)

    @property
    def is_private(self) -> bool:
        return self.visibility == "restricted"


@dataclass
class OutputColumn:
    """One column of a query result and how to write it.

    ``type`` is an ODS field type, or one of the result-only kinds ``"cluster"`` (a
    ``STRUCT(lat, lon)`` written as ``{"cluster_centroid": {"lat", "lon"}}``), ``"range"``
    (a label string) and ``"number"`` (an aggregate that is int or double by value).
    ``sql_name`` is the column's name in :attr:`CompiledQuery.sql`; ``key`` is the key in the
    answer (the alias, the field name, or the expression text as written).
    """

    key: str
    sql_name: str
    type: str
    multivalued: bool = False
    date_precision: DatePrecision = "day"
    field: PortalField | None = None


@dataclass
class CompiledQuery:
    """SQL for one records (or catalog) request, produced by ``engine.compile_query``.

    ``sql`` selects exactly :attr:`columns` (by ``sql_name``), already filtered, grouped,
    ordered, and limited by ``limit``/``offset`` when they were given (``limit=None`` or -1
    means no LIMIT clause). ``count_sql`` returns one row with the total number of matching
    records (before limit/offset); it is ``None`` for grouped queries. ``params`` are the
    positional ``?`` parameters of both statements. ``where_sql`` is the boolean filter alone
    (``TRUE`` when empty), over the dataset table, for reuse by facets and exports.
    """

    sql: str
    columns: list[OutputColumn]
    params: list[Any] = field(default_factory=list)
    count_sql: str | None = None
    grouped: bool = False
    where_sql: str = "TRUE"
    where_params: list[Any] = field(default_factory=list)
    #: A two-step plan for one page of records (late materialisation), when the query is an
    #: ungrouped one with ``0 < limit``: ``keys_sql`` returns one row ``(total, rowids)``,
    #: the count and the page's ``__rowid`` values in order; ``rows_sql`` selects
    #: :attr:`columns` and ``__r`` (the ``__rowid``) for those rows, in no order, once
    #: ``engine.ROWIDS`` is replaced by the comma-separated ids (``rows_params`` are its
    #: parameters).
    #: Sorting only the keys and then reading the few rows asked for is much cheaper on wide
    #: tables than sorting whole rows.
    keys_sql: str | None = None
    keys_params: list[Any] = field(default_factory=list)
    rows_sql: str | None = None
    rows_params: list[Any] = field(default_factory=list)
    #: Called with the DuckDB connection before ``sql`` runs (for example to register the
    #: cluster assignment of a ``geo_cluster`` grouping as a temporary table).
    prepare: Callable[[Any], None] | None = None

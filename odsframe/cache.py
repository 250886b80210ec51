"""The on-disk cache of downloaded frames.

Three parts, kept apart so each can be tested on its own:

* **keys**: :func:`cache_key` hashes a canonical description of a query (portal, dataset,
  sorted parameters, API version, kind and, for private data, a one-way digest of the
  credential: never the credential itself);
* **the decision**: :func:`decide` is a pure function that says whether a cached entry may be
  served, must be fetched again, or may be served stale with a warning;
* **storage**: :func:`write_entry` / :func:`read_entry` store a frame as GeoParquet with its
  provenance, and :func:`info` / :func:`clear` list and remove entries.

Storage layout, under ``cache_dir() / "frames"``::

    <key>.<write-id>.parquet    the frame, with the entry's metadata in the parquet footer
    <key>.json                  the sidecar: the same metadata plus the name of the data file

Every file is written to a temporary file in the same folder and moved into place with
:func:`os.replace`. The data file has a unique name, so the sidecar replace is the single
commit point of an entry: a reader that finds a sidecar finds a complete data file, and two
processes writing the same key at once both succeed, the last commit winning. A sidecar that
is missing, unreadable or does not match its data file is a miss, never an error.

No network code lives here: the reader asks for a key, checks freshness with one metadata
request, calls :func:`decide` and then reads or writes.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from odsframe.errors import CacheError, InvalidQueryArgument

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CACHE_DIR_ENV",
    "Action",
    "CacheMode",
    "Decision",
    "Freshness",
    "cache_dir",
    "cache_key",
    "clear",
    "credential_digest",
    "decide",
    "info",
    "normalise_max_age",
    "normalise_mode",
    "normalise_portal",
    "read_entry",
    "read_meta",
    "scrub_secrets",
    "scrub_url",
    "set_cache_dir",
    "write_entry",
]

logger = logging.getLogger(__name__)

#: Environment variable that overrides the default cache location.
CACHE_DIR_ENV = "ODSFRAME_CACHE_DIR"
#: Version of the on-disk format; entries written with another version are misses.
FORMAT_VERSION = 1
#: Temporary files and unreferenced data files older than this are removed by clean-ups.
STALE_FILE_AGE = timedelta(hours=1)

CacheMode = Literal["use", "refresh", "off"]

_FRAMES_FOLDER = "frames"
_META_KEY = b"odsframe"
_TMP_PREFIX = ".tmp-"
# Marks pd.NA in JSON-encoded columns: not valid JSON, so no real value can look like it.
_NA_CELL = "NA"
_JSON_CELL_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# A reader retries this often when writers keep replacing the entry it is reading.
_READ_ATTEMPTS = 10
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_DATA_FILE_RE = re.compile(r"^(?P<key>[0-9a-f]{64})\.(?P<write_id>[0-9a-f]{32})\.parquet$")
_CREDENTIAL_SALT = b"odsframe-cache-credential-v1"
_CREDENTIAL_ROUNDS = 100_000

# Names (lower case, without "-" and "_") whose values are secrets and never reach the disk.
_SECRET_NAMES = frozenset(
    {
        "apikey",
        "xapikey",
        "authorization",
        "proxyauthorization",
        "auth",
        "password",
        "passwd",
        "token",
        "accesstoken",
        "refreshtoken",
        "secret",
        "clientsecret",
        "credential",
        "credentials",
        "credentialdigest",
        "cookie",
        "setcookie",
    }
)

# "apikey=..." (and the like) at the start of a string or after "?" or "&".
_SECRET_ASSIGNMENT_RE = re.compile(
    r"(?:^|[?&])(?:api[-_]?key|x[-_]api[-_]key|(?:access[-_]|refresh[-_])?token|password|secret)=",
    re.IGNORECASE,
)

_cache_dir_override: Path | None = None


# --------------------------------------------------------------------------------------------
# Location


def set_cache_dir(path: str | os.PathLike[str] | None) -> None:
    """Set the cache folder for this process (``None`` goes back to the default).

    Parameters
    ----------
    path
        The folder; it is created on first write. Takes precedence over ``ODSFRAME_CACHE_DIR``.
    """
    global _cache_dir_override
    if path is None:
        _cache_dir_override = None
        return
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise CacheError(f"cache folder must be a non-empty path, got {path!r}")
    _cache_dir_override = Path(path).expanduser()


def cache_dir() -> Path:
    """Return the cache folder.

    The folder set with :func:`set_cache_dir`, else ``$ODSFRAME_CACHE_DIR``, else the user
    cache folder of the platform (``platformdirs.user_cache_dir("odsframe")``).
    """
    if _cache_dir_override is not None:
        return _cache_dir_override
    from_env = os.environ.get(CACHE_DIR_ENV)
    if from_env:
        return Path(from_env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("odsframe"))


def _frames_dir(*, create: bool) -> Path:
    folder = cache_dir() / _FRAMES_FOLDER
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CacheError(
                f"cannot create the cache folder {folder} ({error}); set {CACHE_DIR_ENV} "
                "or odsframe.cache.set_cache_dir() to a writable folder, or pass cache=False"
            ) from error
        if not os.access(folder, os.W_OK):
            raise CacheError(
                f"the cache folder {folder} is not writable; set {CACHE_DIR_ENV} or "
                "odsframe.cache.set_cache_dir() to a writable folder, or pass cache=False"
            )
    return folder


# --------------------------------------------------------------------------------------------
# Keys and secrets


def _is_secret_name(name: object) -> bool:
    return isinstance(name, str) and name.lower().replace("-", "").replace("_", "") in _SECRET_NAMES


def normalise_portal(portal: str) -> str:
    """Return the canonical form of a portal address.

    ``"Data.Example.com/"`` and ``"https://data.example.com"`` both give
    ``"https://data.example.com"``; a user name or password in the address is dropped.
    """
    if not isinstance(portal, str) or not portal.strip():
        raise CacheError(f"portal must be a non-empty string, got {portal!r}")
    text = portal.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if not parts.hostname:
        raise CacheError(f"portal {portal!r} has no host name")
    host = parts.hostname.lower()
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def credential_digest(credential: str) -> str:
    """Return a salted one-way digest of a credential, for :func:`cache_key`.

    Entries fetched with different credentials get different keys, and neither the key nor
    any file of the cache lets anyone recover the credential.
    """
    if not isinstance(credential, str) or not credential:
        raise CacheError("credential must be a non-empty string")
    digest = hashlib.pbkdf2_hmac(
        "sha256", credential.encode("utf-8"), _CREDENTIAL_SALT, _CREDENTIAL_ROUNDS
    )
    return digest.hex()


def cache_key(
    *,
    portal: str,
    dataset: str,
    params: Iterable[tuple[str, str]],
    api_version: str,
    kind: str = "records",
    credential_digest: str | None = None,
) -> str:
    """Return the cache key of a query: the sha256 hex digest of its canonical description.

    Parameters
    ----------
    portal
        Portal address; normalised with :func:`normalise_portal`.
    dataset
        Dataset identifier.
    params
        Query parameters as ``(name, value)`` pairs; their order does not matter. A secret
        parameter (``apikey`` and the like) is refused: pass ``credential_digest`` instead.
    api_version
        API generation, e.g. ``"v2.1"``.
    kind
        What was fetched (``"records"``, ``"export"``, ``"aggregate"``...).
    credential_digest
        :func:`credential_digest` of the credential used for private data, else ``None``.
    """
    for name, value in (("dataset", dataset), ("api_version", api_version), ("kind", kind)):
        if not isinstance(value, str) or not value:
            raise CacheError(f"{name} must be a non-empty string, got {value!r}")
    pairs: list[tuple[str, str]] = []
    for pair in params:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise CacheError(f"query parameters must be (name, value) pairs, got {pair!r}")
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise CacheError(f"query parameter names and values must be strings, got {pair!r}")
        if _is_secret_name(name):
            raise CacheError(
                f"query parameter {name!r} is a credential and cannot be part of a cache key; "
                "pass credential_digest=odsframe.cache.credential_digest(key) instead"
            )
        pairs.append((name, value))
    if credential_digest is not None and (
        not isinstance(credential_digest, str) or not credential_digest
    ):
        raise CacheError("credential_digest must be a non-empty string or None")
    canonical = json.dumps(
        {
            "portal": normalise_portal(portal),
            "dataset": dataset,
            "params": sorted(pairs),
            "api_version": api_version,
            "kind": kind,
            "credential_digest": credential_digest,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _is_secret_segment(segment: str) -> bool:
    return _is_secret_name(unquote_plus(segment.split("=", 1)[0]))


def _scrub_query(query: str) -> str:
    # Filter the raw segments so that what is kept keeps its original encoding.
    return "&".join(seg for seg in query.split("&") if seg and not _is_secret_segment(seg))


def scrub_url(url: str) -> str:
    """Return ``url`` without secret query parameters (``apikey``...) or user name and password.

    Anything else, the encoding of the other parameters included, is left as it is.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    secret_in_query = any(_is_secret_segment(seg) for seg in parts.query.split("&") if seg)
    if "@" not in parts.netloc and not secret_in_query:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = _scrub_query(parts.query) if secret_in_query else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _scrub_text(text: str) -> str:
    if "://" in text:
        return scrub_url(text)
    if _SECRET_ASSIGNMENT_RE.search(text):
        # A bare query string such as "where=x&apikey=...".
        prefix = "?" if text.startswith("?") else ""
        return prefix + _scrub_query(text.removeprefix("?"))
    return text


def scrub_secrets(value: Any) -> Any:
    """Return a copy of ``value`` without secrets.

    Mapping entries and ``(name, value)`` pairs whose name is a credential (``apikey``,
    ``authorization``, ``token``...) are dropped, and URLs lose their secret parameters.
    """
    if isinstance(value, Mapping):
        return {k: scrub_secrets(v) for k, v in value.items() if not _is_secret_name(k)}
    if isinstance(value, list | tuple):
        kept = [
            scrub_secrets(item)
            for item in value
            if not (isinstance(item, list | tuple) and len(item) == 2 and _is_secret_name(item[0]))
        ]
        return type(value)(kept) if isinstance(value, tuple) else kept
    if isinstance(value, str):
        return _scrub_text(value)
    return value


# --------------------------------------------------------------------------------------------
# The decision


class Action(enum.Enum):
    """What to do with a query whose result may be cached."""

    FETCH = "fetch"
    USE = "use"
    USE_STALE_WITH_WARNING = "use_stale_with_warning"


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: an :class:`Action` and why."""

    action: Action
    reason: str

    @property
    def serves_cache(self) -> bool:
        """Whether the cached entry is served (fresh or stale)."""
        return self.action is not Action.FETCH


@dataclass(frozen=True)
class Freshness:
    """What tells whether a dataset changed: ODS ``metas`` plus when they were read.

    Parameters
    ----------
    data_processed
        ``metas.default.data_processed``: when the data was last (re)processed.
    records_count
        ``metas.default.records_count``.
    modified
        ``metas.default.modified``; compared only when the other two are unknown.
    fetched_at
        When the data of a cached entry was fetched (tz-aware); unused for current metas.
    """

    data_processed: str | None = None
    records_count: int | None = None
    modified: str | None = None
    fetched_at: datetime | None = None

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Freshness:
        """Build the freshness of a cached entry from its metadata (see :func:`read_meta`)."""
        return cls(
            data_processed=_optional_str(meta.get("data_processed")),
            records_count=_optional_int(meta.get("records_count")),
            modified=_optional_str(meta.get("modified")),
            fetched_at=_parse_datetime(meta.get("fetched_at")),
        )

    @classmethod
    def from_ods_metas(
        cls, metas: Mapping[str, Any], *, fetched_at: datetime | None = None
    ) -> Freshness:
        """Build a freshness from ODS dataset ``metas`` (v2 ``{"default": {...}}`` or v1 flat)."""
        default = metas.get("default")
        source: Mapping[str, Any] = default if isinstance(default, Mapping) else metas
        return cls(
            data_processed=_optional_str(source.get("data_processed")),
            records_count=_optional_int(source.get("records_count")),
            modified=_optional_str(source.get("modified")),
            fetched_at=fetched_at,
        )

    @property
    def is_known(self) -> bool:
        """Whether any field that can reveal a change is set."""
        return any(v is not None for v in (self.data_processed, self.records_count, self.modified))


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _optional_int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _parse_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def _same_instant(cached: str | None, current: str | None) -> bool:
    if cached == current:
        return True
    if cached is None or current is None:
        return False
    cached_dt, current_dt = _parse_datetime(cached), _parse_datetime(current)
    return cached_dt is not None and cached_dt == current_dt


def _changes(cached: Freshness, current: Freshness) -> list[str]:
    """Describe how ``current`` differs from ``cached`` (empty when it looks unchanged)."""
    changes = []
    if current.data_processed is not None and not _same_instant(
        cached.data_processed, current.data_processed
    ):
        changes.append(f"data_processed {cached.data_processed} -> {current.data_processed}")
    if current.records_count is not None and cached.records_count != current.records_count:
        changes.append(f"records_count {cached.records_count} -> {current.records_count}")
    # ``modified`` also moves on metadata edits, so it only counts when nothing better exists.
    if (
        current.data_processed is None
        and current.records_count is None
        and not _same_instant(cached.modified, current.modified)
    ):
        changes.append(f"modified {cached.modified} -> {current.modified}")
    return changes


def normalise_mode(cache: bool | str) -> CacheMode:
    """Turn a ``cache=`` argument (``True``, ``False``, ``"refresh"``...) into a mode."""
    if cache is True:
        return "use"
    if cache is False:
        return "off"
    if cache in ("use", "refresh", "off"):
        return cache  # type: ignore[return-value]
    raise InvalidQueryArgument(
        f"cache must be True, False, 'use', 'refresh' or 'off', got {cache!r}"
    )


def normalise_max_age(max_age: timedelta | float | None) -> timedelta | None:
    """Turn a ``max_age=`` argument (a timedelta or seconds) into a timedelta, or ``None``."""
    if max_age is None:
        return None
    if isinstance(max_age, bool):
        raise InvalidQueryArgument(f"max_age must be a timedelta or seconds, got {max_age!r}")
    if isinstance(max_age, int | float):
        max_age = timedelta(seconds=max_age)
    if not isinstance(max_age, timedelta):
        raise InvalidQueryArgument(f"max_age must be a timedelta or seconds, got {max_age!r}")
    if max_age < timedelta(0):
        raise InvalidQueryArgument(f"max_age must not be negative, got {max_age}")
    return max_age


def decide(
    entry: Freshness | Mapping[str, Any] | None,
    *,
    current: Freshness | None,
    reachable: bool,
    max_age: timedelta | None,
    mode: CacheMode,
    now: datetime,
) -> Decision:
    """Decide whether to serve a cached entry, fetch again, or serve it stale.

    Pure: no clock, no disk, no network.

    Parameters
    ----------
    entry
        The cached entry's freshness, or its metadata (:func:`read_meta`), or ``None`` when
        there is no entry.
    current
        The dataset's freshness as the portal reports it now, or ``None`` when it could not
        be read.
    reachable
        Whether the portal answered the metadata request.
    max_age
        Oldest entry to serve even when the dataset looks unchanged (real-time datasets).
    mode
        ``"use"`` (the default), ``"refresh"`` (always fetch) or ``"off"`` (no cache).
    now
        The current time, tz-aware.
    """
    if mode not in ("use", "refresh", "off"):
        raise CacheError(f"mode must be 'use', 'refresh' or 'off', got {mode!r}")
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise CacheError(f"now must be a timezone-aware datetime, got {now!r}")
    if max_age is not None and (not isinstance(max_age, timedelta) or max_age < timedelta(0)):
        raise CacheError(f"max_age must be a non-negative timedelta or None, got {max_age!r}")

    if mode == "off":
        return Decision(Action.FETCH, "cache disabled (cache=False)")
    if mode == "refresh":
        return Decision(Action.FETCH, "refresh requested (cache='refresh')")
    if entry is None:
        return Decision(Action.FETCH, "not in cache")
    cached = entry if isinstance(entry, Freshness) else Freshness.from_meta(entry)

    age = None if cached.fetched_at is None else now - cached.fetched_at
    too_old = max_age is not None and (age is None or age > max_age)
    age_text = "of unknown age" if age is None else f"fetched {_format_age(age)} ago"

    if not reachable:
        if too_old:
            return Decision(
                Action.USE_STALE_WITH_WARNING,
                f"portal unreachable: serving a cached entry {age_text}, older than "
                f"max_age={max_age}",
            )
        return Decision(
            Action.USE_STALE_WITH_WARNING,
            f"portal unreachable: serving a cached entry {age_text} whose freshness "
            "could not be checked",
        )
    if too_old:
        return Decision(Action.FETCH, f"cached entry {age_text}, older than max_age={max_age}")
    if current is None or not current.is_known:
        if max_age is not None:
            return Decision(
                Action.USE,
                f"portal gives no freshness metadata; cached entry {age_text} is within "
                f"max_age={max_age}",
            )
        return Decision(
            Action.FETCH, "portal gives no freshness metadata to check the cached entry against"
        )
    changes = _changes(cached, current)
    if changes:
        return Decision(Action.FETCH, "dataset changed: " + ", ".join(changes))
    return Decision(
        Action.USE,
        f"dataset unchanged (data_processed={current.data_processed}, "
        f"records_count={current.records_count}); cached entry {age_text}",
    )


def _format_age(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


# --------------------------------------------------------------------------------------------
# JSON with the few Python types that attrs and provenance hold


def _encode_tagged(value: Any) -> Any:
    """Make ``value`` JSON-ready, tagging timestamps, dates and tuples so they come back."""
    import pandas as pd

    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CacheError(f"metadata keys must be strings, got {k!r}")
            out[k] = _encode_tagged(v)
        return out
    if isinstance(value, list):
        return [_encode_tagged(v) for v in value]
    if isinstance(value, tuple):
        return {"__odsframe__": "tuple", "items": [_encode_tagged(v) for v in value]}
    if isinstance(value, pd.Timestamp):
        return {"__odsframe__": "timestamp", "value": value.isoformat()}
    if isinstance(value, datetime):
        return {"__odsframe__": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"__odsframe__": "date", "value": value.isoformat()}
    if isinstance(value, timedelta):
        return {"__odsframe__": "timedelta", "seconds": value.total_seconds()}
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise CacheError(f"cannot store {type(value).__name__} value {value!r} in cache metadata")


def _decode_tagged(value: Any) -> Any:
    if isinstance(value, dict):
        tag = value.get("__odsframe__")
        if tag == "tuple":
            return tuple(_decode_tagged(v) for v in value["items"])
        if tag == "timestamp":
            import pandas as pd

            return pd.Timestamp(value["value"])
        if tag == "datetime":
            return datetime.fromisoformat(value["value"])
        if tag == "date":
            return date.fromisoformat(value["value"])
        if tag == "timedelta":
            return timedelta(seconds=value["seconds"])
        return {k: _decode_tagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_tagged(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Frame <-> arrow table


def _geopandas_if_loaded() -> Any:
    # A GeoDataFrame or shapely value can only exist if its library was imported already.
    return sys.modules.get("geopandas")


def _is_geometry_dtype(dtype: Any) -> bool:
    return getattr(dtype, "name", None) == "geometry" and type(dtype).__module__.startswith(
        "geopandas"
    )


def _all_shapely(values: Any) -> bool:
    shapely = sys.modules.get("shapely")
    if shapely is None:
        return False
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, shapely.Geometry) for v in present)


def _encode_json_cells(values: Any) -> list[str | None]:
    """One JSON text per value; ``None`` stays a null and ``pd.NA`` gets its own marker."""
    import pandas as pd

    encode = _JSON_CELL_ENCODER.encode
    na = pd.NA
    return [None if v is None else _NA_CELL if v is na else encode(v) for v in values]


def _encode_object_column(series: pd.Series) -> tuple[str, Any]:
    """Pick the encoding of an object column and return it with the values to write."""
    import pandas as pd

    values = series.to_numpy(dtype=object)
    if _all_shapely(values):
        import shapely

        return "shapely", shapely.to_wkb(values)
    if len(values) and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return "native", values
    if len(values) and all(v is None or type(v) is list for v in values):
        # Multivalued text fields: an arrow list<string> column is much faster than JSON.
        import pyarrow as pa

        try:
            return "str_lists", pa.array(values, type=pa.list_(pa.string()))
        except (pa.ArrowException, TypeError, ValueError):
            pass
    try:
        return "json", _encode_json_cells(values)
    except (TypeError, ValueError):
        pass
    # Bytes, decimals, dates...: values arrow knows (and turns back into the same objects).
    import pyarrow as pa

    try:
        pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError) as error:
        kinds = sorted({type(v).__name__ for v in values if v is not None})
        raise CacheError(
            f"values of type {', '.join(kinds)} cannot be stored in parquet ({error})"
        ) from error
    return "native", values


#: shapely's geometry type ids -> GeoParquet geometry type names.
_GEOMETRY_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LineString",  # LinearRing
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def _plain_points(present: Any, type_ids: list[int]) -> bool:
    """Whether geometries are all 2D, non-empty points (GeoArrow's point encoding fits)."""
    import shapely

    return (
        type_ids == [0] and not shapely.has_z(present).any() and not shapely.is_empty(present).any()
    )


def _point_struct(values: Any, missing: Any) -> Any:
    """GeoArrow ``point``: a ``struct<x, y>`` array, null where the geometry is missing."""
    import numpy as np
    import pyarrow as pa
    import shapely

    x = np.zeros(len(values))
    y = np.zeros(len(values))
    present = ~missing
    x[present] = shapely.get_x(values[present])
    y[present] = shapely.get_y(values[present])
    mask = pa.array(missing) if missing.any() else None
    return pa.StructArray.from_arrays(
        [pa.array(x), pa.array(y)],
        fields=[
            pa.field("x", pa.float64(), nullable=False),
            pa.field("y", pa.float64(), nullable=False),
        ],
        mask=mask,
    )


def _points_from_struct(column: Any) -> Any:
    """Shapely points (None where null) from a GeoArrow ``point`` column."""
    import numpy as np
    import pyarrow as pa
    import shapely

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    x = array.field("x").to_numpy(zero_copy_only=False)
    y = array.field("y").to_numpy(zero_copy_only=False)
    if not array.null_count:
        return shapely.points(x, y)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    result = np.full(len(array), None, dtype=object)
    result[valid] = shapely.points(x[valid], y[valid])
    return result


def _frame_to_table(frame: pd.DataFrame, meta: dict[str, Any]) -> Any:
    """Convert ``frame`` to an arrow table; fill ``meta["columns"]`` with how to restore it."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    gpd = _geopandas_if_loaded()
    is_geo = gpd is not None and isinstance(frame, gpd.GeoDataFrame)
    active = frame._geometry_column_name if is_geo else None
    if active is not None and active not in list(frame.columns):
        active = None

    columns: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    arrow_columns: dict[str, Any] = {}
    geo_columns: dict[str, Any] = {}
    for position in range(frame.shape[1]):
        name = frame.columns[position]
        if not isinstance(name, str):
            raise CacheError(f"column names must be strings to be cached, got {name!r}")
        series = frame.iloc[:, position]
        dtype = series.dtype
        spec: dict[str, Any] = {"name": name, "dtype": str(dtype)}
        if _is_geometry_dtype(dtype):
            import shapely

            crs = getattr(series, "crs", None)
            spec["encoding"] = "geometry"
            spec["crs"] = crs.to_json_dict() if crs is not None else None
            values = series.to_numpy(dtype=object)
            missing = shapely.is_missing(values)
            present = values[~missing]
            # Vectorised: iterating a million geometries' type names one by one takes seconds.
            type_ids: list[int] = (
                np.unique(shapely.get_type_id(present)).tolist() if len(present) else []
            )
            if _plain_points(present, type_ids):
                # GeoArrow's native point encoding: read back (shapely.points on two float
                # columns) and written several times faster than WKB.
                spec["encoding"] = "geometry_points"
                arrow_columns[name] = _point_struct(values, missing)
                data[name] = np.full(len(frame), None, dtype=object)
            else:
                data[name] = shapely.to_wkb(values)
            geo_columns[name] = {
                "encoding": "point" if spec["encoding"] == "geometry_points" else "WKB",
                "geometry_types": sorted(_GEOMETRY_TYPE_NAMES[i] for i in type_ids),
                "crs": spec["crs"],
            }
            bounds = [float(v) for v in shapely.total_bounds(present)] if len(present) else []
            if bounds and all(math.isfinite(v) for v in bounds):
                geo_columns[name]["bbox"] = bounds
        elif pd.api.types.is_object_dtype(dtype):
            try:
                spec["encoding"], data[name] = _encode_object_column(series)
            except CacheError as error:
                raise CacheError(f"cannot cache column {name!r}: {error}") from error
            if isinstance(data[name], pa.Array):
                # Already in arrow: a cheap all-null stand-in goes through pandas instead.
                arrow_columns[name] = data[name]
                data[name] = np.full(len(frame), None, dtype=object)
        elif isinstance(dtype, pd.ArrowDtype):
            # Written and read as arrow (pandas' metadata cannot name nested arrow types).
            spec["encoding"] = "arrow"
            arrow_columns[name] = pa.array(series.array)
            data[name] = np.full(len(frame), None, dtype=object)
        else:
            spec["encoding"] = "native"
            data[name] = series.array
            if isinstance(dtype, pd.CategoricalDtype):
                # Parquet keeps only the categories that occur; unused ones come back from here.
                spec["categories"] = _encode_tagged(list(dtype.categories))
                spec["categories_dtype"] = str(dtype.categories.dtype)
                spec["ordered"] = bool(dtype.ordered)
        columns.append(spec)
    meta["columns"] = columns
    meta["geometry"] = active
    freq = getattr(frame.index, "freqstr", None)
    meta["index_freq"] = freq if isinstance(frame.index, pd.DatetimeIndex) else None

    plain = pd.DataFrame(data, index=frame.index, columns=list(data))
    plain.columns.name = frame.columns.name
    # pyarrow copies DataFrame.attrs into the parquet footer: they go (scrubbed) in our meta.
    plain.attrs = {}
    try:
        table = pa.Table.from_pandas(plain, preserve_index=None)
    except (pa.ArrowException, TypeError, ValueError) as error:
        raise CacheError(f"cannot convert the frame to parquet: {error}") from error
    for name, array in arrow_columns.items():
        position = table.schema.get_field_index(name)
        table = table.set_column(position, pa.field(name, array.type), array)

    metadata = dict(table.schema.metadata or {})
    metadata.pop(b"PANDAS_ATTRS", None)
    pandas_meta = json.loads(metadata.get(b"pandas", b"{}"))
    if pandas_meta.pop("attributes", None) is not None:
        metadata[b"pandas"] = json.dumps(pandas_meta).encode("utf-8")
    if active is not None:
        native = any(c["encoding"] != "WKB" for c in geo_columns.values())
        metadata[b"geo"] = json.dumps(
            {
                "version": "1.1.0" if native else "1.0.0",
                "primary_column": active,
                "columns": geo_columns,
            }
        ).encode("utf-8")
    return table.replace_schema_metadata(metadata)


def _table_to_frame(table: Any, meta: Mapping[str, Any]) -> pd.DataFrame:
    """Rebuild the frame written by :func:`_frame_to_table`."""
    import pandas as pd

    specs = meta["columns"]
    names = [spec["name"] for spec in specs]
    if len(set(names)) != len(names) or not set(names) <= set(table.column_names):
        raise CacheError("the data file's columns do not match its metadata")
    # Encoded columns are decoded from arrow (nulls stay None), the rest goes through pandas.
    encoded = [spec["name"] for spec in specs if spec["encoding"] != "native"]
    raw_values = {
        spec["name"]: table.column(spec["name"]).to_pylist()
        if spec["encoding"] == "str_lists"
        else table.column(spec["name"])
        if spec["encoding"] in ("arrow", "geometry_points")
        else table.column(spec["name"]).to_numpy(zero_copy_only=False)
        for spec in specs
        if spec["encoding"] != "native"
    }
    frame = table.drop_columns(encoded).to_pandas()
    restored: dict[str, Any] = {}
    for spec in specs:
        name, encoding = spec["name"], spec["encoding"]
        if encoding in ("geometry", "geometry_points"):
            import geopandas
            import shapely
            from pyproj import CRS

            crs = CRS.from_json_dict(spec["crs"]) if spec["crs"] is not None else None
            geometries = (
                _points_from_struct(raw_values[name])
                if encoding == "geometry_points"
                else shapely.from_wkb(raw_values[name])
            )
            # Wrapped, not copied: a million-element copy per layer is measurable.
            restored[name] = geopandas.GeoSeries(
                geopandas.array.from_shapely(geometries, crs=crs), copy=False
            )
        elif encoding == "arrow":
            import pyarrow as pa

            column = raw_values[name]
            if isinstance(column, pa.ChunkedArray) and column.num_chunks > 1:
                column = column.combine_chunks()
            restored[name] = pd.Series(pd.arrays.ArrowExtensionArray(column))
        elif encoding == "shapely":
            import shapely

            restored[name] = pd.Series(shapely.from_wkb(raw_values[name]), dtype=object)
        elif encoding == "str_lists":
            restored[name] = pd.Series(raw_values[name], dtype=object)
        elif encoding == "json":
            decode = json.JSONDecoder().decode
            values = [
                None if v is None else pd.NA if v == _NA_CELL else decode(v)
                for v in raw_values[name]
            ]
            restored[name] = pd.Series(values, dtype=object)
        elif encoding == "native":
            series = frame[name].reset_index(drop=True)
            if "categories" in spec:
                categories = pd.Index(
                    _decode_tagged(spec["categories"]), dtype=spec["categories_dtype"]
                )
                series = series.astype(pd.CategoricalDtype(categories, ordered=spec["ordered"]))
            elif str(series.dtype) != spec["dtype"]:
                series = series.astype(spec["dtype"])
            restored[name] = series
        else:
            raise CacheError(f"unknown column encoding {encoding!r}")

    # Series on a fresh RangeIndex: no alignment (duplicate labels) and no dtype inference.
    # No copy: the arrays are ours alone (copy-on-write protects them anyway).
    result = pd.DataFrame(restored, copy=False)
    index = frame.index
    if meta.get("index_freq") and isinstance(index, pd.DatetimeIndex):
        # Parquet does not keep an index's frequency.
        index = pd.DatetimeIndex(index, freq=meta["index_freq"])
    result.index = index
    result.columns.name = frame.columns.name
    if meta.get("kind") == "GeoDataFrame":
        import geopandas

        result = geopandas.GeoDataFrame(result, geometry=meta.get("geometry"), copy=False)
    result.attrs = _decode_tagged(meta.get("attrs") or {})
    return result


# --------------------------------------------------------------------------------------------
# Files


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise CacheError(f"cache key must be 64 lower-case hex digits (see cache_key), got {key!r}")
    return key


def _sidecar_path(folder: Path, key: str) -> Path:
    return folder / f"{key}.json"


def _temp_path(folder: Path, final_name: str) -> Path:
    return folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}-{final_name}"


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace(source: Path, target: Path) -> None:
    """``os.replace`` that retries briefly: Windows refuses while a reader holds the target."""
    for attempt in range(10):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        logger.debug("could not remove %s: %s", path, error)
        return False
    return True


def _write_atomically(folder: Path, final_name: str, write: Any) -> Path:
    """Write through ``write(file)`` to a temp file in ``folder``, then move it into place."""
    temp = _temp_path(folder, final_name)
    try:
        with open(temp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        target = folder / final_name
        _replace(temp, target)
    except BaseException:
        _remove(temp)
        raise
    return target


def _utc_iso(value: object) -> str:
    parsed = _parse_datetime(value)
    if parsed is None:
        raise CacheError(f"fetched_at must be a datetime or an ISO 8601 string, got {value!r}")
    return parsed.astimezone(UTC).isoformat()


def _build_meta(key: str, frame: pd.DataFrame, provenance: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(provenance, Mapping):
        raise CacheError(f"provenance must be a mapping, got {type(provenance).__name__}")
    clean = scrub_secrets(dict(provenance))
    portal = clean.get("portal")
    if isinstance(portal, str) and portal:
        portal = clean["portal"] = normalise_portal(portal)
    fetched_at = clean.pop("fetched_at", None) or datetime.now(UTC)
    gpd = _geopandas_if_loaded()
    kind = (
        "GeoDataFrame" if gpd is not None and isinstance(frame, gpd.GeoDataFrame) else "DataFrame"
    )
    meta: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "key": key,
        "write_id": uuid.uuid4().hex,
        "kind": kind,
        "portal": portal if isinstance(portal, str) and portal else None,
        "dataset": _optional_str(clean.get("dataset")),
        "api_version": _optional_str(clean.get("api_version")),
        "fetched_at": _utc_iso(fetched_at),
        "data_processed": _optional_str(clean.get("data_processed")),
        "records_count": _optional_int(clean.get("records_count")),
        "modified": _optional_str(clean.get("modified")),
        "rows": len(frame),
        "provenance": _encode_tagged(clean),
        "attrs": _encode_tagged(scrub_secrets(dict(frame.attrs))),
    }
    return meta


def write_entry(key: str, frame: pd.DataFrame, provenance: Mapping[str, Any]) -> Path:
    """Store ``frame`` under ``key`` and return the path of its data file.

    Parameters
    ----------
    key
        From :func:`cache_key`.
    frame
        A DataFrame or GeoDataFrame; dtypes, geometry columns, CRS and ``attrs`` survive.
    provenance
        Where the frame comes from: ``portal``, ``dataset``, ``api_version``, ``params``,
        ``url``, ``fetched_at`` (default: now), ``data_processed``, ``records_count``,
        ``modified``... Secrets (``apikey`` parameters, ``Authorization`` headers...) are
        removed before anything is written, from here and from ``frame.attrs``.

    Raises
    ------
    CacheError
        When the folder is not writable or the frame holds values parquet cannot store.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = _check_key(key)
    if not isinstance(frame, pd.DataFrame):
        raise CacheError(f"only DataFrames can be cached, got {type(frame).__name__}")
    folder = _frames_dir(create=True)
    meta = _build_meta(key, frame, provenance)
    table = _frame_to_table(frame, meta)
    metadata = dict(table.schema.metadata or {})
    metadata[_META_KEY] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
    table = table.replace_schema_metadata(metadata)

    data_name = f"{key}.{meta['write_id']}.parquet"
    sidecar = _sidecar_path(folder, key)
    previous = _read_sidecar(sidecar)
    if not _valid_sidecar(previous, key):
        previous = None
    try:
        data_path = _write_atomically(
            folder, data_name, lambda handle: pq.write_table(table, handle, compression="zstd")
        )
        sidecar_meta = {**meta, "data_file": data_name}
        payload = json.dumps(sidecar_meta, ensure_ascii=False, indent=1).encode("utf-8")
        _write_atomically(folder, sidecar.name, lambda handle: handle.write(payload))
    except (OSError, ValueError, pa.ArrowException) as error:
        _remove(folder / data_name)
        raise CacheError(f"cannot write cache entry {key} in {folder}: {error}") from error
    _fsync_folder(folder)

    # The entry we replaced is committed, so nobody still needs its data file.
    if previous is not None and previous["data_file"] != data_name:
        _remove(folder / previous["data_file"])
    _remove_unreferenced_data(folder, key, keep=data_name)
    logger.debug("cached %d rows as %s", len(frame), data_path)
    return data_path


def _remove_unreferenced_data(folder: Path, key: str, *, keep: str) -> None:
    # Data files of concurrent writers that have not committed yet are recent: leave them.
    cutoff = time.time() - STALE_FILE_AGE.total_seconds()
    for path in folder.glob(f"{key}.*.parquet"):
        if path.name != keep and _mtime(path) < cutoff:
            _remove(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return float("inf")


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar's metadata, or ``None`` when missing or unreadable (never raises)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def _valid_sidecar(meta: Mapping[str, Any] | None, key: str) -> bool:
    if meta is None or meta.get("format") != FORMAT_VERSION or meta.get("key") != key:
        return False
    match = _DATA_FILE_RE.match(str(meta.get("data_file", "")))
    return (
        match is not None
        and match["key"] == key
        and match["write_id"] == meta.get("write_id")
        and isinstance(meta.get("columns"), list)
    )


def _sidecar_bytes(folder: Path, key: str) -> bytes | None:
    try:
        return _sidecar_path(folder, key).read_bytes()
    except OSError:
        return None


def _discard(folder: Path, key: str, seen: bytes | None, why: str) -> None:
    """Remove a broken entry, unless another process rewrote it since we looked."""
    sidecar = _sidecar_path(folder, key)
    current = _sidecar_bytes(folder, key)
    if current is not None and current != seen:
        return
    logger.info("removing broken cache entry %s: %s", key, why)
    meta = None
    if current is not None:
        with contextlib.suppress(ValueError):
            meta = json.loads(current)
    _remove(sidecar)
    if isinstance(meta, dict) and _DATA_FILE_RE.match(str(meta.get("data_file", ""))):
        _remove(folder / str(meta["data_file"]))


def read_meta(key: str) -> dict[str, Any] | None:
    """Return the metadata of the entry ``key`` without reading its data, or ``None``.

    Cheap (one small JSON file): enough for :func:`decide`. A broken sidecar is removed.
    """
    key = _check_key(key)
    folder = _frames_dir(create=False)
    loaded = _load_sidecar(folder, key)
    return None if loaded is None else loaded[0]


def _load_sidecar(folder: Path, key: str) -> tuple[dict[str, Any], bytes] | None:
    """The valid sidecar of ``key`` and its raw bytes; a broken one is removed."""
    raw = _sidecar_bytes(folder, key)
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or not _valid_sidecar(meta, key):
        _discard(folder, key, raw, "unreadable or outdated sidecar")
        return None
    return meta, raw


def _read_table(path: Path, *, geo: bool) -> Any:
    """``pyarrow.parquet.read_table(path)``; for a GeoDataFrame, the geo libraries are
    imported meanwhile (arrow reads without the GIL, imports need it: a first read in a new
    process overlaps the two)."""
    import pyarrow.parquet as pq

    if not geo or all(name in sys.modules for name in ("geopandas", "shapely", "pyproj")):
        return pq.read_table(path)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="odsframe-cache") as pool:
        table = pool.submit(pq.read_table, path)
        import geopandas  # noqa: F401
        import pyproj  # noqa: F401
        import shapely  # noqa: F401

        return table.result()


def read_entry(key: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """Return the cached frame and its metadata, or ``None`` on a miss.

    A missing, corrupt or mismatched entry is a miss (and is removed); it never raises.
    """
    import pyarrow as pa

    key = _check_key(key)
    folder = _frames_dir(create=False)
    for _attempt in range(_READ_ATTEMPTS):
        loaded = _load_sidecar(folder, key)
        if loaded is None:
            return None
        meta, raw = loaded
        try:
            table = _read_table(folder / meta["data_file"], geo=meta.get("kind") == "GeoDataFrame")
            embedded = json.loads((table.schema.metadata or {}).get(_META_KEY, b"null"))
            if not isinstance(embedded, dict) or embedded.get("write_id") != meta["write_id"]:
                raise CacheError("the sidecar does not match its data file")
            return _table_to_frame(table, embedded), meta
        except (OSError, ValueError, KeyError, TypeError, CacheError, pa.ArrowException) as error:
            # Another process may have committed a newer entry (and removed the data file
            # we were about to read): then read that one instead.
            if _sidecar_bytes(folder, key) != raw:
                continue
            why = "data file missing" if isinstance(error, FileNotFoundError) else str(error)
            _discard(folder, key, raw, f"unreadable data file ({why})")
            return None
    return None


# --------------------------------------------------------------------------------------------
# Listing and clearing


def _entries(folder: Path) -> Iterator[tuple[str, Path, dict[str, Any] | None]]:
    """Yield ``(key, sidecar path, metadata or None when broken)`` for each sidecar."""
    if not folder.is_dir():
        return
    for sidecar in sorted(folder.glob("*.json")):
        key = sidecar.stem
        if not _KEY_RE.match(key):
            continue
        meta = _read_sidecar(sidecar)
        yield key, sidecar, meta if _valid_sidecar(meta, key) else None


def info() -> pd.DataFrame:
    """List the cache entries: one row each, newest first.

    Columns: ``key``, ``portal``, ``dataset``, ``rows``, ``bytes`` (data file and sidecar),
    ``fetched_at`` (UTC), ``data_processed``, ``path``, ``kind``, ``records_count``.
    """
    import pandas as pd

    rows = []
    folder = _frames_dir(create=False)
    for key, sidecar, meta in _entries(folder):
        if meta is None:
            continue
        data_path = folder / meta["data_file"]
        try:
            size = data_path.stat().st_size + sidecar.stat().st_size
        except OSError:
            continue
        rows.append(
            {
                "key": key,
                "portal": meta.get("portal"),
                "dataset": meta.get("dataset"),
                "rows": meta.get("rows"),
                "bytes": size,
                "fetched_at": meta.get("fetched_at"),
                "data_processed": meta.get("data_processed"),
                "path": str(data_path),
                "kind": meta.get("kind"),
                "records_count": meta.get("records_count"),
            }
        )
    columns = [
        "key",
        "portal",
        "dataset",
        "rows",
        "bytes",
        "fetched_at",
        "data_processed",
        "path",
        "kind",
        "records_count",
    ]
    table = pd.DataFrame(rows, columns=columns)
    table["rows"] = table["rows"].astype("Int64")
    table["bytes"] = table["bytes"].astype("int64")
    table["records_count"] = table["records_count"].astype("Int64")
    table["fetched_at"] = pd.to_datetime(table["fetched_at"], utc=True, format="ISO8601")
    return table.sort_values("fetched_at", ascending=False, ignore_index=True)


def clear(portal: str | None = None, dataset: str | None = None) -> int:
    """Remove cache entries and return how many were removed.

    Parameters
    ----------
    portal
        Only entries of this portal (any spelling :func:`normalise_portal` accepts).
    dataset
        Only entries of this dataset.

    Without filters every entry goes, broken ones and unreferenced data files included, and
    so do the part folders of interrupted large reads (``reads/``). Temporary files older
    than an hour (left by crashed writers) always go; younger ones may belong to a write in
    progress and stay.
    """
    wanted_portal = normalise_portal(portal) if portal is not None else None
    if portal is None and dataset is None:
        shutil.rmtree(cache_dir() / "reads", ignore_errors=True)
    folder = _frames_dir(create=False)
    if not folder.is_dir():
        return 0
    removed = 0
    everything = wanted_portal is None and dataset is None
    for _key, sidecar, meta in list(_entries(folder)):
        if meta is None:
            if everything and _remove(sidecar):
                removed += 1
            continue
        if wanted_portal is not None and meta.get("portal") != wanted_portal:
            continue
        if dataset is not None and meta.get("dataset") != dataset:
            continue
        if _remove(sidecar):
            removed += 1
        _remove(folder / meta["data_file"])

    referenced = {meta["data_file"] for _, _, meta in _entries(folder) if meta is not None}
    cutoff = time.time() - STALE_FILE_AGE.total_seconds()
    for path in folder.iterdir():
        if path.name.startswith(_TMP_PREFIX):
            if _mtime(path) < cutoff:
                _remove(path)
        elif (
            _DATA_FILE_RE.match(path.name)
            and path.name not in referenced
            # A recent one may be a concurrent writer's, about to be committed.
            and (everything or _mtime(path) < cutoff)
        ):
            _remove(path)
    return removed

"""Dask frames over a chunked download: :func:`read_ods_dask` and :func:`dask_frame`.

Each part file of a :mod:`~odsframe.download` becomes one partition, read by the same code
as :func:`~odsframe.download.read_parts` (so ``compute()`` equals the pandas frame, dtypes
included). Partitions carry a global ``RangeIndex`` (known divisions), built from the row
counts in the manifest. With a geometry column the result is a ``dask_geopandas``
GeoDataFrame.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odsframe.download import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_WORKERS,
    Manifest,
    download_parts,
    load_manifest,
    part_reader,
)
from odsframe.errors import IncompleteResultError

if TYPE_CHECKING:
    import pandas as pd

    from odsframe._http import RetryPolicy
    from odsframe._progress import ProgressArg

__all__ = ["dask_frame", "download_folder", "read_ods_dask"]

#: Sub-folder of the cache folder holding the downloads of ``read_ods_dask(path=None)``.
DOWNLOADS_FOLDER = "downloads"


def _empty_like_first(manifest: Manifest, read: Callable[[Any], pd.DataFrame]) -> pd.DataFrame:
    """A zero-row frame with the dtypes every partition has (the ``meta`` of dask)."""
    first = manifest.files[0]
    if manifest.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(first)
        sink = pa.BufferOutputStream()
        pq.write_table(schema.empty_table(), sink)
        return read(sink.getvalue().to_pybytes())
    return read(first).iloc[:0]


def dask_frame(
    manifest: Manifest | str | os.PathLike[str],
    fields: Any = None,
    *,
    geometry: str | bool | None = "auto",
    timezone: str | None = None,
    labels: bool = False,
) -> Any:
    """A dask DataFrame (or dask-geopandas GeoDataFrame) over a complete download.

    Parameters
    ----------
    manifest
        The download (a :class:`~odsframe.download.Manifest` or its folder).
    fields
        The schema; the one saved in the manifest by default.
    geometry, timezone, labels
        As for :func:`~odsframe.read_ods`.

    Raises
    ------
    IncompleteResultError
        Some chunks are not downloaded yet.
    """
    import dask
    import dask.dataframe as dd
    import pandas as pd

    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    if not manifest.complete:
        raise IncompleteResultError(
            f"the download in {manifest.folder} is incomplete; run it again to finish it",
            dataset=manifest.dataset,
        )
    read = part_reader(manifest, fields, geometry=geometry, timezone=timezone, labels=labels)
    meta = _empty_like_first(manifest, read)
    parts = [
        (str(manifest.folder / chunk.file), chunk.rows or 0)
        for chunk in manifest.chunks
        if chunk.rows
    ] or [(str(manifest.folder / manifest.chunks[0].file), 0)]
    starts, offset = [], 0
    for _, rows in parts:
        starts.append(offset)
        offset += rows
    divisions = (*starts, max(offset - 1, 0)) if offset else None

    def read_partition(path: str, start: int) -> pd.DataFrame:
        frame = read(path)
        frame.index = pd.RangeIndex(start, start + len(frame))
        return frame

    if _is_geodataframe(meta):
        import dask_geopandas  # noqa: F401  # registers the GeoDataFrame collection

    # Keep the schema dtypes: no conversion of object columns (multivalued lists, JSON,
    # geometries) to pyarrow strings.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(
            read_partition,
            [path for path, _ in parts],
            starts,
            meta=meta,
            divisions=divisions,
            label=f"read-ods-{manifest.dataset}",
        )


def _is_geodataframe(frame: Any) -> bool:
    return any(cls.__name__ == "GeoDataFrame" for cls in type(frame).__mro__)


def download_folder(portal: str, query_key: str, fmt: str, credential: str) -> Path:
    """Where ``read_ods_dask(path=None)`` downloads a query: under the cache folder."""
    from odsframe.cache import cache_dir

    key = hashlib.sha256(f"{portal}\n{query_key}\n{fmt}\n{credential}".encode()).hexdigest()
    return cache_dir() / DOWNLOADS_FOLDER / key[:32]


def read_ods_dask(
    portal: str,
    dataset: str,
    *,
    path: str | os.PathLike[str] | None = None,
    select: str | Sequence[str] | None = None,
    where: Any = None,
    bbox: Sequence[float] | None = None,
    mask: Any = None,
    distance: Any = None,
    refine: Any = None,
    exclude: Any = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
    timezone: str | None = None,
    lang: str | None = None,
    geometry: str | bool | None = "auto",
    labels: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = DEFAULT_WORKERS,
    progress: ProgressArg = None,
    api_key: str | None = None,
    session: Any = None,
    retry: RetryPolicy | None = None,
    api_version: str = "2.1",
) -> Any:
    """Read a dataset as a dask DataFrame (dask-geopandas GeoDataFrame when geo).

    The records are first downloaded in chunks (Parquet parts, resumable, see
    :func:`~odsframe.download.download`) into ``path``, or into a folder of the cache
    named after the portal, the query and the key; reading the same query again downloads
    nothing unless the dataset changed. Each part is one partition.

    Parameters
    ----------
    portal, dataset, select, where, bbox, mask, distance, refine, exclude, order_by, limit
        As for :func:`~odsframe.read_ods` (a ``limit`` below the count gives one part).
    timezone, lang, api_version
        As for :func:`~odsframe.read_ods`.
    path
        The download folder (``None``: one in the cache folder).
    geometry, labels
        As for :func:`~odsframe.read_ods`.
    chunk_rows, workers, progress, api_key, session, retry
        As for :func:`~odsframe.download.download`.

    Returns
    -------
    dask.dataframe.DataFrame or dask_geopandas.GeoDataFrame
        Typed like the frame of ``read_ods``; ``compute()`` gives the same rows.

    Examples
    --------
    >>> ddf = read_ods_dask("data.example.org", "big-dataset")  # doctest: +SKIP
    >>> ddf.groupby("category").size().compute()  # doctest: +SKIP
    """
    from odsframe._auth import credential_digest, resolve_api_key
    from odsframe._portal_url import portal_host, resolve_portal
    from odsframe.api import open_adapter
    from odsframe.read import build_query

    query = build_query(
        dataset,
        select=select,
        where=where,
        bbox=bbox,
        mask=mask,
        distance=distance,
        refine=refine,
        exclude=exclude,
        order_by=order_by,
        limit=limit,
        timezone=timezone,
        lang=lang,
    )
    base_url = resolve_portal(portal)
    key = resolve_api_key(api_key, host=portal_host(base_url))
    with open_adapter(
        base_url, version=api_version, api_key=key, session=session, retry=retry
    ) as adapter:
        metadata = None
        if query.needs_geo_field or (isinstance(geometry, str) and geometry != "auto"):
            # Spatial filters apply to a geo field of the schema (as in read_ods).
            from odsframe.frames import fields_from_metadata
            from odsframe.read import with_geo_field

            metadata = adapter.dataset_metadata(dataset)
            query = with_geo_field(query, fields_from_metadata(metadata), geometry)
        version = "" if adapter.version == "2.1" else f"v{adapter.version}:"
        folder = (
            Path(path)
            if path is not None
            else download_folder(
                base_url, version + query.normalised_key(), "parquet", credential_digest(key)
            )
        )
        manifest = download_parts(
            adapter,
            query,
            folder,
            format="parquet",
            chunk_rows=chunk_rows,
            workers=workers,
            progress=progress,
            metadata=metadata,
        )
    return dask_frame(manifest, geometry=geometry, labels=labels)

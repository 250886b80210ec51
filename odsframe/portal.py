""":class:`Portal` and :class:`Dataset`: an ODS portal and its datasets as Python objects.

A ``Portal`` keeps one HTTP session and one key for all its requests; ``Portal.dataset(id)``
fetches a dataset's metadata once and gives a :class:`Dataset` (schema as a frame, metas,
features, attachments, a readable ``repr`` and an HTML card in Jupyter).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import pandas as pd

from odsframe._auth import ApiKey, resolve_api_key
from odsframe._portal_url import portal_host, resolve_portal
from odsframe._progress import ProgressArg
from odsframe.api import open_adapter
from odsframe.errors import ServerError
from odsframe.frames import FieldSpec, fields_frame, fields_from_metadata
from odsframe.read import (
    READ_CHUNK_ROWS,
    GeometryArg,
    build_query,
    catalog_with,
    explain_with,
    read_with,
)

__all__ = ["Dataset", "Portal"]


class Portal:
    """An ODS portal: one HTTP session and one set of credentials for every request.

    Parameters
    ----------
    portal
        A URL, a domain or a shorthand (``public``), as for :func:`~odsframe.read_ods`.
    api_key
        An API key; else ``ODS_APIKEY`` / ``ODS_API_KEY`` / ``HUWISE_API_KEY``, else the
        keyring. Sent as a header only.
    session
        Your ``requests.Session``; odsframe never closes it.

    Examples
    --------
    >>> with Portal("data.example.org") as portal:  # doctest: +SKIP
    ...     trees = portal.dataset("les-arbres")
    ...     frame = trees.read(limit=100)
    """

    def __init__(
        self, portal: str, *, api_key: str | ApiKey | None = None, session: Any = None
    ) -> None:
        self.url = resolve_portal(portal)
        self._api_key = resolve_api_key(api_key, host=portal_host(self.url))
        self._session = session
        self._adapter = open_adapter(self.url, api_key=self._api_key, session=session)

    def __repr__(self) -> str:
        return f"Portal({self.url!r}, authenticated={self._api_key is not None})"

    @property
    def authenticated(self) -> bool:
        """Whether requests carry an API key."""
        return self._api_key is not None

    def close(self) -> None:
        """Close the HTTP session (unless it is yours)."""
        self._adapter.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def dataset(self, dataset_id: str) -> Dataset:
        """The dataset ``dataset_id`` (one metadata request)."""
        query = build_query(dataset_id)  # validates the id
        return Dataset(self, self._adapter.dataset_metadata(query.dataset))

    def catalog(
        self,
        *,
        where: Any = None,
        refine: Any = None,
        exclude: Any = None,
        order_by: str | Sequence[str] | None = None,
        lang: str | None = None,
        timezone: str | None = None,
        progress: ProgressArg = None,
    ) -> pd.DataFrame:
        """Every dataset of the catalog, one row each (see :func:`~odsframe.read_ods_catalog`)."""
        return catalog_with(
            self._adapter,
            where=where,
            refine=refine,
            exclude=exclude,
            order_by=order_by,
            lang=lang,
            timezone=timezone,
            progress=progress,
        )

    def read(
        self,
        dataset: str,
        *,
        geometry: GeometryArg = "auto",
        labels: bool = False,
        progress: ProgressArg = None,
        cache: bool | str = True,
        max_age: timedelta | float | None = None,
        chunk_rows: int = READ_CHUNK_ROWS,
        **query: Any,
    ) -> pd.DataFrame:
        """Read a dataset (see :func:`~odsframe.read_ods` for the arguments).

        ``query`` holds the query arguments: ``select``, ``where``, ``bbox``, ``mask``,
        ``distance``, ``refine``, ``exclude``, ``order_by``, ``limit``, ``timezone``, ``lang``.
        """
        return read_with(
            self._adapter,
            build_query(dataset, **query),
            api_key=self._api_key,
            session=self._session,
            geometry=geometry,
            labels=labels,
            progress=progress,
            cache_mode=cache,
            max_age=max_age,
            chunk_rows=chunk_rows,
        )

    def explain(
        self, dataset: str, *, geometry: GeometryArg = "auto", offline: bool = False, **query: Any
    ) -> str:
        """The requests :meth:`read` would make (see :func:`~odsframe.explain`)."""
        return explain_with(
            self._adapter, build_query(dataset, **query), geometry=geometry, offline=offline
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _timestamp(value: Any) -> pd.Timestamp | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


class Dataset:
    """One dataset of a portal, from its metadata (fetched once).

    Attributes
    ----------
    portal
        The :class:`Portal` it belongs to.
    id
        The dataset id.
    metadata
        The metadata as the API returned it.
    field_specs
        The schema as :class:`~odsframe.frames.FieldSpec` objects.
    """

    def __init__(self, portal: Portal, metadata: Mapping[str, Any]) -> None:
        dataset_id = metadata.get("dataset_id")
        if not isinstance(dataset_id, str) or not dataset_id:
            raise ServerError(f"{portal.url} answered dataset metadata without a dataset_id.")
        self.portal = portal
        self.id = dataset_id
        self.metadata = dict(metadata)
        self.field_specs: list[FieldSpec] = fields_from_metadata(metadata)

    # -- metadata -------------------------------------------------------------------------

    @property
    def metas(self) -> dict[str, Any]:
        """The ``metas.default`` template (title, publisher, license, modified ...)."""
        metas = self.metadata.get("metas")
        default = metas.get("default") if isinstance(metas, Mapping) else None
        return dict(default) if isinstance(default, Mapping) else {}

    @property
    def title(self) -> str:
        return _text(self.metas.get("title")) or self.id

    @property
    def description(self) -> str | None:
        """The description (HTML, as published)."""
        return _text(self.metas.get("description"))

    @property
    def publisher(self) -> str | None:
        return _text(self.metas.get("publisher"))

    @property
    def license(self) -> str | None:
        return _text(self.metas.get("license"))

    @property
    def license_url(self) -> str | None:
        return _text(self.metas.get("license_url"))

    @property
    def records_count(self) -> int | None:
        """How many records the dataset holds (``metas.default.records_count``)."""
        count = self.metas.get("records_count")
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    @property
    def modified(self) -> pd.Timestamp | None:
        return _timestamp(self.metas.get("modified"))

    @property
    def data_processed(self) -> pd.Timestamp | None:
        return _timestamp(self.metas.get("data_processed"))

    @property
    def features(self) -> list[str]:
        """Capabilities such as ``geo``, ``analyze``, ``timeserie``, ``image``."""
        features = self.metadata.get("features")
        return [str(item) for item in features] if isinstance(features, list) else []

    @property
    def visibility(self) -> str | None:
        """``domain`` (public) or ``restricted``."""
        return _text(self.metadata.get("visibility"))

    @property
    def fields(self) -> pd.DataFrame:
        """The schema: name, label, type, unit, description."""
        return fields_frame(self.field_specs)

    @property
    def geo_fields(self) -> list[str]:
        """Names of the geo_point_2d and geo_shape fields."""
        return [spec.name for spec in self.field_specs if spec.is_geo]

    @property
    def attachments(self) -> pd.DataFrame:
        """The attached files: id, title, mimetype, url (as published) and href (download)."""
        rows = []
        items = self.metadata.get("attachments")
        base = self.portal._adapter.dataset_url(self.id)
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping):
                continue
            attachment_id = _text(item.get("id"))
            rows.append(
                {
                    "id": attachment_id,
                    "title": _text(item.get("title")),
                    "mimetype": _text(item.get("mimetype")),
                    "url": _text(item.get("url")),
                    "href": f"{base}/attachments/{attachment_id}" if attachment_id else None,
                }
            )
        columns = ["id", "title", "mimetype", "url", "href"]
        return pd.DataFrame(rows, columns=columns).astype(pd.StringDtype())

    # -- attachments ----------------------------------------------------------------------

    def download_attachment(self, attachment_id: str, dest: str | os.PathLike[str]) -> Path:
        """Download one attachment to ``dest``, a file path or an existing folder (then the
        file is named as published); returns the path written.

        Raises :class:`~odsframe.errors.DatasetNotFoundError` for an unknown attachment id
        (see :func:`odsframe.files.download_attachment`).
        """
        from odsframe.files import download_attachment

        return download_attachment(
            self.portal._adapter, self.id, attachment_id, dest, metadata=self.metadata
        )

    def download_attachments(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Download every attachment into ``folder`` (created if needed); returns the paths
        (see :func:`odsframe.files.download_attachments`)."""
        from odsframe.files import download_attachments

        return download_attachments(self.portal._adapter, self.id, folder, metadata=self.metadata)

    # -- reading --------------------------------------------------------------------------

    def read(self, **kwargs: Any) -> pd.DataFrame:
        """Read the dataset's records (see :func:`~odsframe.read_ods` for the arguments)."""
        return self.portal.read(self.id, **kwargs)

    def explain(self, **kwargs: Any) -> str:
        """The requests :meth:`read` would make (see :func:`~odsframe.explain`)."""
        return self.portal.explain(self.id, **kwargs)

    # -- display --------------------------------------------------------------------------

    def _summary(self) -> list[str]:
        parts = []
        if self.records_count is not None:
            parts.append(f"{self.records_count:,} records")
        parts.append(f"{len(self.field_specs)} fields")
        if self.geo_fields:
            parts.append(f"geo: {', '.join(self.geo_fields)}")
        if self.visibility == "restricted":
            parts.append("restricted")
        return parts

    def __repr__(self) -> str:
        lines = [f"<Dataset {self.id!r} on {self.portal.url}: {self.title}"]
        lines.append("  " + "; ".join(self._summary()))
        details = [
            ("publisher", self.publisher),
            ("license", self.license),
            ("modified", self.modified.isoformat() if self.modified is not None else None),
        ]
        lines.extend(f"  {name}: {value}" for name, value in details if value)
        width = max((len(spec.name) for spec in self.field_specs), default=0)
        for spec in self.field_specs:
            unit = f" [{spec.unit}]" if spec.unit else ""
            label = f"  {spec.label}" if spec.label != spec.name else ""
            lines.append(f"  - {spec.name:<{width}}  {spec.type}{unit}{label}")
        return "\n".join(lines) + ">"

    def _repr_html_(self) -> str:
        """A card for Jupyter: title, publisher, licence, records, modified, fields, geo badge."""
        esc = html.escape
        badges = []
        if self.geo_fields:
            badges.append(
                '<span style="background:#2e7d32;color:#fff;border-radius:3px;'
                'padding:0 5px;font-size:85%" title="geo fields: '
                f'{esc(", ".join(self.geo_fields))}">geo</span>'
            )
        if self.visibility == "restricted":
            badges.append(
                '<span style="background:#b71c1c;color:#fff;border-radius:3px;'
                'padding:0 5px;font-size:85%">restricted</span>'
            )
        licence = esc(self.license or "not stated")
        if self.license_url:
            licence = f'<a href="{esc(self.license_url, quote=True)}">{licence}</a>'
        facts = [
            ("Dataset", f"<code>{esc(self.id)}</code>"),
            ("Portal", esc(self.portal.url)),
            ("Publisher", esc(self.publisher or "not stated")),
            ("Licence", licence),
            (
                "Records",
                f"{self.records_count:,}" if self.records_count is not None else "unknown",
            ),
            (
                "Modified",
                esc(self.modified.isoformat()) if self.modified is not None else "unknown",
            ),
        ]
        rows = "".join(
            f"<tr><th style='text-align:left'>{name}</th><td style='text-align:left'>{value}</td>"
            "</tr>"
            for name, value in facts
        )
        field_rows = "".join(
            "<tr>"
            f"<td style='text-align:left'><code>{esc(spec.name)}</code></td>"
            f"<td style='text-align:left'>{esc(spec.label)}</td>"
            f"<td style='text-align:left'>{esc(spec.type)}"
            f"{' [' + esc(spec.unit) + ']' if spec.unit else ''}</td>"
            "</tr>"
            for spec in self.field_specs
        )
        return (
            f"<div class='odsframe-dataset'><h4 style='margin-bottom:4px'>{esc(self.title)} "
            f"{' '.join(badges)}</h4>"
            f"<table>{rows}</table>"
            f"<details open><summary>{len(self.field_specs)} fields</summary>"
            "<table><thead><tr><th style='text-align:left'>name</th>"
            "<th style='text-align:left'>label</th><th style='text-align:left'>type</th>"
            f"</tr></thead><tbody>{field_rows}</tbody></table></details></div>"
        )

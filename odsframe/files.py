"""Downloads of record files (``file`` fields) and dataset attachments.

* :func:`download_files` (``df.ods.download_files``): the file of every record of a frame's
  ``file`` column (the URLs ``read_ods`` returns, or ODS file objects), or its thumbnail,
  into a folder; returns the frame with a column of local paths.
* :func:`download_attachment`, :func:`download_attachments` (``Dataset.download_attachment``,
  ``Dataset.download_attachments``): the files attached to a dataset (ods-api.md 8.5).

Every download is streamed to a temporary file in the target folder and renamed into place
once complete, so a folder never holds a partial file. Local names come from the file id
(or the attachment's published name), reduced to letters, digits, ``.``, ``_`` and ``-``
(a short hash is added when anything had to change, so two ids never share a name): a name
sent by the server can never leave the folder. The API key goes only to the portal's own
host; file URLs pointing elsewhere are fetched anonymously.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import re
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from odsframe.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    InvalidQueryArgument,
    ODSError,
    ODSWarning,
)

if TYPE_CHECKING:
    import os

    import pandas as pd
    import requests

    from odsframe._auth import ApiKey
    from odsframe._http import HTTPClient
    from odsframe.api.base import ExploreAdapter

__all__ = [
    "attachment_file_names",
    "download_attachment",
    "download_attachments",
    "download_files",
    "safe_file_name",
]

logger = logging.getLogger(__name__)

#: Suffix of the local name of a thumbnail (``<file id>.thumbnail.png``).
THUMBNAIL_STEM_SUFFIX = ".thumbnail"
_MAX_STEM = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{n}" for n in range(1, 10)}
    | {f"LPT{n}" for n in range(1, 10)}
)
_EXTENSIONS = {"image/jpeg": ".jpg", "image/jpg": ".jpg", "image/png": ".png", "text/csv": ".csv"}
_V1_FILES = re.compile(r"/api/datasets/1\.0/[^/]+/files/")

ErrorMode = Literal["raise", "warn"]


# -- names ------------------------------------------------------------------------------------


def safe_file_name(name: str, *, keep_extension: bool = True) -> str:
    """A file name that stays in its folder: only ``A-Z a-z 0-9 . _ -``, no leading dot.

    The name is the last path component of ``name``; when anything had to change (or the
    result is empty or a reserved device name), ``-<hash>`` of the original is added before
    the extension, so distinct names stay distinct.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, extension = base, ""
    if keep_extension:
        match = re.fullmatch(r"(.+?)(\.[A-Za-z0-9]{1,8})", base)
        if match:
            stem, extension = match.group(1), match.group(2)
    clean = _UNSAFE.sub("_", stem).lstrip(".")[:_MAX_STEM]
    changed = clean != stem or not clean or clean.upper() in _RESERVED
    if changed:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        clean = f"{clean}-{digest}" if clean else digest
    return clean + extension.lower()


def _extension_for(content_type: str | None) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    if not media or media == "application/octet-stream":
        return ""
    return _EXTENSIONS.get(media) or mimetypes.guess_extension(media) or ""


def _disposition_name(header: str | None) -> str | None:
    """The file name of a ``Content-Disposition`` header (``filename*`` preferred)."""
    if not header:
        return None
    match = re.search(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)", header)
    if match:
        return unquote(match.group(1).strip())
    match = re.search(r'filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)', header)
    if match:
        return (match.group(1) or match.group(2) or "").strip() or None
    return None


def _check_html(response: requests.Response, what: str, dataset: str | None) -> None:
    if "html" in response.headers.get("Content-Type", "").lower():
        from odsframe._http import safe_url

        raise AuthenticationError(
            f"The portal answered an HTML page instead of {what}, as private portals do for "
            "their login page. Pass api_key=... (or set ODS_APIKEY).",
            status=response.status_code,
            dataset=dataset,
            url=safe_url(response.url),
        )


# -- record files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileTask:
    url: str
    stem: str
    extension: str  # known before the request ("" when the answer's type decides)


def _file_id(url: str) -> str:
    """The file id of a files URL (the segment after ``/files/``, else the last one)."""
    segments = [unquote(s) for s in urlsplit(url).path.split("/") if s]
    if "files" in segments:
        position = len(segments) - 1 - segments[::-1].index("files")
        if position + 1 < len(segments):
            return segments[position + 1]
    return segments[-1] if segments else url


def _thumbnail_url(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    # Search API v1 serves thumbnails at .../files/<id>/300/; v2.1 (this portal) at /thumbnail.
    path = path + "/300/" if _V1_FILES.search(path) else path + "/thumbnail"
    return urlunsplit(parts._replace(path=path))


_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}")


def _hinted_extension(value: Mapping[str, Any]) -> str:
    """The extension a file object announces (its filename, format or mimetype)."""
    name = value.get("filename")
    suffix = Path(name).suffix if isinstance(name, str) else ""
    if _EXTENSION.fullmatch(suffix):
        return suffix.lower()
    form = value.get("format")
    if isinstance(form, str) and re.fullmatch(r"[A-Za-z0-9]{1,8}", form):
        return "." + form.lower()
    mimetype = value.get("mimetype")
    return _extension_for(mimetype) if isinstance(mimetype, str) else ""


def _task_for(value: Any, row: Any, files_base: str | None, thumbnails: bool) -> _FileTask | None:
    import pandas as pd

    if value is None or (not isinstance(value, (Mapping, str)) and pd.isna(value)):
        return None
    extension = ""
    if isinstance(value, Mapping):
        url = value.get("url")
        file_id = value.get("id")
        if not isinstance(url, str) or not url:
            if not isinstance(file_id, str) or not file_id or files_base is None:
                raise InvalidQueryArgument(
                    f"row {row!r}: the file object has neither a url nor an id this frame's "
                    "portal and dataset can resolve"
                )
            url = f"{files_base}/{quote(file_id, safe='')}"
        extension = _hinted_extension(value)
    elif isinstance(value, str):
        url = value.strip()
        if not url:
            return None
        if not url.lower().startswith(("http://", "https://")):
            if files_base is None:
                raise InvalidQueryArgument(
                    f"row {row!r}: {value[:80]!r} is not a file URL (and the frame has no "
                    "portal and dataset to resolve a file id)"
                )
            url = f"{files_base}/{quote(url, safe='')}"
    else:
        raise InvalidQueryArgument(
            f"row {row!r}: a {type(value).__name__} is neither a file URL nor a file object"
        )
    stem = safe_file_name(_file_id(url), keep_extension=False)
    if thumbnails:
        return _FileTask(_thumbnail_url(url), stem + THUMBNAIL_STEM_SUFFIX, extension)
    return _FileTask(url, stem, extension)


def _existing(folder: Path) -> dict[str, Path]:
    """Files of ``folder`` by name (temporary ``.``-files left out)."""
    return {p.name: p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def _with_extension(stem: str, extension: str) -> str:
    return stem if extension and stem.lower().endswith(extension) else stem + extension


def _already_there(task: _FileTask, existing: Mapping[str, Path]) -> Path | None:
    if task.extension:
        return existing.get(_with_extension(task.stem, task.extension))
    if task.stem in existing:
        return existing[task.stem]
    prefix = task.stem + "."
    for name, path in existing.items():
        rest = name[len(prefix) :]
        if name.startswith(prefix) and rest and "." not in rest:
            return path
    return None


def _final_name(task: _FileTask, response: requests.Response) -> str:
    extension = task.extension or _extension_for(response.headers.get("Content-Type"))
    if not extension:
        suffix = Path(urlsplit(task.url).path).suffix
        extension = suffix.lower() if _EXTENSION.fullmatch(suffix) else ""
    return _with_extension(task.stem, extension)


def _fetch_file(http: HTTPClient, task: _FileTask, folder: Path, dataset: str | None) -> Path:
    from odsframe._http import save_response

    response = http.request(task.url, dataset=dataset, stream=True, accept="*/*")
    with contextlib.closing(response):
        _check_html(response, "the file", dataset)
        path = folder / _final_name(task, response)
        if path.parent != folder:  # cannot happen with safe names; never write elsewhere
            raise InvalidQueryArgument(f"refusing to write outside {folder}: {path}")
        save_response(response, path, dataset=dataset)
    return path


class _Clients:
    """One keyed client for the portal's origin, one anonymous client for other hosts."""

    def __init__(self, portal: str | None, api_key: Any, session: Any) -> None:
        import requests

        from odsframe._auth import resolve_api_key
        from odsframe._http import HTTPClient
        from odsframe._portal_url import portal_host

        self._own_session = session is None
        self.session = requests.Session() if session is None else session
        self.origin = _origin(portal) if portal else None
        key = None
        if portal is not None:
            key = resolve_api_key(api_key, host=portal_host(portal))
        elif api_key is not None:
            raise InvalidQueryArgument(
                "api_key: the frame has no portal (attrs['ods']) to send the key to; pass "
                "portal=... as well"
            )
        self.keyed = HTTPClient(api_key=key, session=self.session)
        self.anonymous = HTTPClient(api_key=None, session=self.session)

    def for_url(self, url: str) -> HTTPClient:
        return (
            self.keyed
            if self.origin is not None and _origin(url) == self.origin
            else (self.anonymous)
        )

    def close(self) -> None:
        if self._own_session:
            self.session.close()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return parts.scheme.lower(), parts.netloc.lower()


def download_files(
    frame: pd.DataFrame,
    column: str,
    folder: str | os.PathLike[str],
    *,
    thumbnails: bool = False,
    workers: int = 4,
    overwrite: bool = False,
    path_column: str | None = None,
    portal: str | None = None,
    api_key: str | ApiKey | None = None,
    session: Any = None,
    errors: ErrorMode = "raise",
) -> pd.DataFrame:
    """Download the file of each record of a ``file`` column; return the frame with paths.

    Parameters
    ----------
    frame
        A frame with a ``file`` field column (URLs, as :func:`~odsframe.read_ods` returns
        them, or ODS file objects ``{"id", "url", "filename", ...}``).
    column
        The file column.
    folder
        Where the files go (created if needed). Local names are the file ids made safe,
        plus the extension of the file's type (``<id>.png``).
    thumbnails
        Download the thumbnails instead of the files (``<id>.thumbnail.png``).
    workers
        Parallel downloads (each file is fetched once, however many rows share it).
    overwrite
        Download again files already in the folder (by default they are kept, so running
        again fetches only what is missing).
    path_column
        Name of the new column of local paths (default ``<column>_path``).
    portal
        The portal the files belong to (default: the frame's ``attrs["ods"]`` portal); the
        API key is sent to this host only.
    api_key, session
        As for :func:`~odsframe.read_ods`.
    errors
        ``"raise"``: the first failed download raises (after the others finished);
        ``"warn"``: failed files get a null path and one :class:`~odsframe.errors.ODSWarning`.

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` (GeoDataFrames stay GeoDataFrames) with the path column (strings,
        null where the record has no file).
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidQueryArgument(f"frame: expected a DataFrame, got {type(frame).__name__}")
    if column not in frame.columns:
        raise InvalidQueryArgument(
            f"column: {column!r} is not a column of the frame (columns: "
            f"{', '.join(map(str, frame.columns[:20]))})"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidQueryArgument(f"workers: expected an integer >= 1, got {workers!r}")
    if errors not in ("raise", "warn"):
        raise InvalidQueryArgument(f"errors: expected 'raise' or 'warn', got {errors!r}")
    target_column = path_column or f"{column}_path"
    if not isinstance(target_column, str) or not target_column:
        raise InvalidQueryArgument(f"path_column: expected a column name, got {path_column!r}")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InvalidQueryArgument(f"folder: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()

    attrs = frame.attrs.get("ods")
    ods: Mapping[str, Any] = attrs if isinstance(attrs, Mapping) else {}
    portal_url = ods.get("portal") if isinstance(ods.get("portal"), str) else None
    dataset = ods.get("dataset") if isinstance(ods.get("dataset"), str) else None
    if portal is not None:
        from odsframe._portal_url import resolve_portal

        portal_url = resolve_portal(portal)
    files_base = None
    if portal_url and dataset:
        from odsframe.api import open_adapter

        version = str(ods.get("api_version") or "2.1").removeprefix("v")
        with open_adapter(portal_url, version=version, use_keyring=False) as adapter:
            files_base = f"{adapter.dataset_url(dataset)}/files"

    tasks = [
        _task_for(value, row, files_base, thumbnails)
        for row, value in zip(frame.index, frame[column].array, strict=True)
    ]
    # One download per local name: rows sharing a file (or URLs naming the same file id)
    # share its path.
    by_stem: dict[str, _FileTask] = {}
    for task in tasks:
        if task is not None:
            by_stem.setdefault(task.stem, task)
    unique = list(by_stem.values())
    existing = _existing(out)
    paths: dict[str, Path | None] = {}
    pending = []
    for task in unique:
        found = None if overwrite else _already_there(task, existing)
        if found is not None:
            paths[task.stem] = found
        else:
            pending.append(task)

    failures: list[tuple[_FileTask, Exception]] = []
    if pending:
        clients = _Clients(portal_url, api_key, session)
        try:

            def fetch(task: _FileTask) -> tuple[_FileTask, Path | Exception]:
                try:
                    return task, _fetch_file(clients.for_url(task.url), task, out, dataset)
                except (ODSError, OSError) as err:
                    return task, err

            with ThreadPoolExecutor(min(workers, len(pending)), "odsframe-files") as pool:
                for task, outcome in pool.map(fetch, pending):
                    if isinstance(outcome, Exception):
                        failures.append((task, outcome))
                        paths[task.stem] = None
                    else:
                        paths[task.stem] = outcome
        finally:
            clients.close()
    logger.info(
        "files of %r: %d downloaded, %d already in %s, %d failed",
        column,
        len(pending) - len(failures),
        len(unique) - len(pending),
        out,
        len(failures),
    )
    if failures:
        first_task, first_error = failures[0]
        if errors == "raise":
            if len(failures) > 1 and isinstance(first_error, ODSError):
                first_error.message += f" ({len(failures)} of {len(unique)} files failed.)"
                first_error.args = (first_error.message,)
            raise first_error
        from odsframe._http import safe_url

        warnings.warn(
            f"{len(failures)} of {len(unique)} files of column {column!r} could not be "
            f"downloaded (their path is null); first: {safe_url(first_task.url)}: {first_error}",
            ODSWarning,
            stacklevel=2,
        )
    result = frame.copy()
    result[target_column] = pd.array(
        [_path_text(paths.get(task.stem)) if task is not None else None for task in tasks],
        dtype=pd.StringDtype(),
    )
    return result


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)


# -- attachments ------------------------------------------------------------------------------


def _flat_attachment(entry: Any) -> dict[str, Any] | None:
    """``{id, title, url}`` of a dataset-metadata attachment or an ``/attachments`` entry
    (``{href, metas: {...}}``); ``None`` without an id."""
    if not isinstance(entry, Mapping):
        return None
    metas = entry.get("metas")
    source = metas if isinstance(metas, Mapping) else entry
    if not source.get("id"):
        return None
    return {"id": str(source["id"]), "title": source.get("title"), "url": source.get("url")}


def _attachment_items(adapter: ExploreAdapter, dataset: str, metadata: Any) -> list[dict[str, Any]]:
    """``[{id, title, url}]`` from the dataset metadata, else from ``/attachments``."""
    items = metadata.get("attachments") if isinstance(metadata, Mapping) else None
    if not isinstance(items, list):
        items = adapter.attachments(dataset)
    return [flat for flat in map(_flat_attachment, items) if flat is not None]


def _published_name(item: Mapping[str, Any]) -> str:
    """The attachment's file name as published (``odsfile://<name>``, title, id), made safe."""
    url = item.get("url")
    if isinstance(url, str) and url.startswith("odsfile://") and len(url) > len("odsfile://"):
        return safe_file_name(url[len("odsfile://") :])
    title = item.get("title")
    if isinstance(title, str) and title.strip():
        return safe_file_name(title.strip())
    return safe_file_name(str(item["id"]))


def attachment_file_names(attachments: Sequence[Any]) -> list[str]:
    """Local file names for a dataset's attachments, in order: the published name (the
    ``odsfile://`` name, else the title, else the id) made safe; names that repeat (case
    aside) get ``-<attachment id>``. Entries are dataset-metadata attachments
    (``{id, title, url}``) or ``/attachments`` entries (``{href, metas}``); those without an
    id are skipped."""
    names: list[str] = []
    used: set[str] = set()
    for item in filter(None, map(_flat_attachment, attachments)):
        name = _published_name(item)
        if name.lower() in used:
            stem, dot, extension = name.rpartition(".")
            suffix = safe_file_name(str(item["id"]), keep_extension=False)
            name = f"{stem}-{suffix}.{extension}" if dot and stem else f"{name}-{suffix}"
        used.add(name.lower())
        names.append(name)
    return names


def _attachment_url(adapter: ExploreAdapter, dataset: str, attachment_id: str) -> str:
    return f"{adapter.dataset_url(dataset)}/attachments/{quote(attachment_id, safe='')}"


def _fetch_attachment(
    adapter: ExploreAdapter,
    dataset: str,
    attachment_id: str,
    dest: Path,
    *,
    into_folder: bool,
    fallback_name: str | None,
    known: Sequence[str],
) -> Path:
    from odsframe._http import save_response

    url = _attachment_url(adapter, dataset, attachment_id)
    try:
        response = adapter.http.request(url, dataset=dataset, stream=True, accept="*/*")
    except DatasetNotFoundError as err:
        from odsframe._portal_url import portal_host

        listed = ", ".join(repr(k) for k in known) or "none"
        raise DatasetNotFoundError(
            f"Attachment {attachment_id!r} was not found in dataset {dataset!r} on "
            f"{portal_host(adapter.base_url)} (HTTP {err.status}). Its attachments: {listed}.",
            status=err.status,
            error_code=err.error_code,
            server_message=err.server_message,
            dataset=dataset,
            url=err.url,
        ) from None
    with contextlib.closing(response):
        _check_html(response, f"attachment {attachment_id!r}", dataset)
        path = dest
        if into_folder:
            name = fallback_name
            if name is None:
                sent = _disposition_name(response.headers.get("Content-Disposition"))
                name = safe_file_name(sent) if sent else safe_file_name(attachment_id)
            path = dest / name
        save_response(response, path, dataset=dataset)
    return path


def download_attachment(
    adapter: ExploreAdapter,
    dataset: str,
    attachment_id: str,
    dest: str | os.PathLike[str],
    *,
    metadata: Any = None,
) -> Path:
    """Download one attachment of ``dataset`` to ``dest`` (a file path or an existing folder).

    In a folder, the file is named as published (the ``odsfile://`` name, else the title or
    the server's file name, made safe). Used by
    :meth:`odsframe.portal.Dataset.download_attachment`.

    Raises
    ------
    DatasetNotFoundError
        When the dataset has no such attachment (the message lists the ones it has).
    """
    if not isinstance(attachment_id, str) or not attachment_id.strip():
        raise InvalidQueryArgument(
            f"attachment_id: expected a non-empty string, got {attachment_id!r}"
        )
    target = Path(dest)
    items = _attachment_items(adapter, dataset, metadata) if metadata is not None else []
    known = [str(item["id"]) for item in items]
    into_folder = target.is_dir()
    if not into_folder and not target.parent.is_dir():
        raise InvalidQueryArgument(f"dest: the folder {target.parent} does not exist")
    item = next((i for i in items if i.get("id") == attachment_id), None)
    return _fetch_attachment(
        adapter,
        dataset,
        attachment_id,
        target,
        into_folder=into_folder,
        fallback_name=_published_name(item) if item is not None else None,
        known=known,
    )


def download_attachments(
    adapter: ExploreAdapter,
    dataset: str,
    folder: str | os.PathLike[str],
    *,
    metadata: Any = None,
) -> list[Path]:
    """Download every attachment of ``dataset`` into ``folder`` (created if needed).

    Files are named as published (see :func:`download_attachment`); two attachments with the
    same name get ``-<attachment id>`` added. Existing files are replaced (atomically).
    Returns the paths in the order of the dataset's attachment list.
    """
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InvalidQueryArgument(f"folder: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    items = _attachment_items(adapter, dataset, metadata)
    known = [str(item["id"]) for item in items]
    paths = []
    for item, name in zip(items, attachment_file_names(items), strict=True):
        paths.append(
            _fetch_attachment(
                adapter,
                dataset,
                str(item["id"]),
                out / name,
                into_folder=False,
                fallback_name=None,
                known=known,
            )
        )
    logger.info("attachments of %s: %d downloaded to %s", dataset, len(paths), out)
    return paths

"""Portal addresses: what users type -> the portal's base URL, and safe URL path segments."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from odsframe.errors import InvalidQueryArgument

__all__ = ["dataset_path_segment", "portal_host", "resolve_portal"]

_SHORTHAND = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Path parts that start the API or front-office part of a pasted URL.
_PORTAL_PATH_ENDS = ("/api/", "/explore/")


def resolve_portal(portal: str) -> str:
    """The base URL (scheme, host, optional path prefix; no trailing ``/``) of a portal.

    Parameters
    ----------
    portal
        * a full URL, ``http(s)://host[:port][/prefix]``; anything from ``/api/`` or
          ``/explore/`` on, the query string and the fragment are dropped, so a pasted API
          or dataset page URL works;
        * a bare domain, ``data.example.org`` -> ``https://data.example.org``
          (``localhost`` and ``127.0.0.1`` get ``http://``);
        * a shorthand without a dot, ``public`` -> ``https://public.opendatasoft.com``.

    Examples
    --------
    >>> resolve_portal("https://data.example.org/api/explore/v2.1/catalog/datasets/")
    'https://data.example.org'
    >>> resolve_portal("public")
    'https://public.opendatasoft.com'
    """
    if not isinstance(portal, str) or not portal.strip():
        raise InvalidQueryArgument(
            f"portal: expected a URL, a domain or a portal name, got {portal!r}"
        )
    text = portal.strip()
    if "://" not in text:
        host = re.split(r"[/?#]", text, maxsplit=1)[0]
        if "." not in host and ":" not in host and host.lower() != "localhost":
            if not _SHORTHAND.fullmatch(host) or host != text.rstrip("/"):
                raise InvalidQueryArgument(
                    f"portal: {portal!r} is neither a URL, a domain nor a portal name"
                )
            return f"https://{host.lower()}.opendatasoft.com"
        scheme = "http" if host.lower().split(":")[0] in _LOCAL_HOSTS else "https"
        if host.startswith("[::1]"):
            scheme = "http"
        text = f"{scheme}://{text}"
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidQueryArgument(
            f"portal: only http and https portals are supported, got {parts.scheme!r}"
        )
    if not parts.hostname:
        raise InvalidQueryArgument(f"portal: {portal!r} has no host name")
    if parts.username or parts.password:
        raise InvalidQueryArgument(
            "portal: do not put credentials in the portal URL; pass api_key= or set ODS_APIKEY"
        )
    try:
        port = parts.port
    except ValueError as err:
        raise InvalidQueryArgument(f"portal: {portal!r} has an invalid port") from err
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    path = parts.path
    for marker in _PORTAL_PATH_ENDS:
        index = (path + "/").find(marker)
        if index != -1:
            path = path[:index]
    return f"{parts.scheme.lower()}://{netloc}{path.rstrip('/')}"


def portal_host(portal: str) -> str:
    """The host (with port when there is one) of a portal, e.g. for keyring look-ups."""
    return urlsplit(resolve_portal(portal)).netloc


def dataset_path_segment(dataset_id: str) -> str:
    """``dataset_id`` escaped for use as one URL path segment.

    ``@`` (federated ids such as ``prices@public``) is legal in a path segment and kept;
    ``/``, ``?``, ``#``, ``%``, spaces and non-ASCII characters are percent-encoded.
    """
    if not isinstance(dataset_id, str) or not dataset_id or dataset_id in (".", ".."):
        raise InvalidQueryArgument(f"dataset: {dataset_id!r} is not a valid dataset id")
    return quote(dataset_id, safe="@")

"""API keys: where they come from, how they are sent, and how they stay secret.

The key chain, first match wins:

1. the ``api_key=`` argument;
2. the environment: ``ODS_APIKEY``, ``ODS_API_KEY``, ``HUWISE_API_KEY`` (in that order).
   A variable holds either one key for every portal, or keys per portal host:
   ``data.example.org=KEY1,other.example.com=KEY2`` (commas, semicolons or spaces between
   the pairs); a host missing from such a list gets no key from that variable;
3. the system keyring: ``keyring.get_password("odsframe", <portal host>)``, when the
   optional ``keyring`` package is installed and has a working backend;
4. the netrc file (``$NETRC`` or ``~/.netrc``): the ``password`` of the portal host's
   ``machine`` entry.

A key is sent only as the ``Authorization: Apikey <key>`` header (:class:`ApiKeyAuth`),
never in a URL. :class:`ApiKey` masks itself in ``repr``/``str``, and cache keys use
:func:`credential_digest`, a salted one-way digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from odsframe.errors import InvalidQueryArgument

if TYPE_CHECKING:
    from requests import PreparedRequest

__all__ = [
    "ENV_VARS",
    "KEYRING_SERVICE",
    "ApiKey",
    "ApiKeyAuth",
    "credential_digest",
    "resolve_api_key",
]

logger = logging.getLogger(__name__)

#: Environment variables read for a key, in order.
ENV_VARS: tuple[str, ...] = ("ODS_APIKEY", "ODS_API_KEY", "HUWISE_API_KEY")
#: Service name under which keys are looked up in the system keyring.
KEYRING_SERVICE = "odsframe"

# Fixed so the digest of a key is the same in every process (cache keys must persist);
# it only has to keep digests from being compared with plain SHA-256 tables.
_DIGEST_SALT = b"odsframe/credential-digest/v1"
_DIGEST_ITERATIONS = 20_000


class ApiKey:
    """An API key that never shows itself in ``repr``, ``str``, logs or tracebacks.

    Parameters
    ----------
    value
        The key.
    source
        Where it came from (``"argument"``, ``"env:ODS_APIKEY"``, ``"keyring"``).
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "argument") -> None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidQueryArgument("api_key: expected a non-empty string")
        if any(char.isspace() for char in value.strip()):
            raise InvalidQueryArgument("api_key: the key contains whitespace")
        self._value = value.strip()
        self.source = source

    def reveal(self) -> str:
        """The key itself (only the HTTP layer should call this)."""
        return self._value

    def __repr__(self) -> str:
        return f"ApiKey(<hidden>, source={self.source!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("ApiKey", self._value))


def _from_keyring(host: str) -> str | None:
    try:
        import keyring
    except ImportError:
        return None
    try:
        value = keyring.get_password(KEYRING_SERVICE, host)
    except Exception as err:  # any backend failure means "no key here"
        logger.debug("keyring look-up for %s failed: %s", host, type(err).__name__)
        return None
    return value or None


#: ``host=key`` (a host: letters, digits, dots and dashes, optionally ``:port``).
_HOST_KEY = re.compile(r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?)=(?P<key>\S+)")


def _env_key(value: str, host: str | None) -> str | None:
    """The key an environment variable gives for ``host``: its whole value, or the entry of
    ``host`` when the value is a list of ``host=key`` pairs."""
    items = [item for item in re.split(r"[,;\s]+", value) if item]
    pairs = [_HOST_KEY.fullmatch(item) for item in items]
    if not items or not all(pairs):
        return value
    # Every item is host=key: a per-portal list (a bare key never contains "=" after
    # a dotted host name, and ODS keys are letters and digits).
    if not all("." in m["host"] or m["host"].split(":")[0] == "localhost" for m in pairs if m):
        return value
    wanted = (host or "").lower()
    for match in pairs:
        if match is not None and match["host"].lower() in (wanted, wanted.split(":")[0]):
            return match["key"]
    return None


def _from_netrc(host: str, environ: Mapping[str, str]) -> str | None:
    import netrc

    path = environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return None
    try:
        entry = netrc.netrc(path).authenticators(host.split(":")[0])
    except (OSError, netrc.NetrcParseError) as err:
        logger.debug("netrc look-up for %s failed: %s", host, type(err).__name__)
        return None
    return entry[2] if entry and entry[2] else None


def resolve_api_key(
    api_key: str | ApiKey | None = None,
    *,
    host: str | None = None,
    environ: Mapping[str, str] | None = None,
    use_keyring: bool = True,
) -> ApiKey | None:
    """The API key to use, from the argument, the environment, the keyring or netrc.

    Parameters
    ----------
    api_key
        An explicit key; wins over everything else.
    host
        The portal's host (``data.example.org``): the keyring user name, the netrc machine
        and the key of a per-portal environment list.
    environ
        The environment to read (``os.environ`` by default).
    use_keyring
        Whether to ask the system keyring.

    Returns
    -------
    ApiKey or None
        ``None`` means anonymous access.
    """
    if isinstance(api_key, ApiKey):
        return api_key
    if api_key is not None:
        return ApiKey(api_key, source="argument")
    env = os.environ if environ is None else environ
    for name in ENV_VARS:
        value = env.get(name, "").strip()
        key = _env_key(value, host) if value else None
        if key:
            return ApiKey(key, source=f"env:{name}")
    if use_keyring and host:
        stored = _from_keyring(host)
        if stored:
            return ApiKey(stored, source="keyring")
    if host:
        password = _from_netrc(host, env)
        if password:
            return ApiKey(password, source="netrc")
    return None


def credential_digest(api_key: ApiKey | str | None) -> str:
    """A salted one-way digest of a key for cache keys; ``"anonymous"`` without a key.

    Different keys may see different records, so caches keep them apart, without ever
    writing the key itself.
    """
    if api_key is None:
        return "anonymous"
    value = api_key.reveal() if isinstance(api_key, ApiKey) else ApiKey(api_key).reveal()
    digest = hashlib.pbkdf2_hmac("sha256", value.encode("utf-8"), _DIGEST_SALT, _DIGEST_ITERATIONS)
    return digest.hex()[:24]


class ApiKeyAuth:
    """A ``requests`` auth object that adds ``Authorization: Apikey <key>``.

    ``requests`` drops the header itself when a redirect leaves the portal's host.
    """

    def __init__(self, api_key: ApiKey | str) -> None:
        self.api_key = api_key if isinstance(api_key, ApiKey) else ApiKey(api_key)

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = f"Apikey {self.api_key.reveal()}"
        return request

    def __repr__(self) -> str:
        return f"ApiKeyAuth({self.api_key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKeyAuth) and other.api_key == self.api_key

    def __hash__(self) -> int:
        return hash(("ApiKeyAuth", self.api_key))

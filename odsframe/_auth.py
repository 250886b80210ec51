"""API keys: where they come from, how they are sent, and how they stay secret.

The key chain, first match wins:

1. the ``api_key=`` argument;
2. the environment: ``ODS_APIKEY``, ``ODS_API_KEY``, ``HUWISE_API_KEY`` (in that order);
3. the system keyring: ``keyring.get_password("odsframe", <portal host>)``, when the
   optional ``keyring`` package is installed and has a working backend.

A key is sent only as the ``Authorization: Apikey <key>`` header (:class:`ApiKeyAuth`),
never in a URL. :class:`ApiKey` masks itself in ``repr``/``str``, and cache keys use
:func:`credential_digest`, a salted one-way digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
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


def resolve_api_key(
    api_key: str | ApiKey | None = None,
    *,
    host: str | None = None,
    environ: Mapping[str, str] | None = None,
    use_keyring: bool = True,
) -> ApiKey | None:
    """The API key to use, from the argument, the environment or the keyring.

    Parameters
    ----------
    api_key
        An explicit key; wins over everything else.
    host
        The portal's host, used as the keyring user name (``data.example.org``).
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
        if value:
            return ApiKey(value, source=f"env:{name}")
    if use_keyring and host:
        stored = _from_keyring(host)
        if stored:
            return ApiKey(stored, source="keyring")
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

"""The API key chain, the masked key, the header auth and the cache digest."""

from __future__ import annotations

import logging
import sys

import pytest
import requests

from odsframe._auth import (
    ENV_VARS,
    ApiKey,
    ApiKeyAuth,
    credential_digest,
    resolve_api_key,
)
from odsframe.errors import InvalidQueryArgument


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # A keyring backend that always fails: no key can come from a real user keyring.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring.backends.fail
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.backends.fail.Keyring())
    return monkeypatch


def test_explicit_argument_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ODS_APIKEY", "from-env")
    key = resolve_api_key("from-arg", host="data.example.org")
    assert key is not None
    assert key.reveal() == "from-arg"
    assert key.source == "argument"


def test_an_apikey_object_is_used_as_is(clean_env: pytest.MonkeyPatch) -> None:
    key = ApiKey("k1", source="custom")
    assert resolve_api_key(key) is key


def test_environment_order(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HUWISE_API_KEY", "third")
    key = resolve_api_key()
    assert key is not None and (key.reveal(), key.source) == ("third", "env:HUWISE_API_KEY")
    clean_env.setenv("ODS_API_KEY", "second")
    key = resolve_api_key()
    assert key is not None and key.reveal() == "second"
    clean_env.setenv("ODS_APIKEY", "first")
    key = resolve_api_key()
    assert key is not None and (key.reveal(), key.source) == ("first", "env:ODS_APIKEY")


def test_empty_environment_values_are_skipped(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ODS_APIKEY", "   ")
    clean_env.setenv("ODS_API_KEY", "real")
    key = resolve_api_key()
    assert key is not None and key.reveal() == "real"


def test_an_explicit_environment_mapping(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ODS_APIKEY", "process-env")
    key = resolve_api_key(environ={"HUWISE_API_KEY": "given"})
    assert key is not None and key.reveal() == "given"


def test_a_failing_keyring_backend_means_no_key(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="odsframe"):
        assert resolve_api_key(host="data.example.org") is None
    assert "keyring look-up for data.example.org failed: NoKeyringError" in caplog.text


def test_no_keyring_installed_means_no_key(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setitem(sys.modules, "keyring", None)  # makes `import keyring` fail
    assert resolve_api_key(host="data.example.org") is None


def test_keyring_can_be_switched_off(clean_env: pytest.MonkeyPatch) -> None:
    assert resolve_api_key(host="data.example.org", use_keyring=False) is None


def test_the_key_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    key = ApiKey("s3cr3t-value")
    auth = ApiKeyAuth(key)
    for text in (repr(key), str(key), repr(auth), f"{key}", f"{[key]}"):
        assert "s3cr3t" not in text
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("odsframe").debug("using %s", key)
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize("bad", ["", "   ", "two words", None, 12])
def test_bad_keys_are_refused(bad: object) -> None:
    with pytest.raises(InvalidQueryArgument, match="api_key"):
        ApiKey(bad)  # type: ignore[arg-type]


def test_the_key_goes_in_the_authorization_header_only() -> None:
    request = requests.Request(
        "GET", "https://data.example.org/api/explore/v2.1/catalog", auth=ApiKeyAuth("k-123")
    ).prepare()
    assert request.headers["Authorization"] == "Apikey k-123"
    assert request.url is not None and "k-123" not in request.url


def test_credential_digest() -> None:
    assert credential_digest(None) == "anonymous"
    digest = credential_digest("k-123")
    assert digest == credential_digest(ApiKey("k-123"))
    assert digest != credential_digest("k-124")
    assert "k-123" not in digest
    assert len(digest) == 24
    int(digest, 16)  # hex

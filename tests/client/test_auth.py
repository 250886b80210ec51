"""The API key chain, the masked key, the header auth and the cache digest."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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
    monkeypatch.setenv("NETRC", "/nonexistent/odsframe-test-netrc")
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


def test_a_per_portal_environment_list_gives_each_host_its_key(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("ODS_APIKEY", "data.example.org=k-data, other.example.com=k-other")
    clean_env.setenv("HUWISE_API_KEY", "127.0.0.1=k-local;localhost:8000=k-port")
    for host, expected, source in [
        ("data.example.org", "k-data", "env:ODS_APIKEY"),
        ("DATA.example.org", "k-data", "env:ODS_APIKEY"),
        ("other.example.com", "k-other", "env:ODS_APIKEY"),
        ("127.0.0.1:41234", "k-local", "env:HUWISE_API_KEY"),  # the port is optional
        ("localhost:8000", "k-port", "env:HUWISE_API_KEY"),
    ]:
        key = resolve_api_key(host=host, use_keyring=False)
        assert key is not None and (key.reveal(), key.source) == (expected, source), host
    # a portal in no list gets no key: another portal's key is never sent to it
    assert resolve_api_key(host="third.example.net", use_keyring=False) is None
    clean_env.setenv("ODS_API_KEY", "a-global-key")
    key = resolve_api_key(host="third.example.net", use_keyring=False)
    assert key is not None and (key.reveal(), key.source) == ("a-global-key", "env:ODS_API_KEY")


@pytest.mark.parametrize("value", ["abc=", "k3y==", "token=abc123", "a=b=c"])
def test_keys_that_look_a_little_like_pairs_are_plain_keys(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("ODS_APIKEY", value)
    key = resolve_api_key(host="data.example.org", use_keyring=False)
    assert key is not None and key.reveal() == value


def test_netrc_is_the_last_source(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text(
        "machine data.example.org login me password netrc-key\nmachine other.example.com login me\n"
    )
    netrc_file.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc_file))
    key = resolve_api_key(host="data.example.org:443")
    assert key is not None and (key.reveal(), key.source) == ("netrc-key", "netrc")
    assert resolve_api_key(host="other.example.com") is None  # no password
    assert resolve_api_key(host="elsewhere.example.org") is None
    clean_env.setenv("ODS_APIKEY", "env-first")
    key = resolve_api_key(host="data.example.org")
    assert key is not None and key.source == "env:ODS_APIKEY"
    netrc_file.write_text("machine broken")
    clean_env.delenv("ODS_APIKEY")
    assert resolve_api_key(host="data.example.org") is None
    clean_env.setenv("NETRC", str(tmp_path / "missing"))
    assert resolve_api_key(host="data.example.org") is None


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

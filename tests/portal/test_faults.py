"""Fault injection in the local portal: spec parsing, triggers, and faults over real HTTP."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pytest
import requests
from urllib3.exceptions import ProtocolError

from odsframe.cli import build_parser
from odsframe.testing.catalog import Catalog
from odsframe.testing.faults import (
    FaultRule,
    Faults,
    FaultSpecError,
    InjectedDisconnect,
    Trigger,
    as_faults,
    parse_faults,
)
from odsframe.testing.model import PortalDataset, PortalField
from odsframe.testing.portal import LocalPortal

DATASET = "fault-rows"
ROWS = 500
RECORDS = f"/api/explore/v2.1/catalog/datasets/{DATASET}/records"
METADATA = f"/api/explore/v2.1/catalog/datasets/{DATASET}"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    catalog = Catalog()
    catalog.add_dataset(
        PortalDataset(
            dataset_id=DATASET,
            table="",
            fields=[
                PortalField("n", "int", "N", annotations={"id": []}),
                PortalField("label", "text", "Label"),
            ],
            metas={"default": {"title": "Rows for fault tests"}},
            processed_at=datetime(2024, 1, 1, tzinfo=UTC),
        ),
        pa.table(
            {
                "n": pa.array(range(ROWS), pa.int64()),
                "label": [f"row number {i:04d} " + "x" * 40 for i in range(ROWS)],
            }
        ),
    )
    return catalog


@pytest.fixture()
def faulty(catalog: Catalog) -> Iterator[LocalPortal]:
    """A portal whose faults each test configures (``portal.faults.configure(...)``)."""
    with LocalPortal(catalog=catalog, faults=Faults()) as portal:
        yield portal


# -- spec text ------------------------------------------------------------------------------


def test_parse_spec_with_every_key() -> None:
    rules = parse_faults(
        "path=*/exports/*,drop=every:3,drop_after=100,seed=7; "
        "503=0.25,status429=first:2,retry_after=0.5,delay=0.01"
    )
    assert len(rules) == 2
    exports, other = rules
    assert exports.path == "*/exports/*"
    assert exports.drop == Trigger(every=3)
    assert (exports.drop_after, exports.seed) == (100, 7)
    assert other.path == "/api/*"
    assert other.status503 == Trigger(probability=0.25)
    assert other.status429 == Trigger(first=2)
    assert (other.retry_after, other.delay) == (0.5, 0.01)


def test_spec_round_trips_through_describe() -> None:
    faults = Faults.parse("path=*/records,drop=0.2,status503=every:4,seed=1")
    again = Faults.parse(faults.describe())
    assert again.rules == faults.rules


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("drop", "is not key=value"),
        ("bogus=1", "unknown key 'bogus'"),
        ("drop=2", "between 0 and 1"),
        ("drop=often", "is not a trigger"),
        ("status503=every:0", "every:K needs K >= 1"),
        ("delay=-1", "seconds >= 0"),
        ("drop_after=lots", "is not a number"),
        ("drop=0.1,drop=0.2", "given twice"),
    ],
)
def test_bad_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_faults(spec)


def test_as_faults_accepts_every_form() -> None:
    rule = FaultRule("*/records", drop="every:2")
    assert as_faults(None) is None
    assert as_faults(rule).rules == (rule,)  # type: ignore[union-attr]
    assert as_faults([rule, rule]).rules == (rule, rule)  # type: ignore[union-attr]
    faults = Faults([rule])
    assert as_faults(faults) is faults
    assert as_faults("drop=0.5").rules[0].drop == Trigger(probability=0.5)  # type: ignore[union-attr]
    with pytest.raises(FaultSpecError, match="expected a spec string"):
        as_faults(3)  # type: ignore[call-overload]


def test_cli_serve_takes_a_fault_spec(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve", "--sample", "--faults", "drop=0.2,seed=1"])
    assert args.faults == "drop=0.2,seed=1"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--sample", "--faults", "drop=lots"])
    assert "is not a trigger" in capsys.readouterr().err


# -- triggers -------------------------------------------------------------------------------


def test_every_and_first_triggers() -> None:
    rng = random.Random(0)
    every = Trigger(every=3)
    first = Trigger(first=2)
    assert [n for n in range(1, 10) if every.fires(n, rng)] == [3, 6, 9]
    assert [n for n in range(1, 10) if first.fires(n, rng)] == [1, 2]


def test_probability_draws_repeat_with_the_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        faults = Faults([FaultRule(drop=0.3, status503=0.2, seed=seed)])
        return [faults.decide("/api/x", "")[1] for _ in range(200)]

    first, again, other = draws(5), draws(5), draws(6)
    assert first == again
    assert first != other
    assert 20 < first.count("drop") < 90
    assert 20 < first.count("status503") < 70


def test_first_matching_rule_handles_a_request() -> None:
    faults = Faults.parse("path=*/records,status503=every:1;status429=every:1")
    assert faults.decide("/api/x/records", "")[1] == "status503"
    assert faults.decide("/api/x/facets", "")[1] == "status429"
    assert faults.decide("/elsewhere", "")[1] is None  # outside the default /api/* path
    assert faults.injected == {"status503": 1, "status429": 1}


def test_disabled_faults_still_count_requests() -> None:
    faults = Faults.parse("status503=every:1")
    faults.enabled = False
    assert faults.decide("/api/records", "limit=1") == (faults.rules[0], None)
    assert faults.count("*/records") == 1
    assert faults.count(fault="status503") == 0


def test_injected_disconnect_tracebacks_are_not_logged() -> None:
    from odsframe.testing.faults import _QuietDisconnects

    quiet = _QuietDisconnects()

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "uvicorn.error", logging.ERROR, "", 0, "boom", (), (type(error), error, None)
        )

    assert not quiet.filter(record(InjectedDisconnect("cut")))
    assert not quiet.filter(record(BaseExceptionGroup("g", [InjectedDisconnect("cut")])))
    assert quiet.filter(record(RuntimeError("a real bug")))


# -- over HTTP ------------------------------------------------------------------------------


def test_every_second_request_gets_a_503(faulty: LocalPortal) -> None:
    assert faulty.faults is not None
    faulty.faults.configure("path=*/records,status503=every:2")
    statuses = [requests.get(faulty.url + RECORDS, timeout=10).status_code for _ in range(4)]
    assert statuses == [200, 503, 200, 503]
    answer = requests.get(faulty.url + RECORDS, timeout=10)
    assert answer.status_code == 200
    failed = requests.get(faulty.url + RECORDS, timeout=10)
    assert failed.json()["error_code"] == "ServiceUnavailable"
    # Other paths are not touched by the rule.
    assert requests.get(faulty.url + METADATA, timeout=10).status_code == 200
    assert faulty.faults.count("*/records", fault="status503") == 3


def test_429_announces_retry_after(faulty: LocalPortal) -> None:
    assert faulty.faults is not None
    faulty.faults.configure("status429=first:1,retry_after=3")
    answer = requests.get(faulty.url + RECORDS, timeout=10)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    body = answer.json()
    assert body["errorcode"] == 10002
    assert datetime.fromisoformat(body["reset_time"].replace("Z", "+00:00")) > datetime.now(UTC)
    assert requests.get(faulty.url + RECORDS, timeout=10).status_code == 200


def test_dropped_connection_cuts_the_body_after_n_bytes(faulty: LocalPortal) -> None:
    assert faulty.faults is not None
    faulty.faults.configure("path=*/records,drop=first:1,drop_after=100")
    url = f"{faulty.url}{RECORDS}?limit=100"
    answer = requests.get(url, stream=True, timeout=10)
    assert answer.status_code == 200
    received = b""
    with pytest.raises(ProtocolError):
        while chunk := answer.raw.read(7):
            received += chunk
    assert len(received) == 100
    full = requests.get(url, timeout=10)
    assert full.status_code == 200
    assert full.content.startswith(received)
    assert len(full.content) > 100
    assert faulty.faults.injected == {"drop": 1}


def test_dropped_connection_at_a_random_point(faulty: LocalPortal) -> None:
    assert faulty.faults is not None
    faulty.faults.configure("path=*/records,drop=every:1,seed=3")
    url = f"{faulty.url}{RECORDS}?limit=100"
    for _ in range(3):
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(url, timeout=10)
    faulty.faults.enabled = False
    assert len(requests.get(url, timeout=10).json()["results"]) == 100


def test_slow_answers_are_still_right(faulty: LocalPortal) -> None:
    assert faulty.faults is not None
    faulty.faults.configure("path=*/records,delay=0.05")
    answer = requests.get(f"{faulty.url}{RECORDS}?limit=0", timeout=10)
    assert answer.json()["total_count"] == ROWS
    assert faulty.faults.count("*/records") == 1


def test_streamed_export_is_cut(faulty: LocalPortal) -> None:
    assert faulty.faults is not None
    faulty.faults.configure("path=*/exports/*,drop=first:1,drop_after=2000")
    url = f"{faulty.url}/api/explore/v2.1/catalog/datasets/{DATASET}/exports/jsonl"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    lines = requests.get(url, timeout=10).content.splitlines()
    assert len(lines) == ROWS


def test_local_portal_rejects_a_bad_spec() -> None:
    with pytest.raises(FaultSpecError, match="unknown key"):
        LocalPortal(sample=False, faults="explode=1")

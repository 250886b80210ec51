"""``odsframe serve``: a real subprocess, its first line, HTTP requests, then Ctrl-C."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from odsframe.cli import build_parser, main

STARTUP_TIMEOUT = 60


def write_data_folder(folder: Path) -> Path:
    records = [
        {"name": "Alpha", "size": 1, "seen": "2024-07-01T10:00:00+00:00"},
        {"name": "Beta", "size": 2, "seen": "2024-01-15T10:00:00+00:00"},
    ]
    (folder / "cli-demo.json").write_text(json.dumps(records), encoding="utf-8")
    return folder


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
    assert ready, "odsframe serve printed nothing"
    return process.stdout.readline().strip()


@pytest.fixture()
def serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def start(started: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "odsframe.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    return process


def test_serve_prints_the_url_first_and_stops_on_ctrl_c(
    tmp_path: Path, serve: list[subprocess.Popen[str]]
) -> None:
    folder = write_data_folder(tmp_path)
    process = start(serve, "--data", str(folder), "--port", "0")
    url = first_line(process)
    assert url.startswith("http://127.0.0.1:")
    assert int(url.rsplit(":", 1)[1]) > 0

    catalog = requests.get(f"{url}/api/explore/v2.1/catalog/datasets", timeout=30)
    assert catalog.status_code == 200
    assert [item["dataset_id"] for item in catalog.json()["results"]] == ["cli-demo"]
    records = requests.get(
        f"{url}/api/explore/v2.1/catalog/datasets/cli-demo/records",
        params={"order_by": "size", "timezone": "Europe/Paris"},
        timeout=30,
    )
    assert records.status_code == 200
    assert records.json()["total_count"] == 2
    assert records.json()["results"][0]["seen"] == "2024-07-01T12:00:00+02:00"

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    _, stderr = process.communicate(timeout=10)
    assert "Traceback" not in stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


def test_serve_with_keys_and_quota(tmp_path: Path, serve: list[subprocess.Popen[str]]) -> None:
    folder = write_data_folder(tmp_path)
    process = start(serve, "--data", str(folder), "--port", "0", "--api-key", "k1", "--quota", "2")
    url = first_line(process)
    target = f"{url}/api/explore/v2.1/catalog/datasets/cli-demo"
    assert requests.get(target, params={"apikey": "k1"}, timeout=30).status_code == 200
    assert requests.get(target, params={"apikey": "wrong"}, timeout=30).status_code == 401
    answer = requests.get(target, params={"apikey": "k1"}, timeout=30)
    assert answer.headers["X-RateLimit-Limit"] == "2"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert requests.get(target, params={"apikey": "k1"}, timeout=30).status_code == 429
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_serve_needs_data_or_sample(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve"]) == 2
    assert "--data DIR, --sample" in capsys.readouterr().err
    assert main(["serve", "--data", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_serve_rejects_bad_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--port", "70000"], ["--port", "x"], ["--quota", "-1"], ["--records", "1.5"]):
        with pytest.raises(SystemExit) as stopped:
            main(["serve", "--sample", *args])
        assert stopped.value.code == 2
        assert "error" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_parser_defaults() -> None:
    args = build_parser().parse_args(["serve", "--sample"])
    assert (args.host, args.port, args.records, args.quota, args.api_keys) == (
        "127.0.0.1",
        8000,
        10_000,
        None,
        [],
    )
    keyed = build_parser().parse_args(["serve", "--sample", "--api-key", "a", "--api-key", "b"])
    assert keyed.api_keys == ["a", "b"]


def test_serve_sample(serve: list[subprocess.Popen[str]]) -> None:
    process = start(serve, "--sample", "--records", "50", "--port", "0")
    url = first_line(process)
    answer = requests.get(
        f"{url}/api/explore/v2.1/catalog/datasets/sample-events/records",
        params={"limit": 0},
        timeout=30,
    )
    assert answer.json() == {"total_count": 50, "results": []}
    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0


def test_serve_reports_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_data_folder(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--data", str(folder), "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err

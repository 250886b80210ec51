"""What the benchmark scripts share: a sample portal in its own process, /proc memory, and
byte-compiling odsframe the way an install does.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path`` and they
``import _common``.
"""

from __future__ import annotations

import compileall
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compile_package() -> None:
    """Byte-compile odsframe's modules into ``__pycache__`` (as ``pip install`` does).

    Fresh processes then import odsframe as an installed copy does. Without it, a machine
    with ``PYTHONDONTWRITEBYTECODE=1`` (this one) compiles every module from source at every
    import, adding about 0.1 s to each measured read.
    """
    compileall.compile_dir(ROOT / "odsframe", quiet=1)


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``, ``VmHWM`` ...); 0 if unreadable."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB."""
    return status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (``VmHWM``) of process ``pid`` in MB."""
    return status_kb(pid, "VmHWM") / 1024


@contextlib.contextmanager
def sample_portal(records: int) -> Iterator[tuple[subprocess.Popen[str], str, float]]:
    """``odsframe serve --sample --records N --port 0`` in its own process.

    Yields ``(process, base URL, start-up seconds)`` once the portal answers a catalog
    request, and stops it afterwards. The start-up time runs from the launch to that answer.
    """
    import requests

    command = [sys.executable, "-m", "odsframe.cli", "serve", "--sample", "--port", "0"]
    command += ["--records", str(records)]
    started = time.perf_counter()
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the portal did not start (exit code {server.wait()})")
        while True:
            try:
                requests.get(f"{url}/api/explore/v2.1/catalog/datasets", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.05)
        yield server, url, time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(30)

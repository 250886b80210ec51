"""``LocalPortal``: the portal's app served by uvicorn in a background thread."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

#: How long :meth:`LocalPortal.start` waits for the server to answer.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class LocalPortal:
    """An ODS-compatible portal on this machine, for tests, demos and offline work.

    Parameters
    ----------
    data_dir
        A folder of data files (``<dataset_id>.csv|.json|.geojson|.parquet`` with optional
        ``<dataset_id>.schema.json``) loaded with ``Catalog.from_folder``.
    sample
        Add the generated sample datasets.
    sample_records
        Number of records of the large sample dataset.
    api_keys
        Keys that open restricted datasets (any other key is refused).
    quota
        Calls allowed per client and UTC day before 429 answers; ``None`` for none.
    host, port
        Where to listen; ``port=0`` picks a free port.
    catalog
        A ready ``Catalog`` to serve instead of building one (then ``data_dir`` and
        ``sample`` must be left out).
    extra_routes
        More ``server.ApiRoute`` objects to serve besides the built-in ones.
    faults
        Faults to inject: a spec such as ``"drop=0.2,status503=0.1,seed=1"``, a
        ``faults.FaultRule``, a list of them, or a ``faults.Faults`` (see
        :mod:`odsframe.testing.faults`); kept as :attr:`faults` (its log counts requests).
    push_keys
        ``{dataset_id: push key}``: datasets that take records through the real-time push
        API (``/api/push/1.0/<dataset>/<resource>/push/?pushkey=<key>``). With
        ``sample=True``, ``sample-bike-stations`` also takes the fixed key
        ``routes_push.SAMPLE_PUSH_KEY`` (``"sample-push-key"``) unless ``push_keys`` names it.

    Examples
    --------
    >>> with LocalPortal(sample=True) as portal:
    ...     requests.get(f"{portal.url}/api/explore/v2.1/catalog/datasets").json()
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        sample: bool = False,
        sample_records: int = 10_000,
        api_keys: Sequence[str] = (),
        quota: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        catalog: Any = None,
        extra_routes: Sequence[Any] = (),
        faults: Any = None,
        push_keys: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(api_keys, str):
            raise TypeError("api_keys must be a sequence of keys, not a single string")
        if catalog is not None and (data_dir is not None or sample):
            raise ValueError("give either catalog, or data_dir and/or sample, not both")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise FileNotFoundError(f"data_dir is not a folder: {data_dir}")
        if sample_records < 0:
            raise ValueError(f"sample_records must be >= 0, not {sample_records}")
        if quota is not None and quota < 0:
            raise ValueError(f"quota must be >= 0 calls per day, not {quota}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {port}")
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.sample = sample
        self.sample_records = sample_records
        self.api_keys = tuple(api_keys)
        self.quota = quota
        self.host = host
        self.port = port
        self._catalog = catalog
        self.extra_routes = tuple(extra_routes)
        from odsframe.testing.faults import as_faults

        self.faults = as_faults(faults)
        from odsframe.testing.routes_push import (
            SAMPLE_PUSH_DATASET,
            SAMPLE_PUSH_KEY,
            check_push_keys,
        )

        self.push_keys = check_push_keys(push_keys)
        if sample:
            self.push_keys.setdefault(SAMPLE_PUSH_DATASET, SAMPLE_PUSH_KEY)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._app: Any = None

    @property
    def catalog(self) -> Any:
        """The ``Catalog`` served (built on first use)."""
        if self._catalog is None:
            self._catalog = build_catalog(self.data_dir, self.sample, self.sample_records)
        return self._catalog

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (the portal must be started)."""
        if self._server is None:
            raise RuntimeError("the portal is not running: call start() or use it in a with block")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LocalPortal:
        """Start serving and return once the server answers HTTP requests."""
        if self.running:
            return self
        import uvicorn

        from odsframe.testing.server import create_app

        app = create_app(
            self.catalog,
            api_keys=self.api_keys,
            quota=self.quota,
            extra_routes=self.extra_routes,
            faults=self.faults,
            push_keys=self.push_keys,
        )
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
        # (accepted sockets inherit it); without it every answer waits ~40 ms (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="odsframe-portal", daemon=True
        )
        self._server, self._thread, self._socket, self._app = server, thread, sock, app
        thread.start()
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if not self.running:
                raise RuntimeError("the portal's server thread stopped while starting")
            if self._server.started:
                # http.client, not urllib: no environment proxy must come in between.
                connection = http.client.HTTPConnection(self.host, self.port, timeout=5)
                try:
                    connection.request("GET", "/")
                    if connection.getresponse().status == 200:
                        return
                except OSError:
                    pass
                finally:
                    connection.close()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the portal did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving (waits for the server thread to finish)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.should_exit = True
        if thread is not None:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                server.force_exit = True
                thread.join(STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        if self._app is not None:
            self._app.state.portal.close()
        self._server, self._thread, self._socket, self._app = None, None, None, None

    def __enter__(self) -> LocalPortal:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<LocalPortal {where}>"


def build_catalog(data_dir: Path | None, sample: bool, sample_records: int) -> Any:
    """A ``Catalog`` from a data folder and/or the sample datasets."""
    from odsframe.testing.catalog import Catalog

    catalog = Catalog.from_folder(data_dir) if data_dir is not None else Catalog()
    if sample:
        from odsframe.testing.sample import build_sample

        build_sample(catalog, records=sample_records)
    return catalog

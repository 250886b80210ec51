"""The ``odsframe`` command line.

Subcommands (one ``_add_<name>`` function builds each parser, one ``_run_<name>`` runs it):

* ``odsframe serve --data DIR | --sample [--records N] [--host H] [--port P]
  [--api-key KEY ...] [--quota N] [--faults SPEC] [--push-key DATASET=KEY ...]``: run the local ODS-compatible portal in the foreground.
  The first line printed is the portal's base URL; Ctrl-C stops it (exit code 0).
* ``odsframe demo [--records N] [--output DIR]``: a tour on the embedded portal.
* ``odsframe cache info | clear [--portal P] [--dataset D]``: the on-disk cache.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

Runner = Callable[[argparse.Namespace], int]


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _push_key(text: str) -> tuple[str, str]:
    dataset, separator, key = text.partition("=")
    if not separator or not dataset.strip() or not key.strip():
        raise argparse.ArgumentTypeError(f"expected DATASET=KEY, got {text!r}")
    return dataset.strip(), key.strip()


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is between 0 and 65535, got {value}")
    return value


# -- serve ----------------------------------------------------------------------------------


def _add_serve(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the local ODS-compatible portal",
        description=(
            "Serve an ODS-compatible portal (Explore API v2.1) over a data folder and/or the "
            "sample datasets. The first line printed is the base URL; Ctrl-C stops it."
        ),
    )
    parser.add_argument("--data", type=Path, metavar="DIR", help="folder of data files to serve")
    parser.add_argument("--sample", action="store_true", help="serve the sample datasets")
    parser.add_argument(
        "--records",
        type=_non_negative_int,
        default=10_000,
        metavar="N",
        help="records of the large sample dataset (default 10000)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=_port, default=8000, help="port to listen on; 0 picks a free port"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        dest="api_keys",
        help="an API key that opens restricted datasets (repeatable)",
    )
    parser.add_argument(
        "--quota", type=_non_negative_int, metavar="N", help="API calls allowed per client per day"
    )
    parser.add_argument(
        "--faults",
        type=_fault_spec,
        metavar="SPEC",
        help=(
            "inject faults to test retry code, e.g. 'drop=0.2,status503=0.1,seed=1' or "
            "'path=*/exports/*,drop=every:3;status429=0.1,retry_after=2' (keys: path, drop, "
            "drop_after, status503, status429, retry_after, delay, seed; triggers: a "
            "probability, every:K or first:N)"
        ),
    )
    parser.add_argument(
        "--push-key",
        action="append",
        default=[],
        type=_push_key,
        metavar="DATASET=KEY",
        dest="push_keys",
        help=(
            "open DATASET to the real-time push API with this push key (repeatable); "
            "--sample opens sample-bike-stations with the key sample-push-key"
        ),
    )
    parser.set_defaults(run=_run_serve)


def _fault_spec(text: str) -> str:
    from odsframe.testing.faults import FaultSpecError, parse_faults

    try:
        parse_faults(text)
    except FaultSpecError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _run_serve(args: argparse.Namespace) -> int:
    if args.data is None and not args.sample:
        print("odsframe serve: error: give --data DIR, --sample, or both", file=sys.stderr)
        return 2
    if args.data is not None and not args.data.is_dir():
        print(f"odsframe serve: error: --data {args.data} is not a folder", file=sys.stderr)
        return 2
    from odsframe.testing.portal import LocalPortal

    portal = LocalPortal(
        args.data,
        sample=args.sample,
        sample_records=args.records,
        api_keys=args.api_keys,
        quota=args.quota,
        host=args.host,
        port=args.port,
        faults=args.faults,
        push_keys=dict(args.push_keys),
    )
    try:
        portal.start()
    except KeyboardInterrupt:
        portal.stop()
        return 130
    except OSError as error:
        print(
            f"odsframe serve: error: cannot listen on {args.host}:{args.port}: {error}",
            file=sys.stderr,
        )
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(portal.url, flush=True)
        count = len(portal.catalog.datasets)
        print(
            f"Serving {count} dataset(s) at {portal.url}/api/explore/v2.1/ (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        portal.stop()
    return 0


# -- demo -----------------------------------------------------------------------------------


def _add_demo(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a tour of odsframe on the embedded local portal",
        description=(
            "Start the local portal over the sample datasets and show the catalog, a filtered "
            "GeoDataFrame, a cache hit, an aggregation and a map of geo clusters (PNG)."
        ),
    )
    parser.add_argument(
        "--records",
        type=_non_negative_int,
        default=20_000,
        metavar="N",
        help="records of the large sample dataset (default 20000)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="folder for the cluster map (default ./demo-output)",
    )
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from odsframe._demo import run_demo

    run_demo(records=args.records, output=args.output)
    return 0


# -- cache ----------------------------------------------------------------------------------


def _add_cache(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cache", help="show or clear the on-disk cache", description="The on-disk frame cache."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("info", help="list cached entries").set_defaults(run=_run_cache_info)
    clear = actions.add_parser("clear", help="remove cached entries")
    clear.add_argument("--portal", help="only entries of this portal")
    clear.add_argument("--dataset", help="only entries of this dataset")
    clear.set_defaults(run=_run_cache_clear)


def _run_cache_info(args: argparse.Namespace) -> int:
    import pandas as pd

    from odsframe import cache

    entries = cache.info()
    print(f"cache folder: {cache.cache_dir()}")
    if entries.empty:
        print("no cached entries")
        return 0
    columns = [c for c in ("dataset", "portal", "rows", "bytes", "fetched_at") if c in entries]
    with pd.option_context("display.width", 120):
        print(entries[columns].to_string(index=False))
    print(f"{len(entries)} entries, {int(entries['bytes'].sum()):,} bytes")
    return 0


def _run_cache_clear(args: argparse.Namespace) -> int:
    from odsframe import cache

    removed = cache.clear(portal=args.portal, dataset=args.dataset)
    print(f"removed {removed} cached entr{'y' if removed == 1 else 'ies'}")
    return 0


# -- entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``odsframe`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="odsframe", description="OpenDataSoft portals as pandas frames."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(subparsers)
    _add_demo(subparsers)
    _add_cache(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``odsframe`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Runner | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

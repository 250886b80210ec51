"""Progress reporting for long reads: a tqdm bar, a callback, or nothing.

Every reader takes a ``progress=`` argument:

* ``None`` (the default): a bar only in interactive sessions (a terminal on stderr, IPython
  or Jupyter) and only when ``tqdm`` is installed (``tqdm.auto`` picks the notebook widget);
* ``True``: a bar whenever ``tqdm`` is installed; ``False``: nothing;
* a callable ``callback(done, total)``: called after each step with the amount done so far
  and the expected total (``None`` when unknown), for GUIs, logs or tests.

Code that downloads opens one :class:`Progress` per phase with :func:`open_progress` and
calls :meth:`Progress.update` as data arrives; :class:`CountingWriter` does that for
streamed bytes. The reporter never raises because of the display: a broken bar is dropped.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import IO, Any, Literal

from odsframe.errors import InvalidQueryArgument

__all__ = [
    "CountingWriter",
    "Progress",
    "ProgressArg",
    "check_progress",
    "open_progress",
    "wants_bar",
]

logger = logging.getLogger(__name__)

#: What ``progress=`` accepts.
ProgressArg = bool | Callable[[int, "int | None"], Any] | None
Unit = Literal["records", "bytes", "datasets"]


def _interactive() -> bool:
    """True in a terminal session or in IPython / Jupyter."""
    if "IPython" in sys.modules:
        try:
            from IPython import get_ipython

            if get_ipython() is not None:
                return True
        except Exception:  # a broken IPython install must not break a read
            return False
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _tqdm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tqdm") is not None


def wants_bar(progress: ProgressArg) -> bool:
    """Whether ``progress`` asks for a tqdm bar here (see the module docstring)."""
    if progress is None:
        return _interactive() and _tqdm_available()
    if progress is True:
        return _tqdm_available()
    return False


def check_progress(progress: Any) -> None:
    """Refuse a ``progress=`` value that is none of None, a bool or a callable."""
    if progress is None or isinstance(progress, bool) or callable(progress):
        return
    raise InvalidQueryArgument(
        f"progress: expected None, True, False or a callable(done, total), got {progress!r}"
    )


class Progress:
    """One phase of work being reported (records read, bytes downloaded ...).

    Use :func:`open_progress` rather than the constructor; use it as a context manager so
    the bar is closed even when the read fails.
    """

    def __init__(
        self,
        *,
        total: int | None,
        unit: Unit,
        description: str,
        callback: Callable[[int, int | None], Any] | None = None,
        bar: Any = None,
    ) -> None:
        self.total = total
        self.unit = unit
        self.description = description
        self.done = 0
        self._callback = callback
        self._bar = bar

    @property
    def active(self) -> bool:
        """Whether anything is reported at all (callers may skip work when not)."""
        return self._callback is not None or self._bar is not None

    def set_total(self, total: int | None) -> None:
        """Set the expected total once it is known (e.g. from ``Content-Length``)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, amount: int) -> None:
        """Report ``amount`` more units done."""
        if amount <= 0:
            return
        self.done += amount
        if self._bar is not None:
            try:
                self._bar.update(amount)
            except Exception as err:  # the display must never fail a download
                logger.debug("progress bar failed (%s); dropping it", err)
                self._bar = None
        if self._callback is not None:
            self._callback(self.done, self.total)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        if self._bar is not None:
            try:
                self._bar.close()
            finally:
                self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_progress(
    progress: ProgressArg, *, total: int | None, unit: Unit, description: str
) -> Progress:
    """A :class:`Progress` for one phase, as ``progress=`` asks.

    Parameters
    ----------
    progress
        The user's ``progress=`` argument.
    total
        The expected amount (``None`` when unknown).
    unit
        What is counted: ``"records"``, ``"bytes"`` or ``"datasets"``.
    description
        Shown left of the bar, e.g. the dataset id.
    """
    check_progress(progress)
    if callable(progress) and not isinstance(progress, bool):
        return Progress(total=total, unit=unit, description=description, callback=progress)
    if not wants_bar(progress):
        return Progress(total=total, unit=unit, description=description)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        desc=description,
        unit="B" if unit == "bytes" else f" {unit}",
        unit_scale=unit == "bytes",
        unit_divisor=1024 if unit == "bytes" else 1000,
        leave=False,
        dynamic_ncols=True,
    )
    return Progress(total=total, unit=unit, description=description, bar=bar)


class CountingWriter:
    """A binary file object that reports every write to a :class:`Progress`.

    Hand it to a download in place of the file it wraps.
    """

    def __init__(self, handle: IO[bytes], progress: Progress) -> None:
        self._handle = handle
        self._progress = progress

    def write(self, data: bytes) -> int:
        written = self._handle.write(data)
        self._progress.update(len(data) if written is None else written)
        return len(data) if written is None else written

    def flush(self) -> None:
        self._handle.flush()

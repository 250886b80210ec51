"""Fault injection for the local portal: dropped connections, 503 and 429 answers, slow answers.

Real portals fail in ways a client must survive: a connection that drops in the middle of a
large export, a ``503`` from an overloaded node, a ``429`` asking to come back later. The
:class:`FaultMiddleware` makes the local portal fail the same ways, on purpose and
reproducibly, so that retry and resume code (odsframe's or yours) can be tested over real
HTTP::

    LocalPortal(sample=True, faults="drop=0.2,status503=0.1,seed=1")
    odsframe serve --sample --faults "path=*/exports/*,drop=0.3;status429=every:5,retry_after=0"

Spec syntax (:func:`parse_faults`): rules separated by ``;``, each a list of ``key=value``
separated by ``,``. A request is handled by the **first** rule whose ``path`` matches it.

=================  ==================================================================
key                meaning
=================  ==================================================================
``path``           ``fnmatch`` pattern on the URL path (default ``/api/*``)
``drop``           when to drop the connection in the middle of the body
``drop_after``     bytes of body sent before the drop (default: a random point in the body;
                   for a streamed body, in its first MiB or its last message)
``status503``      when to answer ``503`` (alias ``503``)
``status429``      when to answer ``429`` with ``Retry-After`` (alias ``429``)
``retry_after``    seconds announced by ``Retry-After`` on 429 answers (default 1)
``delay``          seconds to wait before answering every matching request (default 0)
``seed``           seed of the rule's random draws (default 0): same seed, same faults
=================  ==================================================================

*When* (``drop``, ``status503``, ``status429``) is a probability (``0.2``), ``every:K``
(every K-th matching request: the K-th, 2K-th ...) or ``first:N`` (the first N matching
requests). At most one fault hits a request: 503 first, then 429, then a drop.

A dropped connection is real: the headers and part of the body are sent, then the server
closes the socket without finishing the body, so the client sees a truncated chunked body or
fewer bytes than ``Content-Length``.

:class:`Faults` also logs every request it sees (:attr:`Faults.requests`), which tests use as
a request counter; ``Faults()`` with no rule injects nothing and only counts.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import random
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from odsframe._spec import QUOTA_DOMAIN_LIMIT

__all__ = [
    "FaultMiddleware",
    "FaultRule",
    "Faults",
    "InjectedDisconnect",
    "LoggedRequest",
    "Trigger",
    "as_faults",
    "parse_faults",
]

logger = logging.getLogger("odsframe.testing.faults")

FaultKind = Literal["drop", "status503", "status429"]
#: Most requests kept in :attr:`Faults.requests`.
MAX_LOGGED_REQUESTS = 100_000
#: Without ``drop_after``, a streamed body is cut at a random byte below this.
STREAM_DROP_RANGE = 1 << 20
_DEFAULT_PATH = "/api/*"
_ALIASES = {"503": "status503", "429": "status429"}


class FaultSpecError(ValueError):
    """A fault spec (text or arguments) that cannot be used."""


class InjectedDisconnect(Exception):
    """Raised inside the app to make the server close the connection mid-body."""


@dataclass(frozen=True)
class Trigger:
    """When a fault fires among the requests a rule matches.

    Exactly one of ``probability``, ``every`` and ``first`` is set.

    Parameters
    ----------
    probability
        Fire with this probability (0 to 1), drawn from the rule's seeded generator.
    every
        Fire on every ``every``-th matching request (1-based: the K-th, 2K-th ...).
    first
        Fire on the first ``first`` matching requests.
    """

    probability: float | None = None
    every: int | None = None
    first: int | None = None

    def __post_init__(self) -> None:
        chosen = [v for v in (self.probability, self.every, self.first) if v is not None]
        if len(chosen) != 1:
            raise FaultSpecError("a trigger needs exactly one of probability, every or first")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise FaultSpecError(f"a probability is between 0 and 1, got {self.probability}")
        if self.every is not None and self.every < 1:
            raise FaultSpecError(f"every:K needs K >= 1, got {self.every}")
        if self.first is not None and self.first < 0:
            raise FaultSpecError(f"first:N needs N >= 0, got {self.first}")

    @classmethod
    def parse(cls, text: str) -> Trigger:
        """``0.2``, ``every:3`` or ``first:2``."""
        text = text.strip()
        mode, sep, number = text.partition(":")
        try:
            if not sep:
                probability = float(text)
            elif mode.strip() in ("every", "first"):
                count = int(number)
            else:
                raise ValueError(mode)
        except ValueError:
            raise FaultSpecError(
                f"{text!r} is not a trigger: use a probability (0.2), every:K or first:N"
            ) from None
        if not sep:
            return cls(probability=probability)
        return cls(every=count) if mode.strip() == "every" else cls(first=count)

    def fires(self, number: int, rng: random.Random) -> bool:
        """Whether the ``number``-th (1-based) matching request gets the fault."""
        if self.every is not None:
            return number % self.every == 0
        if self.first is not None:
            return number <= self.first
        assert self.probability is not None
        return rng.random() < self.probability

    def __str__(self) -> str:
        if self.every is not None:
            return f"every:{self.every}"
        if self.first is not None:
            return f"first:{self.first}"
        return repr(self.probability)


def _trigger(value: Trigger | float | str | None, name: str) -> Trigger | None:
    if value is None or isinstance(value, Trigger):
        return value
    if isinstance(value, str):
        return Trigger.parse(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{name}: expected a probability, a Trigger or a text trigger")
    return Trigger(probability=float(value))


@dataclass(frozen=True)
class FaultRule:
    """The faults injected into the requests whose path matches ``path``.

    Parameters
    ----------
    path
        ``fnmatch`` pattern on the URL path, e.g. ``"*/exports/*"``.
    drop, status503, status429
        When to drop the connection mid-body, answer 503, answer 429: a :class:`Trigger`, a
        probability, or text (``"every:3"``, ``"first:2"``, ``"0.1"``).
    drop_after
        Body bytes sent before a drop; ``None`` picks a random point in the body.
    retry_after
        Seconds announced in the ``Retry-After`` header of 429 answers.
    delay
        Seconds to wait before answering each matching request.
    seed
        Seed of the rule's random draws.
    """

    path: str = _DEFAULT_PATH
    drop: Trigger | None = None
    status503: Trigger | None = None
    status429: Trigger | None = None
    drop_after: int | None = None
    retry_after: float = 1.0
    delay: float = 0.0
    seed: int = 0

    def __init__(
        self,
        path: str = _DEFAULT_PATH,
        *,
        drop: Trigger | float | str | None = None,
        status503: Trigger | float | str | None = None,
        status429: Trigger | float | str | None = None,
        drop_after: int | None = None,
        retry_after: float = 1.0,
        delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not isinstance(path, str) or not path:
            raise FaultSpecError(f"path: expected an fnmatch pattern, got {path!r}")
        if drop_after is not None and (isinstance(drop_after, bool) or drop_after < 0):
            raise FaultSpecError(f"drop_after: expected bytes >= 0, got {drop_after!r}")
        if retry_after < 0 or delay < 0:
            raise FaultSpecError("retry_after and delay are seconds >= 0")
        values = {
            "path": path,
            "drop": _trigger(drop, "drop"),
            "status503": _trigger(status503, "status503"),
            "status429": _trigger(status429, "status429"),
            "drop_after": drop_after,
            "retry_after": float(retry_after),
            "delay": float(delay),
            "seed": int(seed),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.path)

    def describe(self) -> str:
        """The rule in spec syntax."""
        parts = [f"path={self.path}"]
        for name in ("drop", "status503", "status429"):
            trigger = getattr(self, name)
            if trigger is not None:
                parts.append(f"{name}={trigger}")
        if self.drop_after is not None:
            parts.append(f"drop_after={self.drop_after}")
        if self.status429 is not None:
            parts.append(f"retry_after={self.retry_after:g}")
        if self.delay:
            parts.append(f"delay={self.delay:g}")
        parts.append(f"seed={self.seed}")
        return ",".join(parts)


def _parse_rule(text: str) -> FaultRule:
    options: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        key = _ALIASES.get(key, key)
        if not sep or not value:
            raise FaultSpecError(f"{item.strip()!r} is not key=value")
        if key in options:
            raise FaultSpecError(f"{key} is given twice in one rule")
        try:
            if key == "path":
                options[key] = value
            elif key in ("drop", "status503", "status429"):
                options[key] = Trigger.parse(value)
            elif key in ("drop_after", "seed"):
                options[key] = int(value)
            elif key in ("retry_after", "delay"):
                options[key] = float(value)
            else:
                raise FaultSpecError(
                    f"unknown key {key!r} (use path, drop, drop_after, status503, status429, "
                    "retry_after, delay, seed)"
                )
        except ValueError as err:
            if isinstance(err, FaultSpecError):
                raise
            raise FaultSpecError(f"{key}: {value!r} is not a number") from err
    return FaultRule(**options)


def parse_faults(spec: str) -> list[FaultRule]:
    """The rules of a text spec such as ``"drop=0.2,status503=0.1,seed=1"``.

    Raises
    ------
    FaultSpecError
        The text names an unknown key or a value that is not usable.
    """
    if not isinstance(spec, str):
        raise FaultSpecError(f"a fault spec is text, got {type(spec).__name__}")
    try:
        return [_parse_rule(part) for part in spec.split(";") if part.strip()]
    except FaultSpecError as err:
        raise FaultSpecError(f"fault spec {spec!r}: {err}") from None


@dataclass(frozen=True)
class LoggedRequest:
    """One request the middleware saw, and the fault it got (``None``: none)."""

    path: str
    query: str
    fault: str | None


@dataclass
class _RuleState:
    rule: FaultRule
    rng: random.Random
    seen: int = 0


@dataclass
class Faults:
    """Fault rules plus what happened: counters and a log of the requests.

    Parameters
    ----------
    rules
        The rules, tried in order (the first whose path matches handles a request).
    enabled
        Set to ``False`` to stop injecting (requests are still logged).
    """

    rules: Sequence[FaultRule] = ()
    enabled: bool = True
    requests: deque[LoggedRequest] = field(
        default_factory=lambda: deque(maxlen=MAX_LOGGED_REQUESTS), init=False, repr=False
    )
    injected: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._states: list[_RuleState] = []
        self.configure(self.rules)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Faults from a text spec (see :func:`parse_faults`)."""
        return cls(parse_faults(spec))

    def configure(self, rules: Sequence[FaultRule] | str) -> None:
        """Replace the rules (counters and random generators start again)."""
        parsed = parse_faults(rules) if isinstance(rules, str) else list(rules)
        for rule in parsed:
            if not isinstance(rule, FaultRule):
                raise FaultSpecError(f"expected FaultRule objects, got {type(rule).__name__}")
        with self._lock:
            self.rules = tuple(parsed)
            self._states = [_RuleState(rule, random.Random(rule.seed)) for rule in parsed]

    def describe(self) -> str:
        """The rules in spec syntax (``""`` when there is none)."""
        return ";".join(rule.describe() for rule in self.rules)

    def count(self, pattern: str = "*", *, fault: str | None = "any") -> int:
        """Logged requests whose path matches ``pattern`` (and that got ``fault``)."""
        with self._lock:
            logged = list(self.requests)
        return sum(
            1
            for item in logged
            if fnmatch.fnmatchcase(item.path, pattern) and (fault == "any" or item.fault == fault)
        )

    def reset(self) -> None:
        """Forget the log and the counters (the rules stay, their draws start again)."""
        with self._lock:
            self.requests.clear()
            self.injected.clear()
            self._states = [_RuleState(rule, random.Random(rule.seed)) for rule in self.rules]

    def decide(self, path: str, query: str) -> tuple[FaultRule | None, FaultKind | None]:
        """The rule handling a request and the fault it gets; logs the request."""
        with self._lock:
            state = next((s for s in self._states if s.rule.matches(path)), None)
            fault: FaultKind | None = None
            if state is not None and self.enabled:
                state.seen += 1
                rule = state.rule
                kinds: tuple[FaultKind, ...] = ("status503", "status429", "drop")
                for kind in kinds:
                    trigger: Trigger | None = getattr(rule, kind)
                    if trigger is not None and trigger.fires(state.seen, state.rng):
                        fault = kind
                        break
                if fault is not None:
                    self.injected[fault] = self.injected.get(fault, 0) + 1
            self.requests.append(LoggedRequest(path, query, fault))
            return (state.rule if state is not None else None), fault

    def drop_point(self, rule: FaultRule, size: int) -> int:
        """Where to cut a body of ``size`` bytes: ``rule.drop_after``, else a random byte."""
        if rule.drop_after is not None:
            return rule.drop_after
        with self._lock:
            # The rules may have been replaced since the request came in.
            state = next((s for s in self._states if s.rule is rule), None)
            rng = state.rng if state is not None else random.Random(rule.seed)
            return rng.randrange(size) if size > 0 else 0


FaultsLike = Faults | FaultRule | str | Iterable[FaultRule]


@overload
def as_faults(value: None) -> None: ...
@overload
def as_faults(value: FaultsLike) -> Faults: ...
def as_faults(value: FaultsLike | None) -> Faults | None:
    """A :class:`Faults` from what ``LocalPortal(faults=...)`` accepts."""
    if value is None or isinstance(value, Faults):
        return value
    if isinstance(value, str):
        return Faults.parse(value)
    if isinstance(value, FaultRule):
        return Faults([value])
    try:
        rules = list(value)
    except TypeError:
        raise FaultSpecError(
            f"faults: expected a spec string, a FaultRule, a list of them or Faults, "
            f"got {type(value).__name__}"
        ) from None
    return Faults(rules)


class _QuietDisconnects(logging.Filter):
    """Keeps uvicorn from logging a traceback for every injected disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not _is_injected(error)


def _is_injected(error: BaseException | None) -> bool:
    if isinstance(error, InjectedDisconnect):
        return True
    if isinstance(error, BaseExceptionGroup):
        return any(_is_injected(inner) for inner in error.exceptions)
    return False


_quiet_installed = False
_quiet_lock = threading.Lock()


def _install_quiet_filter() -> None:
    global _quiet_installed
    with _quiet_lock:
        if not _quiet_installed:
            logging.getLogger("uvicorn.error").addFilter(_QuietDisconnects())
            _quiet_installed = True


def _json_answer(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    return [
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        },
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


def _error_messages(kind: FaultKind, rule: FaultRule) -> list[Message]:
    import json

    if kind == "status503":
        body = {
            "error_code": "ServiceUnavailable",
            "message": "The service is temporarily unavailable (fault injected by the local "
            "portal).",
        }
        return _json_answer(503, json.dumps(body).encode(), [])
    reset = datetime.now(UTC) + timedelta(seconds=rule.retry_after)
    body_429: dict[str, Any] = {
        "errorcode": QUOTA_DOMAIN_LIMIT,
        "reset_time": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "limit_time_unit": "minute",
        "call_limit": 0,
        "error": "Too many requests: slow down (fault injected by the local portal).",
    }
    retry_after = f"{rule.retry_after:g}".encode()
    return _json_answer(429, json.dumps(body_429).encode(), [(b"retry-after", retry_after)])


class FaultMiddleware:
    """ASGI middleware that injects the faults of a :class:`Faults` into matching requests."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults
        _install_quiet_filter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        rule, fault = self.faults.decide(path, query)
        if rule is not None and rule.delay > 0:
            await asyncio.sleep(rule.delay)
        if rule is None or fault is None:
            await self.app(scope, receive, send)
            return
        if fault != "drop":
            logger.info("injecting %s into %s", fault, path)
            for message in _error_messages(fault, rule):
                await send(message)
            return
        logger.info("injecting a dropped connection into %s", path)
        await self.app(scope, receive, _Dropper(self.faults, rule, send))


class _Dropper:
    """A ``send`` that forwards part of the body, then raises :class:`InjectedDisconnect`."""

    def __init__(self, faults: Faults, rule: FaultRule, send: Send) -> None:
        self.faults = faults
        self.rule = rule
        self.send = send
        self.sent = 0
        self.cut_at: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self.cut_at is None:
            # A whole body in one message: cut at a random byte of it; a streamed body: at a
            # random byte of its first MiB (or in its last message, when shorter).
            size = len(body) if not more else STREAM_DROP_RANGE
            self.cut_at = self.faults.drop_point(self.rule, size)
        if self.sent + len(body) > self.cut_at:
            await self._partial(body[: self.cut_at - self.sent])
        if not more:
            if body and self.rule.drop_after is None:
                await self._partial(body[: self.faults.drop_point(self.rule, len(body))])
            # Every byte sent (or an empty last message): the body is never finished.
            raise InjectedDisconnect("connection dropped by fault injection")
        self.sent += len(body)
        await self.send(message)

    async def _partial(self, piece: bytes) -> None:
        if piece:
            await self.send({"type": "http.response.body", "body": piece, "more_body": True})
        raise InjectedDisconnect("connection dropped by fault injection")

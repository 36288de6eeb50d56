"""The token-parser contract and the per-ledger token registry (``ledger.auth``).

A *token parser* turns a credential into a :class:`~nucleus_core.context.RequestContext`. Parsers
come from the ``nucleus_register_token_parsers`` hook; a ledger builds one instance per enabled
spec and keeps them in a :class:`TokenRegistry`, exposed as ``ledger.auth``.

The registry's rule, for every token:

1. it is offered only to parsers whose :meth:`TokenParser.validate_format` accepts it;
2. a parser returning ``None`` means "not my kind of token": the next matching parser is asked;
3. a parser raising :class:`~nucleus_core.errors.TokenInvalidError` (or
   :class:`~nucleus_core.errors.TokenExpiredError`) means "mine, but bad": the token is refused
   and is **never** offered to another parser;
4. a token no parser claims is refused with :class:`~nucleus_core.errors.TokenInvalidError`.

Nothing here writes a token into a message or a log line; :func:`token_fingerprint` gives a
short, non-reversible label for correlating log lines instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import blake3

from .context import RequestContext
from .errors import (
    AuthenticationError,
    ConfigurationError,
    NucleusError,
    PluginError,
    TokenExpiredError,
    TokenInvalidError,
)
from .observe import OK, Authenticated, Observers
from .specs import PluginContext, TokenParserSpec

MAX_TOKEN_LENGTH = 8192
"""Longest token (in characters) the registry offers to any parser."""


class KeySourceUnavailableError(AuthenticationError):
    """The keys needed to check a token could not be obtained (for example the identity provider's
    JWKS endpoint is down and the cached keys are past their lifespan). Authentication fails closed;
    HTTP maps this to 503, never to "allow"."""

    code = "auth_unavailable"


@runtime_checkable
class TokenParser(Protocol):
    """What a token-parser plugin's factory returns.

    ``validate_format`` is a cheap syntactic check (no I/O, no cryptography). ``parse`` returns a
    context, ``None`` for "not my kind of token", or raises
    :class:`~nucleus_core.errors.TokenInvalidError` / :class:`~nucleus_core.errors.TokenExpiredError`
    when the token is of its kind but not acceptable. Messages never contain the token.

    A parser that keeps state beside the ledger (API keys) may also offer
    :class:`StatefulTokenParser`. A parser whose ``parse`` changes anything (records a session's
    activity, spends a single-use token id) must also offer :class:`PassiveTokenParser`, so that
    checking a credential again never extends or spends it.

    A context's ``expires_at`` (see :class:`~nucleus_core.context.RequestContext`) should say when
    the parser starts refusing the token (its leeway included), when it knows.
    """

    def validate_format(self, token: str) -> bool:
        """True when ``token`` has this parser's syntax."""

    def parse(self, token: str) -> RequestContext | None:
        """The verified context of ``token``; None when the token is not of this parser's kind."""


@runtime_checkable
class StatefulTokenParser(Protocol):
    """A token parser keeping state beside the ledger (API keys), which it compares with the chain."""

    def check_consistency(self) -> Sequence[str]:
        """The differences between that state and the chain (none: empty). ``Ledger.verify()``
        reports the first one; the parser refuses the tokens concerned."""


@runtime_checkable
class PassiveTokenParser(Protocol):
    """A token parser whose ``parse`` changes state, with a check that changes none.

    ``check`` answers as ``parse`` would (the same context, ``None`` or error) but records nothing:
    no activity (a session's idle deadline does not move), no use (a service token's ``jti`` is not
    spent), no last-used time. :meth:`TokenRegistry.authenticate` calls it with ``passive=True``:
    to check again a credential that an ordinary request already authenticated (an open stream's),
    never to admit a new request. A parser whose ``parse`` changes nothing needs no ``check``.
    """

    def check(self, token: str) -> RequestContext | None:
        """What :meth:`TokenParser.parse` returns for ``token``, without changing any state."""


def token_fingerprint(token: str) -> str:
    """A 12-hex-character label for ``token`` that is safe in logs (a BLAKE3 digest prefix; not
    reversible, and too short to confirm a guess offline for a high-entropy secret)."""
    return blake3.blake3(
        token.encode("utf-8", "surrogatepass"), derive_key_context="nucleus token fingerprint"
    ).hexdigest()[:12]


_SECRET_SHAPES = re.compile(
    r"(?i:bearer)\s+\S+"  # any bearer credential
    r"|nuk_[A-Za-z0-9_]+"  # API keys
    r"|nss_[A-Za-z0-9_-]+"  # session ids
    r"|dev:[^\s'\"&/?#]+"  # development tokens
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"  # JWS/JWT (header starts '{"')
)
REDACTED = "[redacted]"


def redact_secrets(text: str) -> str:
    """``text`` with every credential-shaped substring replaced by ``[redacted]``: bearer
    credentials, API keys (``nuk_``), session ids (``nss_``), development tokens (``dev:``) and
    JWTs. A last line of defence for text that may quote a request (log lines, error messages);
    code should not put credentials into such text in the first place."""
    return _SECRET_SHAPES.sub(REDACTED, text)


class RedactingFormatter(logging.Formatter):
    """A :class:`logging.Formatter` that passes the whole formatted line (message, exception and
    stack trace) through :func:`redact_secrets`; the formatter of every handler ``nucleus`` and
    ``nucleus serve`` install."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(super().format(record))


@attrs.define
class TokenRegistry:
    """The token parsers of one ledger, in the order the ledger enabled them.

    Use :meth:`authenticate` to turn a token into a context; :meth:`parser` gives a parser by its
    spec name (e.g. ``ledger.auth.parser("auth.session").create_session(...)``).
    """

    _parsers: list[tuple[str, TokenParser]] = attrs.field(factory=list, alias="parsers")
    observers: Observers = attrs.field(factory=Observers, kw_only=True)
    """Told each decision of :meth:`authenticate` (:class:`~nucleus_core.observe.Authenticated`);
    a ledger sets its own."""

    def __attrs_post_init__(self) -> None:
        names = [name for name, _ in self._parsers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigurationError(f"token parser(s) registered twice: {', '.join(dupes)}")
        for name, parser in self._parsers:
            if not isinstance(parser, TokenParser):
                raise PluginError("factory did not return a TokenParser (validate_format, parse)", plugin_name=name)

    @property
    def names(self) -> list[str]:
        """Spec names of the enabled parsers, in dispatch order."""
        return [name for name, _ in self._parsers]

    def __len__(self) -> int:
        return len(self._parsers)

    def __iter__(self) -> Iterator[tuple[str, TokenParser]]:
        return iter(list(self._parsers))

    def parser(self, name: str) -> Any:
        """The parser enabled under spec ``name``; :class:`ConfigurationError` when not enabled."""
        for pname, parser in self._parsers:
            if pname == name:
                return parser
        enabled = ", ".join(self.names) or "none"
        raise ConfigurationError(f"token parser {name!r} is not enabled on this ledger (enabled: {enabled})")

    def authenticate(self, token: object, *, passive: bool = False) -> RequestContext:
        """The verified context for ``token``.

        ``passive``: check the token without changing any parser's state (a parser offering
        :class:`PassiveTokenParser` is asked its ``check`` instead of ``parse``): nothing is
        recorded, so a session's idle deadline does not move and a service token's ``jti`` is not
        spent. Only for checking again a credential an ordinary call authenticated (an open
        stream's); an ordinary request is authenticated without it.

        :raises TokenInvalidError: the token is empty, too long, claimed and rejected by a parser,
            or claimed by none.
        :raises TokenExpiredError: the claiming parser found it expired.
        :raises KeySourceUnavailableError: the claiming parser could not obtain keys (fail closed).
        """
        if not isinstance(token, str) or not token:
            self._observe("none", "invalid")
            raise TokenInvalidError("no token given")
        if len(token) > MAX_TOKEN_LENGTH:
            self._observe("none", "invalid")
            raise TokenInvalidError(f"token is longer than {MAX_TOKEN_LENGTH} characters")
        for name, parser in self._parsers:
            if not self._call(name, parser.validate_format, token):
                continue
            parse = parser.check if passive and isinstance(parser, PassiveTokenParser) else parser.parse
            try:
                context = self._call(name, parse, token)
            except KeySourceUnavailableError:
                self._observe(name, "unavailable")
                raise
            except TokenExpiredError:
                self._observe(name, "expired")
                raise
            except AuthenticationError:
                self._observe(name, "invalid")
                raise
            if context is None:
                continue
            if not isinstance(context, RequestContext):
                raise PluginError("parse() returned something other than a RequestContext or None", plugin_name=name)
            if context.source != name:
                # The source names the parser that accepted the token: no parser speaks for another.
                context = attrs.evolve(context, source=name)
            self._observe(name, OK)
            return context
        self._observe("none", "unclaimed")
        raise TokenInvalidError("no enabled token parser accepts this token")

    def _observe(self, parser: str, outcome: str) -> None:
        if self.observers:
            self.observers.emit(Authenticated(parser, outcome))

    def lane(self, token: object) -> tuple[str, ...]:
        """The names of the parsers :meth:`authenticate` may call for ``token``: those whose
        ``validate_format`` accepts it (cheap, no I/O). Empty when none would (the token is
        refused without any parser work). The HTTP middleware runs each lane in its own thread
        pool, so a slow parser (a JWKS fetch) delays only tokens of its own kind."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return ()
        return tuple(name for name, parser in self._parsers if self._call(name, parser.validate_format, token))

    @staticmethod
    def _call(name: str, fn: Callable[[str], Any], token: str) -> Any:
        try:
            return fn(token)
        except NucleusError:
            raise
        except Exception as err:  # noqa: BLE001 - a parser bug must not leak the token through its message
            # The original message may quote the token: do not carry it over.
            raise PluginError(f"token parser failed with {type(err).__name__}", plugin_name=name) from None


def build_token_registry(
    specs: Iterable[TokenParserSpec], context_for: Callable[[str], PluginContext]
) -> TokenRegistry:
    """Build one parser per spec with ``spec.factory(context_for(spec.name))``, in order.

    A factory's :class:`NucleusError` (e.g. the dev parser refusing a production ledger) propagates
    unchanged; any other exception becomes a :class:`PluginError` naming the parser.
    """
    parsers: list[tuple[str, TokenParser]] = []
    for spec in specs:
        try:
            parser = spec.factory(context_for(spec.name))
        except NucleusError:
            raise
        except Exception as err:
            raise PluginError(f"factory failed: {type(err).__name__}: {err}", plugin_name=spec.name) from err
        parsers.append((spec.name, parser))
    return TokenRegistry(parsers=parsers)

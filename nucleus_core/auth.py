"""Authentication: the token-parser contract, the per-ledger token registry, and shared helpers.

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

The JWT helpers at the end (:func:`decode_jwt`, :func:`jwt_header`, :func:`load_public_key`) are
shared by the ``connect`` and ``service`` parsers. They import PyJWT lazily, so the core itself
does not depend on it; the distributions that call them declare ``pyjwt[crypto]>=2.15``.
"""

from __future__ import annotations

import abc
import base64
import binascii
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

import attrs
import blake3

from .capabilities import PooledConnectionStorage, SqlDatabaseStorage
from .context import RequestContext, get_requester_oid, require_context, scopes_from_names
from .errors import (
    AuthenticationError,
    ConfigurationError,
    NucleusError,
    PluginError,
    StorageError,
    TokenExpiredError,
    TokenInvalidError,
)
from .specs import PluginContext, TokenParserSpec

if TYPE_CHECKING:
    import jwt

log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 8192
"""Longest token (in characters) the registry offers to any parser."""

__all__ = [
    "MAX_TOKEN_LENGTH",
    "SERVICE_TOKEN_TYPE",
    "SqlPluginStore",
    "KeySourceUnavailableError",
    "TokenParser",
    "TokenRegistry",
    "build_token_registry",
    "check_numeric_dates",
    "decode_jwt",
    "get_requester_oid",
    "jwt_header",
    "jwt_unverified_claims",
    "load_public_key",
    "looks_like_jwt",
    "plugin_connection",
    "RedactingFormatter",
    "redact_secrets",
    "plugin_database",
    "require_context",
    "scopes_from_claim",
    "setting",
    "token_fingerprint",
]


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
    ``check_consistency() -> list[str]``: the differences between that state and the chain.
    ``Ledger.verify()`` reports the first one (the parser refuses the tokens concerned).
    """

    def validate_format(self, token: str) -> bool:
        """True when ``token`` has this parser's syntax."""

    def parse(self, token: str) -> RequestContext | None:
        """The verified context of ``token``; None when the token is not of this parser's kind."""


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

    def authenticate(self, token: object) -> RequestContext:
        """The verified context for ``token``.

        :raises TokenInvalidError: the token is empty, too long, claimed and rejected by a parser,
            or claimed by none.
        :raises TokenExpiredError: the claiming parser found it expired.
        :raises KeySourceUnavailableError: the claiming parser could not obtain keys (fail closed).
        """
        if not isinstance(token, str) or not token:
            raise TokenInvalidError("no token given")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalidError(f"token is longer than {MAX_TOKEN_LENGTH} characters")
        for name, parser in self._parsers:
            if not self._call(name, parser.validate_format, token):
                continue
            context = self._call(name, parser.parse, token)
            if context is None:
                continue
            if not isinstance(context, RequestContext):
                raise PluginError("parse() returned something other than a RequestContext or None", plugin_name=name)
            if context.source != name:
                # The source names the parser that accepted the token: no parser speaks for another.
                context = attrs.evolve(context, source=name)
            return context
        raise TokenInvalidError("no enabled token parser accepts this token")

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


# --- settings -------------------------------------------------------------------------------

_MISSING = object()


def setting(
    settings: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    *,
    plugin: str,
    default: Any = _MISSING,
) -> Any:
    """``settings[key]`` checked against ``kind``; a clear :class:`ConfigurationError` naming the
    plugin and key when it is missing (and has no default) or of the wrong type. ``bool`` never
    passes for ``int``."""
    if key not in settings:
        if default is _MISSING:
            raise ConfigurationError(f"{plugin}: setting {key!r} is required")
        return default
    value = settings[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ConfigurationError(f"{plugin}: setting {key!r} must be {_kind_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise ConfigurationError(f"{plugin}: setting {key!r} must be {_kind_names(kinds)}, got {type(value).__name__}")
    return value


def _kind_names(kinds: Sequence[type]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def check_unknown_settings(settings: Mapping[str, Any], known: Iterable[str], *, plugin: str) -> None:
    """Refuse settings keys a plugin does not know (a typo must not silently weaken security)."""
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ConfigurationError(f"{plugin}: unknown setting(s) {', '.join(map(repr, unknown))}")


def plugin_database(context: PluginContext, *, plugin: str) -> Any | None:
    """The peewee ``Database`` of the ledger's storage (``storage.database``, see
    :class:`~nucleus_core.capabilities.SqlDatabaseStorage`) for plugins that keep
    their own tables beside the ledger; None for non-persistent storage (``memory://``), where such
    plugins keep their data in memory. A persistent backend without a database is refused."""
    storage = context.storage
    if isinstance(storage, SqlDatabaseStorage):
        return storage.database
    if storage is None or not storage.persistent:
        return None
    raise ConfigurationError(f"{plugin}: storage {storage.url} keeps no SQL database this plugin can use")


def plugin_connection(context: PluginContext) -> Callable[[], AbstractContextManager[Any]]:
    """How a plugin with tables beside the ledger holds a database connection while its work runs.

    The storage's ``connection()`` when it offers one
    (:class:`~nucleus_core.capabilities.PooledConnectionStorage`; PostgreSQL: a pooled connection is checked
    out for the block and returned afterwards, instead of staying with the calling thread);
    otherwise a no-op (SQLite keeps one connection per thread anyway; memory has none). Use it as
    ``with connection(): ...`` around every query on :func:`plugin_database`.
    """
    storage = context.storage
    return storage.connection if isinstance(storage, PooledConnectionStorage) else contextlib.nullcontext


class SqlPluginStore(abc.ABC):
    """Base of the stores that keep one plugin table in the ledger's SQL database (peewee).

    A subclass sets :attr:`label` (for error messages) and :meth:`make_model` (a model class built
    per database: binding is class-level). The base creates the table (through the backend's
    ``ensure_tables`` when given), and :meth:`_run` runs each unit of work in one transaction while
    holding a connection (see :func:`plugin_connection`), turning peewee errors into
    :class:`~nucleus_core.errors.StorageError` that name the action, never a value. peewee is
    imported lazily: the core itself does not depend on it, the distributions using this do.
    """

    label: str = "plugin store"

    def __init__(
        self,
        database: Any,
        ledger_id: str,
        *,
        ensure_tables: Callable[[list[Any]], None] | None = None,
        connection: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        """``database`` is the ledger's peewee database; ``ensure_tables`` the backend's way to
        create plugin tables (``backend.ensure_tables``; without it ``create_tables``);
        ``connection`` is held around every unit of work (default: nothing to hold)."""
        self._db = database
        self._ledger_id = ledger_id
        self._connection = connection or contextlib.nullcontext
        self._model: Any = self.make_model(database)
        if ensure_tables is not None:
            ensure_tables([self._model])
        else:
            self._run(
                f"creating table {self._model._meta.table_name}",
                lambda: self._db.create_tables([self._model], safe=True),
            )
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Add the nullable columns a newer version of the model declares to a table an older
        version created (``ALTER TABLE ... ADD COLUMN``; rows keep NULL there, and the store
        decides what such rows mean). Any other difference is left to the store."""
        from playhouse.migrate import SchemaMigrator, migrate  # type: ignore[import-untyped]

        table = self._model._meta.table_name

        def add() -> None:
            present = {c.name for c in self._db.get_columns(table)}
            missing = [f for f in self._model._meta.sorted_fields if f.column_name not in present and f.null]
            if missing:
                migrator = SchemaMigrator.from_database(self._db)
                migrate(*(migrator.add_column(table, f.column_name, f) for f in missing))

        self._run(f"adding missing columns to table {table}", add)

    @classmethod
    def for_plugin(cls, context: PluginContext, *, plugin: str, **options: Any) -> Self | None:
        """A store over the ledger's database (see :func:`plugin_database`), or None when the
        ledger has no SQL storage (the plugin then keeps its data in memory)."""
        database = plugin_database(context, plugin=plugin)
        if database is None:
            return None
        return cls(
            database,
            context.ledger_id,
            ensure_tables=context.storage.ensure_tables if isinstance(context.storage, SqlDatabaseStorage) else None,
            connection=plugin_connection(context),
            **options,
        )

    @staticmethod
    @abc.abstractmethod
    def make_model(database: Any) -> Any:
        """The peewee model class of this store's table, bound to ``database``."""

    def _run(
        self,
        what: str,
        fn: Callable[[], Any],
        *,
        conflict: Callable[[], NucleusError] | None = None,
        read: bool = False,
    ) -> Any:
        """``fn()`` in one transaction (a single-statement ``read`` runs without one), holding a
        connection. A uniqueness violation raises ``conflict()`` when given; any other database
        error a :class:`StorageError`."""
        import peewee

        try:
            with self._connection(), contextlib.nullcontext() if read else self._db.atomic():
                return fn()
        except peewee.IntegrityError as err:
            if conflict is not None:
                raise conflict() from None
            raise StorageError(f"{self.label}: {what} failed ({type(err).__name__})") from err
        except peewee.PeeweeException as err:
            raise StorageError(f"{self.label}: {what} failed ({type(err).__name__})") from err


# --- JWT helpers (PyJWT, imported lazily) ---------------------------------------------------

_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]{2,4096}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
MAX_JWT_HEADER_CHARS = 4096

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
"""The only JWT algorithms a Nucleus parser may be configured with: no ``none``, no HMAC."""

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")

NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf")
"""Claims that are NumericDate values (RFC 7519 section 2): JSON numbers of seconds since the epoch."""

MAX_NUMERIC_DATE = 253402300799
"""Latest NumericDate accepted in a token (9999-12-31T23:59:59Z); larger values are refused."""

SERVICE_TOKEN_TYPE = "nucleus-service+jwt"  # noqa: S105 - a media type, not a secret
"""The ``typ`` header of service-to-service tokens (RFC 8725 explicit typing): the service parser
claims only tokens of this type, and the connect parser never accepts them."""


def looks_like_jwt(token: str) -> bool:
    """True when ``token`` has JWS compact shape: three base64url segments (the last may be empty)."""
    return _JWT_SHAPE.fullmatch(token) is not None


def jwt_header(token: str) -> dict[str, Any]:
    """The *unverified* JOSE header of ``token``, for choosing a key and a parser only.

    :raises TokenInvalidError: the header is not base64url JSON object of bounded size.
    """
    segment = token.split(".", 1)[0]
    if len(segment) > MAX_JWT_HEADER_CHARS:
        raise TokenInvalidError("token header is too large")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError) as err:
        raise TokenInvalidError("token header is not base64url-encoded JSON") from err
    if not isinstance(header, dict):
        raise TokenInvalidError("token header is not a JSON object")
    return header


def jwt_unverified_claims(token: str) -> dict[str, Any]:
    """The *unverified* payload of ``token``, for dispatch decisions only (never for trust)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalidError("token is not a compact JWS")
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError) as err:
        raise TokenInvalidError("token payload is not base64url-encoded JSON") from err
    if not isinstance(payload, dict):
        raise TokenInvalidError("token payload is not a JSON object")
    return payload


def check_numeric_dates(claims: Mapping[str, Any]) -> None:
    """Refuse a token whose ``exp``, ``iat`` or ``nbf`` is present but not a JSON number: a string,
    a boolean, null, NaN or an infinity, a negative value or one after :data:`MAX_NUMERIC_DATE`.
    (PyJWT converts with ``int()``, which takes ``"9999999999"`` and ``True``.)

    :raises TokenInvalidError: naming the claim, never its value.
    """
    for name in NUMERIC_DATE_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TokenInvalidError(f"token claim {name!r} must be a JSON number")
        if not math.isfinite(value) or not 0 <= value <= MAX_NUMERIC_DATE:
            raise TokenInvalidError(f"token claim {name!r} is not a date between 1970 and 9999")


def scopes_from_claim(claims: Mapping[str, Any], claim: str, *, prefix: str = "") -> frozenset[str]:
    """The core scopes a JWT's ``claim`` grants: a space-separated string (OAuth ``scope``, RFC
    9068) or a list of strings (``scp``); each name, after removing ``prefix`` (e.g. ``books:``),
    is taken when it is a core scope (or ``*``). A missing claim grants none.

    :raises TokenInvalidError: the claim is present but neither a string nor a list of strings.
    """
    value = claims.get(claim)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        names: list[str] = value.split()
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = list(value)
    else:
        raise TokenInvalidError(f"token claim {claim!r} must be a string or a list of strings")
    if prefix:
        names = [n[len(prefix) :] for n in names if n.startswith(prefix)]
    return scopes_from_names(names)


def check_algorithms(value: object, *, plugin: str) -> tuple[str, ...]:
    """Validate a configured algorithm allow-list: non-empty, asymmetric algorithms only."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigurationError(f"{plugin}: setting 'algorithms' must be a non-empty list, e.g. ['RS256']")
    bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
    if bad:
        allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        raise ConfigurationError(
            f"{plugin}: algorithm(s) {', '.join(map(repr, bad))} are not allowed (no 'none', no HMAC); use {allowed}"
        )
    return tuple(value)


def load_public_key(value: object, *, plugin: str, field: str, algorithm: str | None = None) -> jwt.PyJWK:
    """A verification key from configuration: a public JWK (a mapping) or a PEM public key.

    ``algorithm`` pins the key's algorithm (required for PEM keys, optional for JWKs that carry
    ``alg``). Private key material is refused: configuration must hold public keys only.
    """
    import jwt
    from cryptography.hazmat.primitives import serialization

    jwk: dict[str, Any]
    if isinstance(value, Mapping):
        jwk = dict(value)
        if any(k in jwk for k in ("d", "p", "q", "k")):
            raise ConfigurationError(
                f"{plugin}: {field} must be a public key; it holds private or symmetric key material"
            )
    elif isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        if algorithm is None:
            raise ConfigurationError(f"{plugin}: {field} is a PEM key and needs an explicit algorithm")
        try:
            key = serialization.load_pem_public_key(value.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as err:
            raise ConfigurationError(f"{plugin}: {field} is not a PEM public key") from err
        try:
            alg_obj = jwt.get_algorithm_by_name(algorithm)
            jwk = json.loads(alg_obj.to_jwk(key))
        except (jwt.exceptions.PyJWTError, NotImplementedError, TypeError, ValueError) as err:
            raise ConfigurationError(f"{plugin}: {field} does not fit algorithm {algorithm!r}") from err
    else:
        raise ConfigurationError(f"{plugin}: {field} must be a public JWK (mapping) or a PEM public key")
    if algorithm is not None:
        if jwk.get("alg", algorithm) != algorithm:
            raise ConfigurationError(f"{plugin}: {field} has alg {jwk.get('alg')!r} but {algorithm!r} is configured")
        jwk["alg"] = algorithm
    try:
        return jwt.PyJWK(jwk, algorithm=jwk.get("alg"))
    except jwt.exceptions.PyJWTError as err:
        raise ConfigurationError(f"{plugin}: {field} is not a usable public key: {err}") from err


def decode_jwt(
    token: str,
    key: Any,
    *,
    algorithms: Sequence[str],
    issuer: str,
    audience: str,
    leeway: float,
    required: Sequence[str] = REQUIRED_CLAIMS,
) -> dict[str, Any]:
    """Verify ``token`` with ``key`` and return its claims.

    Always passes the configured ``algorithms``, ``issuer`` and ``audience`` (exact match,
    ``strict_aud``), requires ``required`` claims, enforces minimum key lengths, refuses numeric
    date claims that are not JSON numbers (:func:`check_numeric_dates`, checked on the payload
    before the signature, so a malformed value never reaches PyJWT), and maps PyJWT's errors to
    :class:`TokenExpiredError` / :class:`TokenInvalidError` with messages that name the failed
    check, never a claim value or the token.
    """
    import jwt
    from jwt import exceptions as jx

    check_numeric_dates(jwt_unverified_claims(token))
    try:
        return jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options={"require": list(required), "strict_aud": True, "enforce_minimum_key_length": True},
        )
    except jx.ExpiredSignatureError as err:
        raise TokenExpiredError("token has expired") from err
    except jx.ImmatureSignatureError as err:
        raise TokenInvalidError("token is not valid yet (nbf or iat in the future)") from err
    except jx.MissingRequiredClaimError as err:
        raise TokenInvalidError(f"token lacks the required claim {err.claim!r}") from err
    except jx.InvalidAudienceError as err:
        raise TokenInvalidError("token audience is not accepted") from err
    except jx.InvalidIssuerError as err:
        raise TokenInvalidError("token issuer is not accepted") from err
    except jx.InvalidAlgorithmError as err:
        raise TokenInvalidError("token algorithm is not accepted for this key") from err
    except jx.InvalidSignatureError as err:
        raise TokenInvalidError("token signature does not verify") from err
    except jx.InvalidKeyError as err:
        log.warning("PyJWT refused the verification key for a token (check the parser's key configuration)")
        raise TokenInvalidError("token cannot be verified with the configured key") from err
    except jx.PyJWTError as err:
        raise TokenInvalidError(f"token is malformed or not acceptable ({type(err).__name__})") from err

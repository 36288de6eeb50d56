"""The API key parser: checks keys and creates, lists and revokes them.

Tamper evidence (see the package README and ``docs/SECURITY.md``): every stored row carries a MAC
keyed with the pepper over all its authorizing fields, and every creation and revocation is also
appended to the ledger's ``_api_keys`` system stream in the same transaction as the table change.
A ledger binds its parser when it opens (the plugin's ``nucleus_ledger_opened`` hook calls
:meth:`ApiKeyParser.bind`): the parser then learns the revocations the chain holds, compares the
table with the chain, and refuses a key whose revocation is in the chain whatever its row says.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from nucleus_core import PluginContext, RequestContext
from nucleus_core.auth import check_unknown_settings, setting
from nucleus_core.capabilities import ExtensionStorage, RollbackTransaction
from nucleus_core.context import DEFAULT_SCOPES, KEYS, SCOPES, WILDCARD_SCOPE, require_scope, scopes_from_names
from nucleus_core.errors import (
    ConfigurationError,
    DuplicateRecordError,
    IntegrityError,
    TokenExpiredError,
    TokenInvalidError,
    ValidationError,
)
from nucleus_core.import_state import rebuild_found_differences
from nucleus_core.oid import validate_oid
from nucleus_core.records import Entry, Record, system_record_id
from nucleus_core.requester_log import loggable_oid
from nucleus_core.storage import StorageQuery

from .keys import (
    KEY_ID_PATTERN,
    MIN_PEPPER_LENGTH,
    NOT_CARRIED_OVER,
    NOT_IMPORTED,
    PREFIX,
    ApiKey,
    authorizing_fields,
    new_key,
    pepper_id,
    secret_hash,
    split_key,
)
from .store import KeyStore, MemoryKeyStore, SqlKeyStore

log = logging.getLogger(__name__)

NAME = "auth.api_key"
SETTINGS = ("pepper", "pepper_env", "previous_peppers", "max_lifetime")
STREAM = "_api_keys"
"""The system stream recording every key creation and revocation."""
SYSTEM_OID = "oid:nucleus:service:auth.api_key"
"""The requester of ``_api_keys`` records written without a caller's context (recorded as ``by: null``)."""
MEMORY_STORE_KEY = "nucleus_token_api_key"
"""Where a memory ledger keeps its keys (``storage.extensions``, see
:class:`~nucleus_core.capabilities.ExtensionStorage`), beside its chain."""
MAX_VERIFIED = 4096
"""Most keys remembered as verified against their row (the memo is emptied when full)."""
MAX_REPORTED = 20
CONSISTENCY_ATTEMPTS = 5
"""Comparisons of the key table with the chain while other writers move the head (see
:meth:`ApiKeyParser.check_consistency`)."""
"""Most consistency problems logged at open (all are counted)."""
_SCOPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:._-*/")


def _pepper_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) < MIN_PEPPER_LENGTH:
        raise ConfigurationError(f"{NAME}: {what} must be a string of at least {MIN_PEPPER_LENGTH} characters")
    return value.encode("utf-8")


def load_peppers(settings: Mapping[str, Any]) -> tuple[bytes, dict[str, bytes]]:
    """The current pepper and every accepted pepper by id, from ``pepper`` or ``pepper_env``
    (the name of an environment variable holding it) plus ``previous_peppers`` (for rotation)."""
    if ("pepper" in settings) == ("pepper_env" in settings):
        raise ConfigurationError(f"{NAME}: set exactly one of 'pepper' and 'pepper_env' (a secret of 32+ characters)")
    if "pepper_env" in settings:
        var = setting(settings, "pepper_env", str, plugin=NAME)
        raw = os.environ.get(var)
        if raw is None:
            raise ConfigurationError(f"{NAME}: environment variable {var!r} (pepper_env) is not set")
        current = _pepper_bytes(raw, f"the value of {var}")
    else:
        current = _pepper_bytes(settings["pepper"], "setting 'pepper'")
    peppers = {pepper_id(current): current}
    for i, old in enumerate(setting(settings, "previous_peppers", (list, tuple), plugin=NAME, default=())):
        value = _pepper_bytes(old, f"previous_peppers[{i}]")
        peppers.setdefault(pepper_id(value), value)
    return current, peppers


def create_record_id(key_id: str) -> str:
    """The id of the ``_api_keys`` record of a key's creation (one per key and ledger): in the
    namespace of system-stream ids (leading ``_``), which no user record can take."""
    return system_record_id(STREAM, f"create:{key_id}")


def revoke_record_id(key_id: str) -> str:
    """The id of the ``_api_keys`` record of a key's revocation (one per key and ledger)."""
    return system_record_id(STREAM, f"revoke:{key_id}")


def legacy_revoke_record_id(key_id: str) -> str:
    """The id older versions gave a key's revocation record. Any user record could take such an
    id, so it counts only when the record found is in the ``_api_keys`` stream."""
    return f"api-key-revoke-{key_id}"


class _NothingToRevoke(Exception):
    """Rolls the revocation's ledger transaction back when the row was revoked meanwhile."""


def _check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """A key's scopes: core scopes (:data:`nucleus_core.context.SCOPES`), ``*`` (every core scope
    but ``keys``, which is given only by name)
    or an application's own scopes, which carry a ``:`` (``books:append``) and are only passed on
    in ``claims["scopes"]``. Anything else (a typo such as ``raed``) is refused."""
    if isinstance(scopes, str):
        raise ValidationError("must be a list of scopes", field="scopes")
    out = tuple(scopes)
    for s in out:
        if not isinstance(s, str) or not s or len(s) > 128 or not set(s) <= _SCOPE_CHARS:
            raise ValidationError(f"{s!r} is not a scope (1-128 of letters, digits and :._-*/)", field="scopes")
        if s not in SCOPES and s != WILDCARD_SCOPE and ":" not in s:
            raise ValidationError(
                f"{s!r} is not a scope: use {', '.join(sorted(SCOPES))}, * or an application scope with a ':'",
                field="scopes",
            )
    return out


def key_scopes(stored: Iterable[str]) -> frozenset[str]:
    """The core scopes of a key with the stored scope list ``stored``: the default scopes (every
    scope but ``keys``) when the key was created without any (not narrowed), else those it names
    (``*`` = the default scopes; ``keys`` only when named; application scopes give none)."""
    names = tuple(stored)
    return DEFAULT_SCOPES if not names else scopes_from_names(names)


class ApiKeyParser:
    """Authenticates ``nuk_...`` API keys and manages them.

    Settings: ``pepper`` or ``pepper_env`` (required server-side secret, 32+ characters),
    ``previous_peppers`` (older peppers still accepted, for rotation), ``max_lifetime`` (seconds;
    when set, every new key must expire within it).

    A parser built by a ledger is bound to it when the ledger opens (:meth:`bind`); from then on
    creations and revocations are recorded in the ``_api_keys`` stream. A parser built directly
    (``ApiKeyParser(context, store=...)``, without a ledger) still seals every row with its MAC but
    has no chain to record in or to consult.
    """

    def __init__(
        self, context: PluginContext, *, clock: Callable[[], float] = time.time, store: KeyStore | None = None
    ) -> None:
        settings = context.settings
        check_unknown_settings(settings, SETTINGS, plugin=NAME)
        self._pepper, self._peppers = load_peppers(settings)
        self._current_pepper_id = pepper_id(self._pepper)
        self._max_lifetime = setting(settings, "max_lifetime", (int, float), plugin=NAME, default=None)
        if self._max_lifetime is not None and self._max_lifetime <= 0:
            raise ConfigurationError(f"{NAME}: setting 'max_lifetime' must be positive")
        self._clock = clock
        self._ledger_id = context.ledger_id
        if store is None:
            sql_store = SqlKeyStore.for_plugin(context, plugin=NAME)
            if sql_store is not None:
                store = sql_store
            elif isinstance(context.storage, ExtensionStorage) and not context.storage.persistent:
                store = context.storage.extensions.setdefault(MEMORY_STORE_KEY, MemoryKeyStore())
            else:
                store = MemoryKeyStore()
        self._store = store
        self._ledger: Any = None
        # Key ids the chain says are revoked, and ids whose row differed from the chain at open.
        self._revoked: set[str] = set()
        self._quarantined: set[str] = set()
        self._dummy_hash = secret_hash(self._pepper, self._ledger_id, "0" * 12, "0" * 43)
        # SHA-256 of a key -> the row its secret and the row's MAC were checked against. Both checks
        # are functions of (pepper, ledger id, row, key) alone, so a request whose key and freshly
        # read row equal an entry's needs neither again (two HMACs and an RFC 8785 encoding, ~25 us);
        # any change of the row (revocation, an edit) makes it differ and checks in full. Every
        # other check (revocation in the row and in the chain, quarantine, expiry) runs every time.
        self._verified: dict[bytes, ApiKey] = {}

    # TokenParser -----------------------------------------------------------------------------
    def validate_format(self, token: str) -> bool:
        """True for tokens starting with ``nuk_`` (the checksum is checked in :meth:`parse`)."""
        return token.startswith(PREFIX)

    def parse(self, token: str) -> RequestContext:
        """Verify the key. Malformed keys and bad checksums are refused before any storage access.

        A key is refused (:class:`TokenInvalidError`, the same message for every reason below) when
        its secret is wrong, its row fails its MAC (edited in the database), its row has the first
        format, or the ``_api_keys`` stream holds its revocation whatever the row says. The
        context's ``expires_at`` is the key's expiry (None: it does not expire). Nothing is
        recorded (no last-used time): checking a key again changes nothing."""
        parts = split_key(token)
        if parts is None:
            raise TokenInvalidError("API key is malformed")
        key_id, secret, checksum_ok = parts
        if not checksum_ok:
            raise TokenInvalidError("API key checksum does not match")
        record = self._store.get(key_id)
        pepper = self._peppers.get(record.pepper_id) if record is not None else None
        if record is None or pepper is None or record.mac is None or record.secret_hash == NOT_CARRIED_OVER:
            # Same work as for a real key, so timing does not tell whether the id exists.
            hmac.compare_digest(self._dummy_hash, secret_hash(self._pepper, self._ledger_id, key_id, secret))
            if record is not None and record.mac is None:
                log.warning("API key %s is stored in the first format and cannot authenticate; re-issue it", key_id)
            elif record is not None and record.secret_hash == NOT_CARRIED_OVER:
                log.warning("API key %s was not carried over by an import and cannot authenticate; re-issue it", key_id)
            elif record is not None:
                log.warning("API key %s was hashed with a pepper that is no longer configured", key_id)
            raise TokenInvalidError("API key is not valid")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        if self._verified.get(digest) != record:
            secret_ok = hmac.compare_digest(record.secret_hash, secret_hash(pepper, self._ledger_id, key_id, secret))
            if not secret_ok:
                raise TokenInvalidError("API key is not valid")
            if not record.mac_matches(pepper, self._ledger_id):
                log.warning("API key %s: its stored row fails its MAC (changed in the database); refused", key_id)
                raise TokenInvalidError("API key is not valid")
            if len(self._verified) >= MAX_VERIFIED:
                self._verified.clear()
            self._verified[digest] = record
        if record.revoked_at is not None:
            raise TokenInvalidError("API key was revoked")
        if self._revoked_in_chain(key_id):
            log.warning("API key %s: the %s stream holds its revocation but its row does not; refused", key_id, STREAM)
            raise TokenInvalidError("API key is not valid")
        if key_id in self._quarantined:
            log.warning("API key %s: its row differed from the %s stream at open; refused", key_id, STREAM)
            raise TokenInvalidError("API key is not valid")
        now = self._clock()
        if record.expires_at is not None and now >= record.expires_at:
            raise TokenExpiredError("API key has expired")
        return RequestContext(
            oid=record.principal,
            source=NAME,
            role=record.role,
            claims={"key_id": key_id, "scopes": list(record.scopes)},
            scopes=key_scopes(record.scopes),
            expires_at=record.expires_at,
        )

    def _revoked_in_chain(self, key_id: str) -> bool:
        """True when the chain holds the key's revocation: known since open or since this parser
        revoked it, else looked up by its record id (an index lookup), which also sees revocations
        other processes appended since."""
        if key_id in self._revoked:
            return True
        if self._ledger is None:
            return False
        if self._chain_revocation(key_id) is None:
            return False
        self._revoked.add(key_id)
        return True

    def _chain_revocation(self, key_id: str) -> Entry | None:
        """The ``_api_keys`` entry revoking ``key_id`` (its id in either form), or None. A record
        found under such an id in any other stream is someone else's record and means nothing."""
        storage = self._ledger.storage
        for record_id in (revoke_record_id(key_id), legacy_revoke_record_id(key_id)):
            stored: Entry | None = storage.get_by_id(record_id)
            if stored is not None and stored.stream == STREAM:
                return stored
        return None

    # binding to a ledger ---------------------------------------------------------------------
    def bind(self, ledger: Any) -> list[str]:
        """Record creations and revocations in ``ledger``'s ``_api_keys`` stream from now on, learn
        the revocations it holds and compare the table with it. Returns the differences found (also
        logged); the keys concerned are refused until re-issued. Called by the plugin's
        ``nucleus_ledger_opened`` hook."""
        if ledger.id != self._ledger_id:
            raise ConfigurationError(f"{NAME}: parser of ledger {self._ledger_id!r} cannot bind ledger {ledger.id!r}")
        self._ledger = ledger
        if ledger.rebuilding:
            self._rebuild()
        problems = self.check_consistency()
        for problem in problems[:MAX_REPORTED]:
            log.error("%s: %s", NAME, problem)
        if len(problems) > MAX_REPORTED:
            log.error("%s: %d more API key rows differ from the %s stream", NAME, len(problems) - MAX_REPORTED, STREAM)
        legacy = [k.key_id for k in self._store.list() if k.mac is None and k.revoked_at is None]
        if legacy:
            log.warning(
                "%s: %d API key(s) are stored in the first format and can no longer authenticate; "
                "re-issue them (nucleus keys create) and revoke the old ids (nucleus keys revoke)",
                NAME,
                len(legacy),
            )
        return problems

    def _rebuild(self) -> None:
        """The rebuild mode (an import being finished): a row for every key of the ``_api_keys``
        stream missing from the table, marked as not carried over (:data:`~.keys.NOT_CARRIED_OVER`:
        its secret's hash was never in the chain). Such a row never authenticates; its key must be
        issued again. Such rows of keys the chain does not hold go; every other row present is left
        as it is (and compared with the chain), so a rebuild can run again."""
        try:
            chain = self.keys_from_chain()
        except ValidationError as err:
            raise IntegrityError(f"{NAME}: the key table cannot be built from the chain: {err}",
                                 seq=getattr(err, "seq", None), reason=str(err)) from None
        stored = self._store.list()
        # Rows already stored that differ from the chain (rows of keys missing from the table are
        # what the rebuild adds; rows without a secret of keys the chain lacks go, below).
        kept = {k.key_id for k in stored if not (k.secret_hash == NOT_CARRIED_OVER and k.key_id not in chain)}
        differing = {k: v for k, v in self._differences().items() if k in kept}
        if differing:
            first = differing[min(differing)]
            rebuild_found_differences(
                self._ledger, NAME,
                f"{len(stored)} API key row(s) stored, {len(differing)} differing from the {STREAM} stream; "
                f"first difference: {first}",
            )
        # Rows a rebuild wrote for keys this chain does not hold (left by an import that failed
        # afterwards): they carry no secret, so they go; every other row stays, compared below.
        stale = [k.key_id for k in stored if k.secret_hash == NOT_CARRIED_OVER and k.key_id not in chain]
        present = {k.key_id for k in stored} - set(stale)
        rows: list[ApiKey] = []
        for key_id, fields in chain.items():
            if key_id in present or "principal" not in fields:
                continue
            try:
                row = ApiKey(
                    **{f: fields[f] for f in fields if f != "scopes"}, scopes=tuple(fields.get("scopes") or ()),
                    secret_hash=NOT_CARRIED_OVER,
                )
            except (TypeError, ValueError) as err:
                raise IntegrityError(
                    f"{NAME}: API key {key_id} of the {STREAM} stream is malformed ({err})", reason="malformed key"
                ) from None
            pepper = self._peppers.get(row.pepper_id, self._pepper)
            rows.append(row.sealed(pepper, self._ledger_id))
        if not rows and not stale:
            return
        log.warning(
            "%s: %d API key(s) of the %s stream were not carried over (their secrets are not in the chain): listed "
            "as %s, they never authenticate; issue them again (nucleus keys create) and revoke the old ids",
            NAME, len(rows), STREAM, NOT_IMPORTED,
        )

        store = self._store
        with self._ledger.storage.write() as tx:
            for key_id in stale:
                store.remove_not_imported(key_id)
            for row in rows:
                store.add(row)
                if isinstance(store, MemoryKeyStore) and isinstance(tx, RollbackTransaction):
                    tx.on_rollback(functools.partial(store.remove, row.key_id))

    def keys_from_chain(self) -> dict[str, dict[str, Any]]:
        """Every key's authorizing fields as the ``_api_keys`` stream records them, by key id
        (revocations applied). Needs a bound ledger."""
        if self._ledger is None:
            raise ConfigurationError(f"{NAME}: the parser is not bound to a ledger")
        state: dict[str, dict[str, Any]] = {}
        storage = self._ledger.storage
        after = 0
        while True:
            rows = storage.query(StorageQuery(streams=(STREAM,), after_seq=after, limit=1000))
            for stored in rows:
                doc = Record.from_canonical(stored.canonical, seq=stored.seq).payload
                op = doc.get("op") if isinstance(doc, dict) else None
                key_id = doc.get("key_id") if isinstance(doc, dict) else None
                if op == "create" and isinstance(doc, dict) and isinstance(doc.get("key"), dict):
                    state[str(key_id)] = dict(doc["key"])
                elif op == "revoke" and isinstance(doc, dict):
                    # A revocation of a key created before the stream existed still counts.
                    state.setdefault(str(key_id), {"key_id": key_id})["revoked_at"] = doc.get("revoked_at")
                else:
                    raise ValidationError(f"entry {stored.seq} of {STREAM} is not a key change", field=STREAM)
            if len(rows) < 1000:
                return state
            after = rows[-1].seq

    def check_consistency(self) -> list[str]:
        """Compare the key table with the ``_api_keys`` stream and every row with its MAC; return
        the differences (key ids and field names only, never a secret or hash). Keys concerned are
        refused from now on; revocations in the chain are remembered. Needs a bound ledger.

        The stream and the table are read one after the other while other processes may create or
        revoke keys (the record and the row in one transaction): a difference counts only when the
        head did not move while it was found, otherwise the comparison runs again (a few times)."""
        problems: dict[str, str] = {}
        for _attempt in range(CONSISTENCY_ATTEMPTS):
            before = self._head_seq()
            problems = self._differences()
            if not problems or self._head_seq() == before:
                break
        self._quarantined = set(problems)
        return [problems[k] for k in sorted(problems)]

    def _head_seq(self) -> int:
        head = self._ledger.storage.head()
        return int(head.seq) if head is not None else 0

    def _differences(self) -> dict[str, str]:
        """The differences between the key table and the chain, by key id."""
        try:
            chain = self.keys_from_chain()
        except ValidationError as err:
            return {"": str(err)}
        self._revoked |= {k for k, fields in chain.items() if fields.get("revoked_at") is not None}
        problems: dict[str, str] = {}
        rows = {k.key_id: k for k in self._store.list()}
        for key_id, row in rows.items():
            recorded = chain.get(key_id)
            if recorded is None:
                if row.mac is not None:
                    problems[key_id] = f"API key {key_id} is not in the {STREAM} stream"
                continue
            if "principal" not in recorded:
                continue  # first-format key revoked through the stream: nothing else to compare
            if row.mac is None:
                problems[key_id] = f"API key {key_id} lost its MAC"
                continue
            fields = authorizing_fields(row)
            differing = sorted(f for f in fields if fields[f] != recorded.get(f))
            if differing:
                problems[key_id] = f"API key {key_id}: {', '.join(differing)} differ(s) from the {STREAM} stream"
                continue
            pepper = self._peppers.get(row.pepper_id)
            if pepper is not None and not row.mac_matches(pepper, self._ledger_id):
                problems[key_id] = f"API key {key_id}: its row fails its MAC"
        for key_id, recorded in chain.items():
            if key_id not in rows and "principal" in recorded and recorded.get("revoked_at") is None:
                problems[key_id] = f"API key {key_id} of the {STREAM} stream is missing from the table"
        return problems

    def _append(self, record: Record, context: RequestContext | None, within: Callable[[Any], None]) -> None:
        requester = context if context is not None else RequestContext(oid=SYSTEM_OID, source=NAME)
        self._ledger.append_system([record], requester, within=within)

    def _change_record(self, record_id: str, payload: dict[str, Any]) -> Record:
        return Record(id=record_id, stream=STREAM, timestamp=int(self._clock() * 1000), payload=payload)

    # management ------------------------------------------------------------------------------
    def create_key(
        self,
        principal: str,
        *,
        role: str | None = None,
        scopes: Iterable[str] = (),
        expires_in: float | None = None,
        name: str = "",
        context: RequestContext | None = None,
    ) -> tuple[str, ApiKey]:
        """Create a key for ``principal``. Returns ``(key, record)``: the key is shown only here and
        is not stored anywhere; keep it safe. ``context`` (who creates it) is recorded in the
        ``_api_keys`` stream together with the key's fields, in the same transaction as the row;
        it needs the ``keys`` scope (None: the operator, e.g. ``nucleus keys`` working on the
        storage directly).

        ``scopes`` narrows what requests made with the key may do (see :func:`key_scopes`): no
        scopes leaves every scope but ``keys``, ``["read"]`` allows reads only, and only a list that
        names ``keys`` lets the key's holder manage keys."""
        if context is not None:
            require_scope(context, KEYS)
        validate_oid(principal, field="principal")
        if role is not None and (not isinstance(role, str) or not role.strip() or len(role) > 128):
            raise ValidationError("must be a non-empty string of at most 128 characters", field="role")
        if not isinstance(name, str) or len(name) > 256:
            raise ValidationError("must be a string of at most 256 characters", field="name")
        checked_scopes = _check_scopes(scopes)
        if expires_in is not None and (
            isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0
        ):
            raise ValidationError("must be a positive number of seconds", field="expires_in")
        if self._max_lifetime is not None and (expires_in is None or expires_in > self._max_lifetime):
            raise ValidationError(
                f"keys on this ledger must expire within {self._max_lifetime} seconds", field="expires_in"
            )
        now = self._clock()
        key, key_id, secret = new_key()
        record = ApiKey(
            key_id=key_id,
            principal=principal,
            role=role,
            scopes=checked_scopes,
            name=name,
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            secret_hash=secret_hash(self._pepper, self._ledger_id, key_id, secret),
            pepper_id=self._current_pepper_id,
        ).sealed(self._pepper, self._ledger_id)
        if self._ledger is None:
            self._store.add(record)
        else:

            def within(tx: Any) -> None:
                store = self._store
                store.add(record)
                if isinstance(store, MemoryKeyStore) and isinstance(tx, RollbackTransaction):
                    tx.on_rollback(functools.partial(store.remove, key_id))

            payload = {"op": "create", "key_id": key_id, "key": authorizing_fields(record), "by": _by(context)}
            self._append(self._change_record(create_record_id(key_id), payload), context, within)
        log.info("created API key %s for %s", key_id, loggable_oid(principal))
        return key, record

    def list_keys(self, *, include_inactive: bool = True, context: RequestContext | None = None) -> list[ApiKey]:
        """Stored keys, oldest first (revoked, expired and first-format ones too unless
        ``include_inactive`` is False). A requester (``context``) needs the ``keys`` scope."""
        if context is not None:
            require_scope(context, KEYS)
        keys = self._store.list()
        if include_inactive:
            return keys
        now = self._clock()
        return [k for k in keys if k.status(now) == "active" and k.key_id not in self._revoked | self._quarantined]

    def revoke_key(self, key_id: str, *, context: RequestContext | None = None) -> bool:
        """Revoke a key by id; False when there is no such active key. Takes effect immediately.
        The revocation is recorded in the ``_api_keys`` stream in the same transaction, so restoring
        an older copy of the row later does not bring the key back. A requester (``context``)
        needs the ``keys`` scope."""
        if context is not None:
            require_scope(context, KEYS)
        if not isinstance(key_id, str) or KEY_ID_PATTERN.fullmatch(key_id) is None:
            raise ValidationError("must be a 12-character API key id", field="key_id")
        current = self._store.get(key_id)
        if current is None or current.revoked_at is not None:
            return False
        if self._ledger is not None and self._realign_revoked(key_id, current):
            return False
        at = self._clock()
        mac = self._revoked_mac(current, at)
        if self._ledger is None:
            done = self._store.revoke(key_id, at, mac)
        else:

            def within(tx: Any) -> None:
                if not self._store.revoke(key_id, at, mac):
                    raise _NothingToRevoke
                store = self._store
                if isinstance(store, MemoryKeyStore) and isinstance(tx, RollbackTransaction):
                    tx.on_rollback(functools.partial(store.restore, current))

            payload = {"op": "revoke", "key_id": key_id, "revoked_at": at, "by": _by(context)}
            try:
                self._append(self._change_record(revoke_record_id(key_id), payload), context, within)
                done = True
            except _NothingToRevoke:
                done = False
            except DuplicateRecordError:
                # Revoked in the chain meanwhile (by another process): the row follows the chain.
                self._realign_revoked(key_id, current)
                done = False
            self._revoked.add(key_id)
        if done:
            log.info("revoked API key %s", key_id)
        return done

    def _realign_revoked(self, key_id: str, current: ApiKey) -> bool:
        """When the ``_api_keys`` stream holds the key's revocation already (the row was restored
        behind the ledger's back, or another process revoked it), bring the row back in line with
        the chain, with the time the chain records, and return True; the key was refused all along."""
        stored = self._chain_revocation(key_id)
        if stored is None:
            return False
        doc: Any = Record.from_canonical(stored.canonical, seq=stored.seq).payload
        recorded = doc.get("revoked_at") if isinstance(doc, dict) else None
        if isinstance(recorded, (int, float)) and not isinstance(recorded, bool):
            self._store.revoke(key_id, recorded, self._revoked_mac(current, recorded))
        self._revoked.add(key_id)
        return True

    def _revoked_mac(self, current: ApiKey, at: float) -> str | None:
        """The row MAC of ``current`` revoked at ``at``; None when its pepper is gone or the row has
        the first format (such rows never authenticate anyway)."""
        pepper = self._peppers.get(current.pepper_id)
        if pepper is None or current.mac is None:
            return None
        return attrs.evolve(current, revoked_at=at).sealed(pepper, self._ledger_id).mac

    def now(self) -> float:
        """The parser's clock (Unix seconds)."""
        return self._clock()


def _by(context: RequestContext | None) -> str | None:
    return context.oid if context is not None else None

"""The connect-grant module: consent a subject gives an application, with scopes.

Payloads (stream ``connect_grant``; a grant's id is the id of the record that gave it):

* ``{"type": "granted", "subject": OID, "app": OID, "scopes": [scope, ...], "expires_at"?: int}``
  - the requester must be ``subject``; ``subject`` and ``app`` differ; 1-64 distinct scopes;
  ``expires_at`` (Unix ms) must be later than the record's timestamp.
* ``{"type": "revoked", "grant_id", "by": OID}`` - the grant exists and is not revoked; ``by`` is
  its subject or its app, and the requester.
"""

from __future__ import annotations

import re
import time

import attrs

from nucleus_core import Record, RequestContext
from nucleus_core.modules import MAX_SAFE_INT, DerivedState, SeedGrant, StatefulModule, handle_operation
from nucleus_core.payloads import PayloadSchema, integer, oid, text, texts

SCOPE_PATTERN = re.compile(r"[a-z][a-z0-9_.:/-]{0,63}")
"""Scopes: 1-64 of lowercase ASCII letters, digits and ``_ . : / -``, starting with a letter."""


@attrs.frozen(kw_only=True)
class Granted:
    subject: str = oid()
    app: str = oid()
    scopes: tuple[str, ...] = texts(pattern=SCOPE_PATTERN)
    expires_at: int | None = integer(minimum=1, maximum=MAX_SAFE_INT, optional=True)


@attrs.frozen(kw_only=True)
class Revoked:
    grant_id: str = text(max_length=256)
    by: str = oid()


GrantEvent = Granted | Revoked


@attrs.frozen(kw_only=True)
class GrantInfo:
    """A connect grant as derived from the chain; ``scopes`` are sorted."""

    grant_id: str
    subject: str
    app: str
    scopes: tuple[str, ...]
    expires_at: int | None
    revoked: bool
    seq: int

    def is_active(self, now_ms: int | None = None) -> bool:
        """Not revoked and not expired at ``now_ms`` (default: now)."""
        if self.revoked:
            return False
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return self.expires_at is None or self.expires_at > now


EVENTS: dict[str, type[GrantEvent]] = {"granted": Granted, "revoked": Revoked}
"""The event class of each payload ``type``."""


class ConnectGrantModule(StatefulModule[GrantEvent]):
    """Connect grants. Handle queries take a :class:`RequestContext` and return only grants whose
    ``granted`` entry the ledger's access policy lets the requester read."""

    id = "connect_grant"
    version = "0.1.0"
    streams = ("connect_grant",)
    resource_kind = "connect_grant"

    def __init__(self) -> None:
        super().__init__()
        self._by_subject: dict[str, list[str]] = {}
        self._by_app: dict[str, list[str]] = {}
        self._payloads = PayloadSchema(self.id, EVENTS)

    def parse(self, record: Record) -> GrantEvent:
        event = self._payloads.read(record)
        if isinstance(event, Granted):
            if event.subject == event.app:
                self.reject(record, "must differ from 'subject'", "app")
            if event.expires_at is not None and event.expires_at <= record.timestamp:
                self.reject(record, "must be later than the record's timestamp", "expires_at")
        return event

    def check(self, state: DerivedState, event: GrantEvent, record: Record) -> None:
        if isinstance(event, Granted):
            return
        grant: GrantInfo | None = state.get("grant", event.grant_id)
        if grant is None:
            self.reject(record, f"no connect grant {event.grant_id!r}", "grant_id")
        if grant.revoked:
            self.reject(record, f"connect grant {event.grant_id!r} is already revoked", "grant_id")
        if event.by not in (grant.subject, grant.app):
            self.reject(record, f"only the grant's subject or app may revoke {event.grant_id!r}", "by")

    def authorize(self, state: DerivedState, event: GrantEvent, record: Record, context: RequestContext) -> None:
        if isinstance(event, Granted):
            self.require_requester(record, context, event.subject, "subject")
        else:
            self.require_requester(record, context, event.by, "by")

    def fold(self, state: DerivedState, event: GrantEvent, record: Record, seq: int | None) -> None:
        if isinstance(event, Granted):
            info = GrantInfo(
                grant_id=record.id,
                subject=event.subject,
                app=event.app,
                scopes=event.scopes,
                expires_at=event.expires_at,
                revoked=False,
                seq=seq or 0,
            )
            state.set("grant", record.id, info)
        else:
            state.set("grant", event.grant_id, attrs.evolve(state.get("grant", event.grant_id), revoked=True))

    def index(self, event: GrantEvent, record: Record, seq: int) -> None:
        if isinstance(event, Granted):
            self._by_subject.setdefault(event.subject, []).append(record.id)
            self._by_app.setdefault(event.app, []).append(record.id)

    # access-control contract ------------------------------------------------------------------
    def resource_id(self, record: Record) -> str | None:
        """A grant's id is the id of its ``granted`` record; a revocation belongs to that grant."""
        payload = record.payload if isinstance(record.payload, dict) else {}
        if payload.get("type") == "revoked":
            value = payload.get("grant_id")
            return value if isinstance(value, str) else None
        return record.id

    def seed_grants(self, record: Record) -> list[SeedGrant]:
        """The subject holds ``full`` on its connect grant."""
        payload = record.payload if isinstance(record.payload, dict) else {}
        subject = payload.get("subject")
        if payload.get("type") == "granted" and isinstance(subject, str):
            return [SeedGrant(principal_oid=subject, scope="full")]
        return []

    # handle -------------------------------------------------------------------------------------
    @handle_operation
    def get(self, grant_id: str, context: RequestContext) -> GrantInfo | None:
        """The grant, or None when unknown or unreadable."""
        ctx = self.reader(context)
        grant: GrantInfo | None = self.state.get("grant", grant_id)
        if grant is None or not self.can_read(grant.seq, ctx):
            return None
        return grant

    def _active(
        self, index: dict[str, list[str]], key: str, context: RequestContext, now_ms: int | None
    ) -> list[GrantInfo]:
        ctx = self.reader(context)
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        grants: list[GrantInfo] = [self.state.get("grant", gid) for gid in self.indexed(index, key)]
        return [g for g in grants if g.is_active(now) and self.can_read(g.seq, ctx)]

    @handle_operation
    def active_for_subject(
        self, subject: str, context: RequestContext, *, now_ms: int | None = None
    ) -> list[GrantInfo]:
        """Readable grants ``subject`` gave that are neither revoked nor expired, oldest first."""
        return self._active(self._by_subject, subject, context, now_ms)

    @handle_operation
    def active_for_app(self, app: str, context: RequestContext, *, now_ms: int | None = None) -> list[GrantInfo]:
        """Readable grants given to ``app`` that are neither revoked nor expired, oldest first."""
        return self._active(self._by_app, app, context, now_ms)

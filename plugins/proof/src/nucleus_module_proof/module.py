"""The proof module: attestations an issuer makes about a subject.

Payloads (stream ``proof``; a proof's id is the id of the record that issued it):

* ``{"type": "issued", "subject": OID, "issuer": OID, "proof_type", "target", "data": object,
  "expires_at"?: int}`` - the requester must be ``issuer``; ``expires_at`` (Unix ms) must be later
  than the record's timestamp.
* ``{"type": "revoked", "proof_id", "by": OID, "reason"?}`` - the proof exists and is not
  revoked; ``by`` is its issuer and the requester.
"""

from __future__ import annotations

import enum
import re
import time
from typing import Any

import attrs

from nucleus_core import Record, RequestContext
from nucleus_core.modules import MAX_SAFE_INT, DerivedState, SeedGrant, StatefulModule, handle_operation
from nucleus_core.payloads import PayloadSchema, integer, json_object, oid, text

PROOF_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
"""Proof types: 1-64 of lowercase ASCII letters, digits and ``_ . : -``, starting with a letter."""

MAX_TARGET_LENGTH = 512


class ProofStatus(enum.Enum):
    """A proof's current status. ``expired``: issued, not revoked, past its ``expires_at``."""

    ISSUED = "issued"
    REVOKED = "revoked"
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class Issued:
    subject: str = oid()
    issuer: str = oid()
    proof_type: str = text(pattern=PROOF_TYPE_PATTERN, max_length=64)
    target: str = text(max_length=MAX_TARGET_LENGTH)
    expires_at: int | None = integer(minimum=1, maximum=MAX_SAFE_INT, optional=True)
    data: dict[str, Any] = json_object()  # noqa: RUF009 - an attrs field, not a shared default


@attrs.frozen(kw_only=True)
class Revoked:
    proof_id: str = text(max_length=256)
    by: str = oid()
    reason: str | None = text(max_length=1024, optional=True)


ProofEvent = Issued | Revoked


@attrs.frozen(kw_only=True)
class ProofInfo:
    """A proof as derived from the chain (its ``data`` is in the entry: ``ledger.get_by_id``)."""

    proof_id: str
    subject: str
    issuer: str
    proof_type: str
    target: str
    expires_at: int | None
    revoked: bool
    seq: int

    def status(self, now_ms: int | None = None) -> ProofStatus:
        """``revoked``, ``expired`` (at ``now_ms``, default: now) or ``issued``."""
        if self.revoked:
            return ProofStatus.REVOKED
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        if self.expires_at is not None and self.expires_at <= now:
            return ProofStatus.EXPIRED
        return ProofStatus.ISSUED


EVENTS: dict[str, type[ProofEvent]] = {"issued": Issued, "revoked": Revoked}
"""The event class of each payload ``type``."""


class ProofModule(StatefulModule[ProofEvent]):
    """Proofs. Handle queries take a :class:`RequestContext` and return only proofs whose
    ``issued`` entry the ledger's access policy lets the requester read."""

    id = "proof"
    version = "0.1.0"
    streams = ("proof",)
    resource_kind = "proof"

    def __init__(self) -> None:
        super().__init__()
        self._by_subject: dict[str, list[str]] = {}
        self._by_issuer: dict[str, list[str]] = {}
        self._payloads = PayloadSchema(self.id, EVENTS)

    def parse(self, record: Record) -> ProofEvent:
        event = self._payloads.read(record)
        if isinstance(event, Issued) and event.expires_at is not None and event.expires_at <= record.timestamp:
            self.reject(record, "must be later than the record's timestamp", "expires_at")
        return event

    def check(self, state: DerivedState, event: ProofEvent, record: Record) -> None:
        if isinstance(event, Issued):
            return
        proof: ProofInfo | None = state.get("proof", event.proof_id)
        if proof is None:
            self.reject(record, f"no proof {event.proof_id!r}", "proof_id")
        if proof.revoked:
            self.reject(record, f"proof {event.proof_id!r} is already revoked", "proof_id")
        if event.by != proof.issuer:
            self.reject(record, f"only the issuer may revoke proof {event.proof_id!r}", "by")

    def authorize(self, state: DerivedState, event: ProofEvent, record: Record, context: RequestContext) -> None:
        self.require_requester(
            record,
            context,
            event.issuer if isinstance(event, Issued) else event.by,
            "issuer" if isinstance(event, Issued) else "by",
        )

    def fold(self, state: DerivedState, event: ProofEvent, record: Record, seq: int | None) -> None:
        if isinstance(event, Issued):
            info = ProofInfo(
                proof_id=record.id,
                subject=event.subject,
                issuer=event.issuer,
                proof_type=event.proof_type,
                target=event.target,
                expires_at=event.expires_at,
                revoked=False,
                seq=seq or 0,
            )
            state.set("proof", record.id, info)
        else:
            state.set("proof", event.proof_id, attrs.evolve(state.get("proof", event.proof_id), revoked=True))

    def index(self, event: ProofEvent, record: Record, seq: int) -> None:
        if isinstance(event, Issued):
            self._by_subject.setdefault(event.subject, []).append(record.id)
            self._by_issuer.setdefault(event.issuer, []).append(record.id)

    # access-control contract ------------------------------------------------------------------
    def resource_id(self, record: Record) -> str | None:
        """A proof's id is the id of its ``issued`` record; a revocation belongs to that proof."""
        payload = record.payload if isinstance(record.payload, dict) else {}
        if payload.get("type") == "revoked":
            value = payload.get("proof_id")
            return value if isinstance(value, str) else None
        return record.id

    def seed_grants(self, record: Record) -> list[SeedGrant]:
        """The subject of a new proof may read it."""
        payload = record.payload if isinstance(record.payload, dict) else {}
        subject = payload.get("subject")
        if payload.get("type") == "issued" and isinstance(subject, str):
            return [SeedGrant(principal_oid=subject, scope="read")]
        return []

    # handle -------------------------------------------------------------------------------------
    @handle_operation
    def get(self, proof_id: str, context: RequestContext) -> ProofInfo | None:
        """The proof, or None when unknown or unreadable."""
        ctx = self.reader(context)
        proof: ProofInfo | None = self.state.get("proof", proof_id)
        if proof is None or not self.can_read(proof.seq, ctx):
            return None
        return proof

    @handle_operation
    def status(self, proof_id: str, context: RequestContext, *, now_ms: int | None = None) -> ProofStatus | None:
        """The proof's current status, or None when unknown or unreadable."""
        proof = self.get(proof_id, context)
        return proof.status(now_ms) if proof is not None else None

    def _list(self, index: dict[str, list[str]], key: str, context: RequestContext) -> list[ProofInfo]:
        ctx = self.reader(context)
        proofs: list[ProofInfo] = [self.state.get("proof", pid) for pid in self.indexed(index, key)]
        return [p for p in proofs if self.can_read(p.seq, ctx)]

    @handle_operation
    def by_subject(self, subject: str, context: RequestContext) -> list[ProofInfo]:
        """Readable proofs about ``subject``, oldest first (revoked ones included: see ``status``)."""
        return self._list(self._by_subject, subject, context)

    @handle_operation
    def by_issuer(self, issuer: str, context: RequestContext) -> list[ProofInfo]:
        """Readable proofs issued by ``issuer``, oldest first."""
        return self._list(self._by_issuer, issuer, context)

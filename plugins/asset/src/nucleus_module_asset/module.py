"""The asset module: assets with an issuer and an owner, and their events.

Payloads (stream ``asset``):

* ``{"type": "issued", "asset_id", "issuer": OID, "owner": OID, "asset_type"?, "data"?: object}``
  - the requester must be ``issuer``; ``asset_id`` must be new.
* ``{"type": "transferred", "asset_id", "from": OID, "to": OID}`` - the asset is active, ``from``
  is its current owner and the requester; ``to`` differs from ``from``.
* ``{"type": "revoked", "asset_id", "by": OID, "reason"?}`` - the asset is active; ``by`` is its
  issuer and the requester.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from nucleus_core import Entry, Record, RequestContext
from nucleus_core.modules import DerivedState, SeedGrant, StatefulModule, handle_operation
from nucleus_core.payloads import PayloadSchema, identifier, json_object, oid, text

ASSET_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")
"""Asset types: 1-64 of lowercase ASCII letters, digits and ``_ . : -``, starting with a letter."""

ACTIVE = "active"
REVOKED = "revoked"


@attrs.frozen(kw_only=True)
class Issued:
    asset_id: str = identifier()
    issuer: str = oid()
    owner: str = oid()
    asset_type: str | None = text(pattern=ASSET_TYPE_PATTERN, optional=True)
    data: dict[str, Any] | None = json_object(optional=True)  # noqa: RUF009 - an attrs field, not a shared default


@attrs.frozen(kw_only=True)
class Transferred:
    asset_id: str = identifier()
    sender: str = oid(key="from")
    to: str = oid()


@attrs.frozen(kw_only=True)
class Revoked:
    asset_id: str = identifier()
    by: str = oid()
    reason: str | None = text(max_length=1024, optional=True)


AssetEvent = Issued | Transferred | Revoked


@attrs.frozen(kw_only=True)
class AssetInfo:
    """An asset as derived from the chain. ``status`` is ``active`` or ``revoked``; ``seq`` is
    the entry that issued it."""

    asset_id: str
    issuer: str
    owner: str
    asset_type: str | None
    status: str
    seq: int


EVENTS: dict[str, type[AssetEvent]] = {"issued": Issued, "transferred": Transferred, "revoked": Revoked}
"""The event class of each payload ``type``."""


class AssetModule(StatefulModule[AssetEvent]):
    """Assets. Handle queries take a :class:`RequestContext` and answer only about assets whose
    ``issued`` entry the ledger's access policy lets the requester read; ``history`` returns
    only readable entries."""

    id = "asset"
    version = "0.1.0"
    streams = ("asset",)
    resource_kind = "asset"

    def __init__(self) -> None:
        super().__init__()
        self._history: dict[str, list[int]] = {}
        self._by_owner: dict[str, set[str]] = {}
        # record id -> principals whose grant it withdraws, noted while the current batch is validated
        self._withdrawn: dict[str, list[str]] = {}
        self._payloads = PayloadSchema(self.id, EVENTS)

    def parse(self, record: Record) -> AssetEvent:
        event = self._payloads.read(record)
        if isinstance(event, Transferred) and event.sender == event.to:
            self.reject(record, "must differ from 'from'", "to")
        return event

    def check(self, state: DerivedState, event: AssetEvent, record: Record) -> None:
        asset: AssetInfo | None = state.get("asset", event.asset_id)
        if isinstance(event, Issued):
            if asset is not None:
                self.reject(record, f"asset {event.asset_id!r} exists already", "asset_id")
            return
        if asset is None:
            self.reject(record, f"no asset {event.asset_id!r}", "asset_id")
        if asset.status != ACTIVE:
            self.reject(record, f"asset {event.asset_id!r} is revoked", "asset_id")
        if isinstance(event, Transferred) and event.sender != asset.owner:
            self.reject(record, f"{event.sender!r} is not the current owner of {event.asset_id!r}", "from")
        if isinstance(event, Revoked) and event.by != asset.issuer:
            self.reject(record, f"only the issuer may revoke {event.asset_id!r}", "by")

    def authorize(self, state: DerivedState, event: AssetEvent, record: Record, context: RequestContext) -> None:
        if isinstance(event, Issued):
            self.require_requester(record, context, event.issuer, "issuer")
        elif isinstance(event, Transferred):
            self.require_requester(record, context, event.sender, "from")
        else:
            self.require_requester(record, context, event.by, "by")

    def begin_batch(self) -> None:
        super().begin_batch()
        self._withdrawn = {}

    def fold(self, state: DerivedState, event: AssetEvent, record: Record, seq: int | None) -> None:
        if seq is None and not isinstance(event, Issued):
            # Validating a new record: note the owner it dispossesses (see withdraw_grants).
            current: AssetInfo = state.get("asset", event.asset_id)
            if current.owner != current.issuer:
                self._withdrawn[record.id] = [current.owner]
        if isinstance(event, Issued):
            info = AssetInfo(
                asset_id=event.asset_id,
                issuer=event.issuer,
                owner=event.owner,
                asset_type=event.asset_type,
                status=ACTIVE,
                seq=seq or 0,
            )
            state.set("asset", event.asset_id, info)
            return
        asset: AssetInfo = state.get("asset", event.asset_id)
        if isinstance(event, Transferred):
            state.set("asset", event.asset_id, attrs.evolve(asset, owner=event.to))
        else:
            state.set("asset", event.asset_id, attrs.evolve(asset, status=REVOKED))

    def index(self, event: AssetEvent, record: Record, seq: int) -> None:
        self._history.setdefault(event.asset_id, []).append(seq)
        if isinstance(event, Issued):
            self._by_owner.setdefault(event.owner, set()).add(event.asset_id)
        elif isinstance(event, Transferred):
            self._by_owner.get(event.sender, set()).discard(event.asset_id)
            self._by_owner.setdefault(event.to, set()).add(event.asset_id)
        else:
            owner = self.state.get("asset", event.asset_id).owner
            self._by_owner.get(owner, set()).discard(event.asset_id)

    # access-control contract ------------------------------------------------------------------
    def resource_id(self, record: Record) -> str | None:
        """Every event of an asset belongs to the asset: its ``asset_id``."""
        value = record.payload.get("asset_id") if isinstance(record.payload, dict) else None
        return value if isinstance(value, str) else None

    def seed_grants(self, record: Record) -> list[SeedGrant]:
        """The owner holds ``full`` on the asset: on issue, and the new owner on transfer."""
        payload = record.payload if isinstance(record.payload, dict) else {}
        kind = payload.get("type")
        holder = payload.get("owner") if kind == "issued" else payload.get("to") if kind == "transferred" else None
        return [SeedGrant(principal_oid=holder, scope="full")] if isinstance(holder, str) else []

    def withdraw_grants(self, record: Record) -> list[str]:
        """A transfer withdraws the previous owner's grant on the asset, a revocation the owner's;
        the issuer keeps the ``full`` it holds as the appender of the ``issued`` record (it may
        still revoke), so an owner who is the issuer is never withdrawn. Answered from what
        :meth:`validate` saw, so it is right for any position in a batch."""
        return list(self._withdrawn.get(record.id, ()))

    # handle -------------------------------------------------------------------------------------
    @handle_operation
    def get(self, asset_id: str, context: RequestContext) -> AssetInfo | None:
        """The asset (issuer, owner, type, status), or None when unknown or unreadable."""
        ctx = self.reader(context)
        asset: AssetInfo | None = self.state.get("asset", asset_id)
        if asset is None or not self.can_read(asset.seq, ctx):
            return None
        return asset

    @handle_operation
    def owner(self, asset_id: str, context: RequestContext) -> str | None:
        """The current owner's OID (also for a revoked asset), or None when unknown or unreadable."""
        asset = self.get(asset_id, context)
        return asset.owner if asset is not None else None

    @handle_operation
    def history(self, asset_id: str, context: RequestContext) -> list[Entry]:
        """The asset's readable entries in seq order (none when its ``issued`` entry is unreadable)."""
        if self.get(asset_id, context) is None:
            return []  # one check: an unreadable asset costs what an unknown one does
        entries = (self.readable(seq, context) for seq in self.indexed(self._history, asset_id))
        return [e for e in entries if e is not None]

    @handle_operation
    def assets_of(self, owner: str, context: RequestContext) -> list[AssetInfo]:
        """The active assets ``owner`` holds now (readable ones), sorted by asset id."""
        ctx = self.reader(context)
        found: list[AssetInfo] = []
        for asset_id in sorted(self.indexed(self._by_owner, owner)):
            asset: AssetInfo = self.state.get("asset", asset_id)
            if self.can_read(asset.seq, ctx):
                found.append(asset)
        return found

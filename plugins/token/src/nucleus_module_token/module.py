"""The token module: create, mint (issuer only), transfer and burn fungible tokens.

Payloads (stream ``token``; every amount is an integer count of the smallest unit, 1 to 2**53-1):

* ``{"type": "created", "token_id", "issuer": OID, "symbol", "decimals": 0-18, "cap"?: int}``
  - the requester must be ``issuer``; ``token_id`` must be new.
* ``{"type": "minted", "token_id", "tx_id", "to": OID, "amount"}`` - the requester must be the
  token's issuer; supply + amount must not exceed the cap (or 2**53-1 without one).
* ``{"type": "transferred", "token_id", "tx_id", "from": OID, "to": OID, "amount"}`` - the
  requester must be ``from``; ``from`` != ``to``; no negative balance.
* ``{"type": "burned", "token_id", "tx_id", "from": OID, "amount"}`` - the requester must be
  ``from``; no negative balance.

``tx_id`` makes mint, transfer and burn idempotent: a transaction id already used anywhere on the
ledger is refused (:class:`~nucleus_core.errors.RecordRejectedError`, naming the record that used
it when that record is of the same token, never a record of another token); a client retrying after
an unknown outcome looks the original up with :meth:`transaction`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

from nucleus_core import Entry, Record, RequestContext
from nucleus_core.modules import MAX_SAFE_INT, DerivedState, StatefulModule, handle_operation
from nucleus_core.payloads import PayloadSchema, identifier, integer, oid, text

SYMBOL_PATTERN = re.compile(r"[A-Z][A-Z0-9]{0,11}")
"""Token symbols: 1-12 uppercase ASCII letters and digits, starting with a letter."""

MAX_DECIMALS = 18


@attrs.frozen(kw_only=True)
class Created:
    token_id: str = identifier()
    issuer: str = oid()
    symbol: str = text(pattern=SYMBOL_PATTERN)
    decimals: int = integer(minimum=0, maximum=MAX_DECIMALS)
    cap: int | None = integer(minimum=1, optional=True)


@attrs.frozen(kw_only=True)
class Minted:
    token_id: str = identifier()
    tx_id: str = identifier()
    to: str = oid()
    amount: int = integer(minimum=1)


@attrs.frozen(kw_only=True)
class Transferred:
    token_id: str = identifier()
    tx_id: str = identifier()
    sender: str = oid(key="from")
    to: str = oid()
    amount: int = integer(minimum=1)


@attrs.frozen(kw_only=True)
class Burned:
    token_id: str = identifier()
    tx_id: str = identifier()
    sender: str = oid(key="from")
    amount: int = integer(minimum=1)


TokenEvent = Created | Minted | Transferred | Burned


@attrs.frozen(kw_only=True)
class TokenInfo:
    """A token as derived from the chain. ``supply`` is minted minus burned; ``seq`` is the entry
    that created it."""

    token_id: str
    issuer: str
    symbol: str
    decimals: int
    cap: int | None
    supply: int
    seq: int


EVENTS: dict[str, type[TokenEvent]] = {
    "created": Created,
    "minted": Minted,
    "transferred": Transferred,
    "burned": Burned,
}
"""The event class of each payload ``type``."""


class TokenModule(StatefulModule[TokenEvent]):
    """Fungible tokens. Handle queries take a :class:`RequestContext` and return only what the
    ledger's access policy lets the requester read: token-level answers (``token``, ``balance``,
    ``holders``) need read access to the token's ``created`` entry; ``history`` and
    ``transaction`` need it too (checked first, so an unreadable token costs one check) and then
    return only readable entries. An unknown or unreadable token looks empty."""

    id = "token"
    version = "0.1.0"
    streams = ("token",)
    resource_kind = "token"

    def __init__(self) -> None:
        super().__init__()
        self._holders: dict[str, set[str]] = {}
        self._history: dict[str, list[int]] = {}
        self._tx_seq: dict[str, int] = {}
        self._payloads = PayloadSchema(self.id, EVENTS)

    # schema and rules -------------------------------------------------------------------------
    def parse(self, record: Record) -> TokenEvent:
        event = self._payloads.read(record)
        if isinstance(event, Transferred) and event.sender == event.to:
            self.reject(record, "must differ from 'from'", "to")
        return event

    def check(self, state: DerivedState, event: TokenEvent, record: Record) -> None:
        token: TokenInfo | None = state.get("token", event.token_id)
        if isinstance(event, Created):
            if token is not None:
                self.reject(record, f"token {event.token_id!r} exists already", "token_id")
            return
        if token is None:
            self.reject(record, f"no token {event.token_id!r}", "token_id")
        original = state.get("tx", event.tx_id)
        if original is not None:
            used_on, used_by = original
            if used_on != event.token_id:
                # Another token's transaction: its record (and that token) may be unreadable here.
                self.reject(record, f"transaction {event.tx_id!r} is already used on this ledger", "tx_id")
            self.reject(record, f"transaction {event.tx_id!r} was already applied by record {used_by!r}", "tx_id")
        if isinstance(event, Minted):
            limit = token.cap if token.cap is not None else MAX_SAFE_INT
            if token.supply + event.amount > limit:
                self.reject(
                    record, f"minting {event.amount} would exceed the cap ({token.supply} of {limit} issued)", "amount"
                )
            return
        balance = state.get("balance", (event.token_id, event.sender), 0)
        if balance < event.amount:
            self.reject(record, f"{event.sender!r} holds {balance}, less than {event.amount}", "amount")

    def authorize(self, state: DerivedState, event: TokenEvent, record: Record, context: RequestContext) -> None:
        if isinstance(event, Created):
            self.require_requester(record, context, event.issuer, "issuer")
        elif isinstance(event, Minted):
            token: TokenInfo = state.get("token", event.token_id)
            if context.oid != token.issuer:
                self.reject(record, f"only the issuer {token.issuer!r} may mint {event.token_id!r}", "token_id")
        else:
            self.require_requester(record, context, event.sender, "from")

    def fold(self, state: DerivedState, event: TokenEvent, record: Record, seq: int | None) -> None:
        if isinstance(event, Created):
            info = TokenInfo(
                token_id=event.token_id,
                issuer=event.issuer,
                symbol=event.symbol,
                decimals=event.decimals,
                cap=event.cap,
                supply=0,
                seq=seq or 0,
            )
            state.set("token", event.token_id, info)
            return
        token: TokenInfo = state.get("token", event.token_id)
        state.set("tx", event.tx_id, (event.token_id, record.id))
        if isinstance(event, Minted):
            state.set("token", event.token_id, attrs.evolve(token, supply=token.supply + event.amount))
            self._credit(state, event.token_id, event.to, event.amount)
        elif isinstance(event, Transferred):
            self._credit(state, event.token_id, event.sender, -event.amount)
            self._credit(state, event.token_id, event.to, event.amount)
        else:
            state.set("token", event.token_id, attrs.evolve(token, supply=token.supply - event.amount))
            self._credit(state, event.token_id, event.sender, -event.amount)

    @staticmethod
    def _credit(state: DerivedState, token_id: str, holder: str, delta: int) -> None:
        key = (token_id, holder)
        state.set("balance", key, state.get("balance", key, 0) + delta)

    def index(self, event: TokenEvent, record: Record, seq: int) -> None:
        self._history.setdefault(event.token_id, []).append(seq)
        if isinstance(event, Created):
            return
        self._tx_seq[event.tx_id] = seq
        holders = self._holders.setdefault(event.token_id, set())
        for holder in _parties(event):
            if self.state.get("balance", (event.token_id, holder), 0) > 0:
                holders.add(holder)
            else:
                holders.discard(holder)

    # access-control contract ------------------------------------------------------------------
    def resource_id(self, record: Record) -> str | None:
        """Every event of a token belongs to the token: its ``token_id``."""
        value = record.payload.get("token_id") if isinstance(record.payload, dict) else None
        return value if isinstance(value, str) else None

    # handle -------------------------------------------------------------------------------------
    def _readable_token(self, token_id: str, context: RequestContext) -> TokenInfo | None:
        ctx = self.reader(context)
        token: TokenInfo | None = self.state.get("token", token_id)
        if token is None or not self.can_read(token.seq, ctx):
            return None
        return token

    @handle_operation
    def token(self, token_id: str, context: RequestContext) -> TokenInfo | None:
        """The token (issuer, symbol, decimals, cap, supply), or None."""
        return self._readable_token(token_id, context)

    @handle_operation
    def balance(self, token_id: str, holder: str, context: RequestContext) -> int:
        """``holder``'s balance of ``token_id`` in the smallest unit (0 for unknown)."""
        if self._readable_token(token_id, context) is None:
            return 0
        return int(self.state.get("balance", (token_id, holder), 0))

    @handle_operation
    def holders(self, token_id: str, context: RequestContext) -> dict[str, int]:
        """Every holder with a positive balance of ``token_id``, with the balance."""
        if self._readable_token(token_id, context) is None:
            return {}
        with_balance = ((h, self.state.get("balance", (token_id, h), 0)) for h in self.indexed(self._holders, token_id))
        return {h: b for h, b in sorted(with_balance) if b > 0}

    @handle_operation
    def history(self, token_id: str, context: RequestContext, *, holder: str | None = None) -> list[Entry]:
        """The token's entries in seq order (only those involving ``holder`` if given), readable ones only."""
        if self._readable_token(token_id, context) is None:
            return []  # one check: an unreadable token costs what an unknown one does
        out: list[Entry] = []
        for seq in self.indexed(self._history, token_id):
            entry = self.readable(seq, context)
            if entry is None:
                continue
            if holder is not None and holder not in _parties(self.parse(entry.record)):
                continue
            out.append(entry)
        return out

    @handle_operation
    def transaction(self, tx_id: str, context: RequestContext) -> Entry | None:
        """The entry that applied transaction ``tx_id``, or None."""
        ctx = self.reader(context)
        seq = self._tx_seq.get(tx_id)
        applied = self.state.get("tx", tx_id)
        if seq is None or applied is None or self._readable_token(applied[0], ctx) is None:
            return None
        return self.readable(seq, ctx)


def _parties(event: TokenEvent) -> Sequence[str]:
    if isinstance(event, Created):
        return (event.issuer,)
    if isinstance(event, Minted):
        return (event.to,)
    if isinstance(event, Transferred):
        return (event.sender, event.to)
    return (event.sender,)

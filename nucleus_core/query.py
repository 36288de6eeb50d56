"""Query filters (from callers, possibly untrusted) and results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .errors import QueryError, ValidationError
from .records import _ID_FORBIDDEN, Entry, parsed_entry, validate_stream
from .storage import DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, StorageQuery

MAX_FILTER_VALUES = 1000
"""At most this many streams or record ids in one query."""


@attrs.frozen(kw_only=True)
class QueryFilters:
    """What to look for. All given filters must match (AND); a list inside one matches any of it.

    ``stream``: a stream name or a list of them. ``record_ids``: a list of record ids.
    ``since`` / ``until``: record timestamps (Unix ms), ``since <= timestamp < until``.
    ``limit``: page size, 1..:data:`~nucleus_core.storage.MAX_QUERY_LIMIT` (default 100).
    ``cursor``: the ``next_cursor`` of the previous page. Results come in ascending seq order.
    """

    stream: str | list[str] | None = None
    record_ids: list[str] | None = None
    since: int | None = None
    until: int | None = None
    limit: int = DEFAULT_QUERY_LIMIT
    cursor: str | None = None

    def to_storage_query(self) -> StorageQuery:
        """Validate every field and produce the backend's query (with ``limit + 1`` rows, to know
        whether another page exists)."""
        streams: tuple[str, ...] | None = None
        if self.stream is not None:
            names = [self.stream] if isinstance(self.stream, str) else self.stream
            if not isinstance(names, list) or not names or len(names) > MAX_FILTER_VALUES:
                raise QueryError(f"must be a stream name or a list of 1-{MAX_FILTER_VALUES}", field="stream")
            try:
                streams = tuple(validate_stream(s, allow_system=True) for s in names)
            except ValidationError as err:
                raise QueryError(str(err), field="stream") from None
        ids: tuple[str, ...] | None = None
        if self.record_ids is not None:
            if not isinstance(self.record_ids, list) or not self.record_ids or len(self.record_ids) > MAX_FILTER_VALUES:
                raise QueryError(f"must be a list of 1-{MAX_FILTER_VALUES} record ids", field="record_ids")
            if not all(isinstance(r, str) and r for r in self.record_ids):
                raise QueryError("every record id must be a non-empty string", field="record_ids")
            if any(_ID_FORBIDDEN.search(r) for r in self.record_ids):
                # No record id holds one, and PostgreSQL cannot even receive NUL: refuse, on every backend.
                raise QueryError("record ids never contain control characters", field="record_ids")
            ids = tuple(self.record_ids)
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise QueryError("must be a non-negative integer (Unix milliseconds)", field=name)
        if type(self.limit) is not int or not 1 <= self.limit <= MAX_QUERY_LIMIT:
            raise QueryError(f"must be an integer from 1 to {MAX_QUERY_LIMIT}", field="limit")
        return StorageQuery(
            streams=streams,
            record_ids=ids,
            since=self.since,
            until=self.until,
            after_seq=decode_cursor(self.cursor),
            limit=self.limit + 1,
        )


def encode_cursor(seq: int) -> str:
    """The opaque cursor that continues after ``seq``."""
    return f"s{seq}"


def decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if (
        not isinstance(cursor, str) or not cursor.startswith("s") or not cursor.isascii()
        or not cursor[1:].isdigit() or len(cursor) > 20
    ):
        raise QueryError("is not a cursor returned by this ledger", field="cursor")
    return int(cursor[1:])


def filters_from(value: QueryFilters | Mapping[str, Any] | None) -> QueryFilters:
    """Accept filters as :class:`QueryFilters` or a mapping (only the documented keys)."""
    if value is None:
        return QueryFilters()
    if isinstance(value, QueryFilters):
        return value
    if not isinstance(value, Mapping):
        raise QueryError(f"filters must be QueryFilters or a mapping, got {type(value).__name__}")
    unknown = set(value) - {f.name for f in attrs.fields(QueryFilters)}
    if unknown:
        raise QueryError(f"unknown filter(s) {sorted(map(str, unknown))}", field="filters")
    try:
        return QueryFilters(**dict(value))
    except TypeError as err:
        raise QueryError(str(err), field="filters") from None


@attrs.frozen(kw_only=True)
class QueryResult:
    """One page of entries in ascending seq order; ``next_cursor`` is None on the last page."""

    entries: list[Entry]
    next_cursor: str | None = None

    def __iter__(self) -> Any:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def page(entries: Sequence[Entry], limit: int) -> QueryResult:
    """The page of ``entries`` (a query's rows, one more than ``limit`` when there are more): at most
    ``limit`` entries, each with its record parsed (:func:`~nucleus_core.records.parsed_entry`), and
    the cursor of the next page."""
    kept = list(map(parsed_entry, entries[:limit]))
    return QueryResult(entries=kept, next_cursor=encode_cursor(kept[-1].seq) if len(entries) > limit else None)

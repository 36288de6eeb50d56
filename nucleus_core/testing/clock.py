"""A clock that a test sets by hand, for the plugins that take a ``clock`` (token parsers, stores),
so expiry and timeouts are decided without waiting."""

from __future__ import annotations

import attrs


@attrs.define
class ManualClock:
    """Returns :attr:`now` (seconds) when called; a test moves time by assigning it."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

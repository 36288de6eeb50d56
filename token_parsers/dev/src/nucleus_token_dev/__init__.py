"""Development tokens ``dev:<oid>`` (for example ``dev:oid:acme:user:alice``).

Usable only on a ledger whose environment is explicitly ``development`` (``NUCLEUS_ENV=development``
or ``environment="development"``). A production ledger configured with this parser refuses to open.
"""

from __future__ import annotations

from .parser import DEV_PREFIX, DevTokenParser

__all__ = ["DEV_PREFIX", "DevTokenParser"]

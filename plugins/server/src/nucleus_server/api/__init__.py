"""The HTTP API, one module per area: :mod:`.service`, :mod:`.entries`, :mod:`.modules`,
:mod:`.acl`, :mod:`.transparency`, :mod:`.explorer`, :mod:`.stream`. Each declares its ``ENDPOINTS`` (route and
handler side by side); :data:`ENDPOINTS` here is all of them in table order, the single source of
the router and of ``/openapi.json``."""

from __future__ import annotations

from . import acl, entries, explorer, metrics, modules, service, stream, transparency
from .base import Api, Endpoint, Handler, filters_from_query

ENDPOINTS: tuple[Endpoint, ...] = (
    *service.ENDPOINTS, *transparency.ENDPOINTS, *stream.ENDPOINTS, *entries.ENDPOINTS, *modules.ENDPOINTS,
    *acl.ENDPOINTS, *explorer.ENDPOINTS, *metrics.ENDPOINTS,
)
"""Every route with its handler, in the order the router tries them (``/entries/stream`` before
``/entries/{hash}``)."""

__all__ = ["ENDPOINTS", "Api", "Endpoint", "Handler", "filters_from_query"]

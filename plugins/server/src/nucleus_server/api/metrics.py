"""``GET /metrics``: the served ledger's metrics in the Prometheus text format, from its metrics
observer (the ``metrics`` plugin, :class:`~nucleus_core.observe.MetricsExposition`)."""

from __future__ import annotations

from ..asgi import Request, Response
from ..errors import NotFoundError
from ..openapi import Route
from .base import Api, Endpoint


async def metrics(api: Api, request: Request) -> Response:
    if api.settings.metrics != "public":
        request.requester  # noqa: B018 - protected: like any route, an authenticated requester
    source = api.ledger.observers.exposition()
    if source is None:
        raise NotFoundError('this ledger has no metrics: enable the metrics plugin (plugins = ["metrics"])')
    accept = next((v.decode("latin-1") for k, v in request.scope.get("headers", ()) if k.lower() == b"accept"), None)
    body, content_type = await api.run(source.exposition, accept)
    return Response(status=200, body=body, content_type=content_type)


ENDPOINTS: tuple[Endpoint, ...] = (
    (
        Route(
            "GET", "/metrics", "metrics",
            "Prometheus metrics of this ledger (with the metrics plugin; needs a token unless [server] metrics = "
            '"public"; 404 without the plugin)',
            response="Metrics", media_type="text/plain",
        ),
        metrics,
    ),
)

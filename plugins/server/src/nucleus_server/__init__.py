"""Nucleus as an HTTP service: the ASGI app, ``nucleus serve`` and the ``RemoteLedger`` client.

``RemoteLedger`` lives in :mod:`nucleus_server.client` and needs the ``client`` extra (httpx):
``pip install "nucleus-server[client]"``.
"""

from __future__ import annotations

import logging

from .app import ROUTES, NucleusApp, ServerSettings, create_app
from .errors import MalformedRequestError, MethodNotAllowedError, NotFoundError, RequestTooLargeError

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "ROUTES",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "NotFoundError",
    "NucleusApp",
    "RequestTooLargeError",
    "ServerSettings",
    "__version__",
    "create_app",
]

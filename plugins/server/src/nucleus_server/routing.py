"""The router: which route a method and path name, with its path parameters.

Matching is on the raw (still percent-encoded) path, segment by segment: a literal segment matches
only itself, byte for byte (``/hea%6Cth`` is not ``/health``), and a ``{name}`` segment matches any
non-empty segment, whose percent-decoded value becomes the parameter (so ``%2F`` in a record id is
a ``/`` inside the parameter, never a separator; an escape that does not decode to UTF-8 is a 400,
a ``%`` not followed by two hex digits stays as it is). Routes are tried in table order. A path that
some route takes with another method is a 405 naming the methods in ``Allow``; any other path is a
404. There is no implicit ``HEAD`` or trailing-slash redirect: a route answers exactly its method
and path.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from nucleus_core.auth import redact_secrets

from .errors import MalformedRequestError, MethodNotAllowedError, NotFoundError
from .openapi import Route


class RouteMethodNotAllowedError(MethodNotAllowedError):
    """The path exists with other methods: ``allowed`` lists them (sorted) for the ``Allow`` header."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = sorted(set(allowed))
        super().__init__(f"this route takes {', '.join(self.allowed)}")


def _decode(part: str, name: str) -> str:
    try:
        return unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise MalformedRequestError("is not percent-encoded UTF-8", field=name) from None


class Router:
    """Matches requests against a route table (see the module docstring for the rules)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        self._table = [(route, route.segments()) for route in self.routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method`` and the raw ``path`` (a query string after ``?`` is ignored)
        and its decoded path parameters. Raises :class:`NotFoundError` (404),
        :class:`RouteMethodNotAllowedError` (405) or :class:`MalformedRequestError` (400, a path
        parameter that is not percent-encoded UTF-8)."""
        path = path.split("?", 1)[0]
        parts = path.split("/")[1:]
        allowed: list[str] = []
        for route, segments in self._table:
            if len(segments) != len(parts):
                continue
            params: dict[str, str] = {}
            for seg, part in zip(segments, parts, strict=True):
                if seg.startswith("{"):
                    value = _decode(part, seg[1:-1]) if "%" in part else part
                    if not value:
                        break
                    params[seg[1:-1]] = value
                elif seg != part:
                    break
            else:
                if route.method == method:
                    return route, params
                allowed.append(route.method)
        if allowed:
            raise RouteMethodNotAllowedError(allowed)
        raise NotFoundError(f"no route {redact_secrets(path[:200])!r}")

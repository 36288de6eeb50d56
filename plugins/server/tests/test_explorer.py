"""The explorer's static files (/explorer): served from the installed distribution without a token,
with their content types and security headers, no traversal, off with ``explorer = false``.
The page itself is tested in a headless Chromium by clients/typescript/test/explorer.test.ts."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from nucleus_server import ROUTES, ServerSettings
from nucleus_server.api import explorer
from nucleus_server.config import structure_config

from nucleus_core import Ledger
from nucleus_core.errors import ConfigurationError

BUILT = Path(__file__).resolve().parents[1] / "src" / "nucleus_server" / "explorer"
"""The committed bundle (clients/typescript: npm run build:explorer writes it)."""
ALICE = {"authorization": "Bearer dev:oid:test:user:alice"}
FILES = {
    "/explorer": ("index.html", "text/html; charset=utf-8"),
    "/explorer/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/explorer/style.css": ("style.css", "text/css; charset=utf-8"),
}


@pytest.fixture
def server(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> Any:
    return serve(open_ledger())


@pytest.mark.parametrize("path", sorted(FILES))
def test_files_served_without_a_token_with_their_type_and_headers(server: Any, path: str) -> None:
    name, content_type = FILES[path]
    response = httpx.get(f"{server.url}{path}")
    assert response.status_code == 200
    # The bytes of the installed distribution's package data (.ci/dist-tests runs this on its wheel).
    assert response.content == (BUILT / name).read_bytes()
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = {part.split()[0]: part.split()[1:] for part in response.headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    # A token sent anyway is authenticated as on any public path (a bad one is refused).
    assert httpx.get(f"{server.url}{path}", headers=ALICE).status_code == 200
    assert httpx.get(f"{server.url}{path}", headers={"authorization": "Bearer nope"}).status_code == 401


def test_the_page_loads_only_its_own_files_and_no_inline_script() -> None:
    page = (BUILT / "index.html").read_text(encoding="utf-8")
    assert '<script type="module" src="./explorer/app.js"></script>' in page
    assert page.count("<script") == 1
    assert "style=" not in page and "<style" not in page and "onclick" not in page.lower()
    assert len((BUILT / "app.js").read_bytes()) > 10_000  # the client bundled in


def _status(server: Any, path: str, headers: dict[str, str]) -> int:
    """The status of ``GET path`` sent byte for byte (an HTTP client would normalise ``..``)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "path",
    [
        "/explorer/..%2Fapp.py",
        "/explorer/%2E%2E/app.py",
        "/explorer/../explorer/app.js",
        "/explorer/app.js%2F",
        "/explorer%2Fapp.js",
        "/explorer/",
        "/explorer/index.html",
        "/explorer/other.js",
        "/explorer/app.js/x",
        "/Explorer",
    ],
)
def test_no_other_path_serves_a_file(server: Any, path: str) -> None:
    # With a token: 404, no route. Without: 401 as every path that is not public, or 404 where the
    # decoded path is a public one (the auth middleware compares the decoded path, the router the raw one).
    assert _status(server, path, ALICE) == 404
    assert _status(server, path, {}) == (404 if unquote(path) in explorer.PATHS else 401)


def test_only_get(server: Any) -> None:
    response = httpx.post(f"{server.url}/explorer/app.js", headers=ALICE)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"


def test_documented_in_openapi_as_public_with_media_types(server: Any) -> None:
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path, (_name, content_type) in FILES.items():
        operation = paths[path]["get"]
        assert operation["security"] == [{}]
        assert list(operation["responses"]["200"]["content"]) == [content_type]


def test_turned_off(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    server = serve(open_ledger(), ServerSettings(explorer=False))
    for path in FILES:
        assert httpx.get(f"{server.url}{path}").status_code == 401  # no longer public
        assert httpx.get(f"{server.url}{path}", headers=ALICE).status_code == 404
    documented = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert not [path for path in documented if path.startswith("/explorer")]
    assert {r.path for r in ROUTES if r.name in explorer.OPERATIONS} == set(FILES)


def test_config_key() -> None:
    assert structure_config({"server": {"explorer": False}}).server.settings().explorer is False
    assert structure_config({}).server.settings().explorer is True
    with pytest.raises(ConfigurationError, match="explorer"):
        structure_config({"server": {"explorer": "no"}})

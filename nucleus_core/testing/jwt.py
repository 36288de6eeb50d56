"""JWT test helpers for the token parsers' tests (needs pyjwt[crypto]): a key as a JWK, and a JWKS
endpoint on 127.0.0.1 that counts fetches and can be switched to failing, hanging, redirecting or
answering garbage."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def jwk_of(key: Any, kid: str, alg: str) -> dict[str, Any]:
    """The public half of ``key`` as a JWK with ``kid``, ``alg`` and ``use=sig``."""
    pub = key.public_key()
    to_jwk: dict[str, Any] = {"RS256": RSAAlgorithm.to_jwk, "ES256": ECAlgorithm.to_jwk, "EdDSA": OKPAlgorithm.to_jwk}
    data: dict[str, Any] = json.loads(to_jwk[alg](pub))
    data.update(kid=kid, alg=alg, use="sig")
    return data


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts fetches and can be switched to failing or hanging."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0
        self.mode = "ok"
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                if outer.mode == "down":
                    self.send_response(503)
                    self.end_headers()
                    return
                if outer.mode == "hang":
                    outer.release.wait(10)
                if outer.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.end_headers()
                    return
                body = b"not json" if outer.mode == "garbage" else json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

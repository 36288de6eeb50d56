"""Authentication cost, each figure a ratio against a baseline measured in the same run.

Run: python bench/bench_auth.py [--n 20000]

1. Registry: API key / session / dev / connect (static RS256 and EdDSA keys) authentication, against
   computing one HMAC-SHA256 (the unavoidable core of an API key check).
2. Middleware: a direct ASGI call through AuthMiddleware (inline and threaded) against the same
   call to the bare app.
3. SQL stores: service tokens (each jti recorded once) and API keys on a SQLite ledger (and on
   PostgreSQL with --postgres DSN), against the same tokens on a memory:// ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from nucleus_core import create_ledger
from nucleus_core.asgi import AuthMiddleware

PEPPER = "bench-pepper-0123456789abcdefghijklmnop"


def per_op(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(n // 10, 1000)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--postgres", metavar="DSN", help="also measure the stores on this PostgreSQL database")
    args = ap.parse_args()
    n = args.n
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    jwks = [
        {**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r", "alg": "RS256"},
        {**json.loads(OKPAlgorithm.to_jwk(ed_key.public_key())), "kid": "e", "alg": "EdDSA"},
    ]
    settings = {
        "auth.api_key": {"pepper": PEPPER},
        "auth.connect": {"issuer": "https://id", "audience": "a", "algorithms": ["RS256", "EdDSA"], "keys": jwks},
    }
    ledger = create_ledger(
        id="bench",
        storage="memory://",
        plugins=["auth.dev", "auth.api_key", "auth.session", "auth.connect"],
        settings=settings,
        environment="development",
    )
    key, _ = ledger.auth.parser("auth.api_key").create_key("oid:acme:user:a")
    session, _ = ledger.auth.parser("auth.session").create_session("oid:acme:user:a")
    now = int(time.time())
    claims = {"iss": "https://id", "aud": "a", "sub": "oid:acme:user:a", "iat": now, "exp": now + 3600}
    rs = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "r"})
    ed = jwt.encode(claims, ed_key, algorithm="EdDSA", headers={"kid": "e"})

    base = per_op(lambda: hmac.new(PEPPER.encode(), b"x" * 56, hashlib.sha256).hexdigest(), n)
    print(f"baseline HMAC-SHA256: {base * 1e6:.2f} us")
    for label, token, count in (
        ("dev", "dev:oid:acme:user:a", n),
        ("api_key (memory store)", key, n),
        ("session (memory store)", session, n),
        ("connect RS256", rs, n // 10),
        ("connect EdDSA", ed, n // 10),
    ):
        t = per_op(lambda token=token: ledger.auth.authenticate(token), count)
        print(f"{label:<24} {t * 1e6:8.2f} us  = {t / base:6.1f} x baseline")

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(_m: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "path": "/x",
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {key}".encode())],
        }

    async def loop(app: Any, count: int) -> float:
        t0 = time.perf_counter()
        for _ in range(count):
            await app(scope(), receive, send)
        return (time.perf_counter() - t0) / count

    inline = AuthMiddleware(bare, registry=ledger.auth, threaded=False)
    threaded = AuthMiddleware(bare, registry=ledger.auth, threaded=True)
    b = asyncio.run(loop(bare, n))
    i = asyncio.run(loop(inline, n))
    th = asyncio.run(loop(threaded, n // 4))
    print(f"bare ASGI app: {b * 1e6:.2f} us")
    print(f"AuthMiddleware inline   (api key) {i * 1e6:8.2f} us = {i / b:6.1f} x bare app")
    print(f"AuthMiddleware threaded (api key) {th * 1e6:8.2f} us = {th / b:6.1f} x bare app")
    ledger.close()
    sql_stores(n // 10, args.postgres)


def sql_stores(n: int, postgres: str | None) -> None:
    """Service tokens (a jti insert each) and API keys on SQL ledgers against a memory:// ledger."""
    ed_key = ed25519.Ed25519PrivateKey.generate()
    jwk = {**json.loads(OKPAlgorithm.to_jwk(ed_key.public_key())), "kid": "e"}
    settings = {
        "auth.api_key": {"pepper": PEPPER},
        "auth.service": {"services": {"svc": {"principal": "oid:acme:service:svc", "keys": {"e": jwk}}}},
    }
    now = int(time.time())

    def token() -> str:
        claims = {"iss": "svc", "sub": "svc", "aud": "bench", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, ed_key, algorithm="EdDSA", headers={"kid": "e", "typ": "nucleus-service+jwt"})

    def measure(storage: Any) -> tuple[float, float]:
        with create_ledger(
            id="bench", storage=storage, plugins=["auth.api_key", "auth.service"], settings=settings
        ) as ledger:
            tokens = iter([token() for _ in range(n + min(n // 10, 1000))])
            key, _ = ledger.auth.parser("auth.api_key").create_key("oid:acme:user:a")
            service = per_op(lambda: ledger.auth.authenticate(next(tokens)), n)
            api_key = per_op(lambda: ledger.auth.authenticate(key), n)
        return service, api_key

    with tempfile.TemporaryDirectory() as tmp:
        mem_service, mem_key = measure("memory://")
        print(f"service token, memory:// (jti in memory){mem_service * 1e6:8.2f} us = 1 x")
        print(f"api key, memory://                     {mem_key * 1e6:8.2f} us = 1 x")
        results = [("SQLite", *measure(f"sqlite:///{Path(tmp) / 'bench.db'}"))]
    if postgres:
        from nucleus_storage_postgres import postgres_storage

        from nucleus_core.testing.postgres import drop_schema

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            results.append(("PostgreSQL", *measure(postgres_storage(postgres, schema=schema))))
        finally:
            drop_schema(postgres, schema)
    for label, service, api_key in results:
        print(f"service token, {label:<10} (jti row) {service * 1e6:8.2f} us = {service / mem_service:5.1f} x memory")
        print(f"api key, {label:<10}               {api_key * 1e6:8.2f} us = {api_key / mem_key:5.1f} x memory")


if __name__ == "__main__":
    main()

"""No secret in any line ``nucleus serve`` writes: a real subprocess at log level debug, every kind
of credential (API key, session id, connect JWT, service JWT, dev token) sent in the Authorization
header, in the query string (``?access_token=``, another parameter, a bare name), in the path and in
other headers, valid and altered; then every byte the server wrote (stdout and stderr, access log
included) is searched for each secret and its secret parts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from nucleus_server.app import loggable_target

from nucleus_core import create_ledger
from nucleus_core.auth import redact_secrets

PEPPER = "pepper-" + "q" * 40
SESSION_SECRET = "session-" + "z" * 40
ALICE = "oid:test:user:alice"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def _toml_table(data: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in data.items()) + "}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect_token(**over: Any) -> str:
    now = int(time.time())
    claims = {"iss": "https://id.test", "aud": "logs", "sub": ALICE, "iat": now, "exp": now + 300, **over}
    return jwt.encode(claims, RSA_KEY, algorithm="RS256", headers={"kid": "rsa1"})


def service_token() -> str:
    now = int(time.time())
    claims = {"iss": "billing", "sub": "billing", "aud": "logs", "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, ED_KEY, algorithm="EdDSA", headers={"kid": "ed1", "typ": "nucleus-service+jwt"})


def test_no_secret_in_any_line_the_server_writes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    env.update(NUCLEUS_ENV="development", LOG_PEPPER=PEPPER, LOG_SESSION_SECRET=SESSION_SECRET)
    storage = f"sqlite:///{tmp_path / 'logs.db'}"
    # Credentials kept in the ledger's database are made before the server starts.
    os.environ.update(LOG_PEPPER=PEPPER)
    try:
        with create_ledger(
            id="logs",
            storage=storage,
            plugins=["auth.api_key", "auth.session"],
            settings={"auth.api_key": {"pepper_env": "LOG_PEPPER"}, "auth.session": {"secret": SESSION_SECRET}},
            environment="development",
        ) as ledger:
            api_key, _ = ledger.auth.parser("auth.api_key").create_key(ALICE, scopes=["read", "write"])
            session, _ = ledger.auth.parser("auth.session").create_session(ALICE)
    finally:
        del os.environ["LOG_PEPPER"]
    rsa_jwk = {**json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())), "kid": "rsa1", "alg": "RS256"}
    ed_jwk = json.loads(OKPAlgorithm.to_jwk(ED_KEY.public_key()))
    config = tmp_path / "serve.toml"
    config.write_text(
        f"""
[ledger]
id = "logs"
storage = "{storage}"

[plugins."auth.dev"]
[plugins."auth.api_key"]
pepper_env = "LOG_PEPPER"
[plugins."auth.session"]
secret_env = "LOG_SESSION_SECRET"
[plugins."auth.connect"]
issuer = "https://id.test"
audience = "logs"
algorithms = ["RS256"]
keys = [{_toml_table(rsa_jwk)}]
[plugins."auth.service"]
audience = "logs"
[plugins."auth.service".services.billing]
principal = "oid:test:service:billing"
algorithm = "EdDSA"
[plugins."auth.service".services.billing.keys]
ed1 = {_toml_table(ed_jwk)}
"""
    )
    port = _free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        command = [sys.executable, "-m", "nucleus_core", "serve", "--config", str(config), "--port", str(port)]
        proc = subprocess.Popen(
            [*command, "--log-level", "debug"],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, err.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        dev = "dev:oid:test:user:log-secret-check"
        secrets: dict[str, Any] = {
            "api_key": lambda: api_key,
            "session": lambda: session,
            "connect": lambda: connect_token(),
            "service": service_token,
            "dev": lambda: dev,
        }
        used: list[str] = []
        bodies: list[str] = []  # error bodies that could quote the request
        with httpx.Client(base_url=url, timeout=30) as http:
            for kind, mint in secrets.items():
                token = mint()
                used.append(token)
                whoami = http.get("/whoami", headers={"authorization": f"Bearer {token}"})
                assert whoami.status_code == 200, (kind, whoami.text)
                altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
                used.append(altered)
                refused = http.get("/whoami", headers={"authorization": f"Bearer {altered}"})
                assert refused.status_code == (200 if kind == "dev" else 401), (kind, refused.text)
                for target, params in (
                    ("/whoami", {"access_token": token}),
                    ("/entries", {"token": token}),
                    ("/entries", {"stream": "s", "key": altered}),
                ):
                    bodies.append(http.get(target, params=params, headers={"authorization": f"Bearer {dev}"}).text)
                for path in (f"/entries?{token}", f"/{token}/x", f"/records/{token}"):
                    bodies.append(http.get(path, headers={"authorization": f"Bearer {dev}"}).text)
                http.get(
                    "/ledger",
                    headers={"authorization": f"Basic {token}", "cookie": f"session={token}", "x-api-key": token},
                )
                http.post("/entries", content=f'{{"id": "{token}"', headers={"authorization": f"Bearer {dev}"})
            assert http.get("/whoami?access_token=x").status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    output = out.read_text() + err.read_text()
    needles = [PEPPER, SESSION_SECRET]
    for token in used:
        needles.append(token)
        if token.startswith("nuk_"):
            needles.append(token.split("_")[2])  # the key's secret part
        elif token.startswith("nss_"):
            needles.append(token[4:])
        elif token.count(".") == 2:
            needles.extend(part for part in token.split(".")[1:] if part)  # claims and signature
    leaked = [n[:12] + "..." for n in needles if n in output]
    assert not leaked, f"secrets in the server's output: {leaked}"
    # Error bodies that quote a path or a query name redact it too.
    assert not [n[:12] for n in needles for body in bodies if n in body]
    assert "nucleus_server.access" in output  # the access log ran, at debug level
    assert '"GET /whoami?access_token=… HTTP/1.1" 400' in output


def test_redact_secrets_and_the_access_log_target() -> None:
    jwt_like = connect_token()
    text = (
        f"Bearer abc.def nuk_AAAAAAAAAAAA_{'b' * 43}_cccccc nss_{'d' * 43} dev:oid:a:b:c {jwt_like} "
        "hash 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef oid:a:user:b"
    )
    redacted = redact_secrets(text)
    assert redacted.count("[redacted]") == 5
    assert "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" in redacted  # hashes stay
    assert "oid:a:user:b" in redacted  # principals are not secrets
    scope = {"path": "/entries", "query_string": f"stream=books&access_token={jwt_like}&{jwt_like}&limit=5".encode()}
    assert loggable_target(scope) == "/entries?stream=…&access_token=…&…&limit=…"
    assert loggable_target({"path": f"/records/{jwt_like}", "query_string": b""}) == "/records/[redacted]"

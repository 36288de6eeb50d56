"""``nucleus serve --log-format json`` as a real subprocess (two workers): every line it writes is a
JSON object; each request's access line carries its id (the client's when sane, else a new one,
always returned as ``X-Request-Id``), route template, status, duration and the requester's keyed
hash; a module's exception during an append is one line with its traceback and the request's id
(logged on the thread pool); no credential used in a request appears anywhere. The text format
keeps its lines."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from nucleus_server.cli import _configure_logging, apply_flags
from nucleus_server.config import ServeConfig, structure_config
from nucleus_server.logs import JsonFormatter, RequestLog, enter_request, leave_request, request_id_from

from nucleus_core import create_ledger
from nucleus_core.errors import ConfigurationError
from nucleus_core.requester_log import NOT_LOGGED, requester_policy, set_requester_policy
from nucleus_core.testing.jwt import jwk_of

ALICE = "oid:test:user:alice"
PEPPER = "pepper-" + "j" * 40
OLD_PEPPER = "pepper-" + "o" * 40
REQUESTER_KEY = "requester-key-" + "k" * 40
RECORD_ID = "private-record-4471"
ISSUER = "https://id.json-logs.test"
CONNECT_KEY = ed25519.Ed25519PrivateKey.generate()
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
GENERATED_ID = re.compile(r"[0-9a-f]{32}")

BOOM_PLUGIN = textwrap.dedent(
    """
    import logging

    from nucleus_core import Module, ModuleSpec, hookimpl
    from nucleus_core.auth import loggable_oid

    class Boom(Module):
        id = "boom"
        version = "1"
        streams = ("boom",)

        def after_append(self, entries, context):
            # A plugin naming the requester in a log line: as [server] log_requester allows.
            logging.getLogger("nucleus.module.boom").info("appended by %s", loggable_oid(context.oid))
            # The message quotes a credential from the payload: the traceback in the log must not.
            raise RuntimeError(f"boom after {len(entries)} entries, token {entries[0].record.payload['note']}")

    @hookimpl
    def nucleus_register_modules():
        return [ModuleSpec(id="boom", factory=lambda _ctx: Boom())]
    """
)


def _boom_distribution(site: Path) -> None:
    """The module plugin ``jsonlogs.boom`` installed as pip would leave it (dist-info, entry point)."""
    site.mkdir()
    (site / "jsonlogs_boom.py").write_text(BOOM_PLUGIN)
    info = site / "jsonlogs_boom-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jsonlogs-boom\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[nucleus]\njsonlogs.boom = jsonlogs_boom\n")


def _connect_jwt() -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "jsonlogs", "sub": ALICE, "iat": now, "exp": now + 300}
    return jwt.encode(claims, CONNECT_KEY, algorithm="EdDSA", headers={"kid": "ed-json"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``nucleus serve`` in a subprocess writing stdout and stderr to files."""

    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with self.out.open("w") as stdout, self.err.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nucleus_core", "serve", "--port", str(self.port), *args],
                cwd=tmp_path,
                env=env,
                stdout=stdout,
                stderr=stderr,
            )
        for _ in range(600):
            assert self.proc.poll() is None, self.err.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError("the server did not become ready")

    def stop(self) -> str:
        """Stop the server (SIGTERM, as a supervisor would) and return all it wrote."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0
        return self.out.read_text() + self.err.read_text()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUCLEUS_")}
    env.update(NUCLEUS_ENV="development", **extra)
    return env


@pytest.fixture
def json_server(tmp_path: Path) -> Any:
    storage = f"sqlite:///{tmp_path / 'json.db'}"
    keys = []
    for pepper in (OLD_PEPPER, PEPPER):  # a key of a pepper the server no longer has, then a good one
        settings = {"auth.api_key": {"pepper": pepper}}
        with create_ledger(id="jsonlogs", storage=storage, plugins=list(settings), settings=settings) as ledger:
            keys.append(ledger.auth.parser("auth.api_key").create_key(ALICE, scopes=["read", "write"])[0])
    _boom_distribution(tmp_path / "site")
    jwk = "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in jwk_of(CONNECT_KEY, "ed-json", "EdDSA").items()) + "}"
    config = tmp_path / "serve.toml"
    config.write_text(
        f"""
[ledger]
id = "jsonlogs"
storage = "{storage}"

[plugins."auth.dev"]
[plugins."auth.api_key"]
pepper_env = "JSONLOGS_PEPPER"
[plugins."auth.connect"]
issuer = "{ISSUER}"
audience = "jsonlogs"
algorithms = ["EdDSA"]
keys = [{jwk}]
[plugins."jsonlogs.boom"]

[server]
log_format = "json"
log_requester = "hash"
log_requester_key_env = "JSONLOGS_REQUESTER_KEY"
"""
    )
    env = _env(
        JSONLOGS_PEPPER=PEPPER,
        JSONLOGS_REQUESTER_KEY=REQUESTER_KEY,
        PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]),
    )
    server = Server(tmp_path, ["--config", str(config), "--log-level", "debug", "--workers", "2"], env)
    try:
        yield server, *keys
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(60)


def test_json_lines_with_request_ids_routes_durations_and_no_secret(json_server: Any) -> None:
    server, stale_key, api_key = json_server
    token = _connect_jwt()
    dev = "dev:oid:test:user:json-dev"
    answers: list[tuple[str, httpx.Response]] = []  # (what, response)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        key_auth = {"authorization": f"Bearer {api_key}"}
        answers.append(("valid id", http.get("/whoami", headers={**key_auth, "x-request-id": "proxy-7.a:b_c"})))
        for junk in ("has space", "a" * 129, "<script>", 'quo"te', "", "caf\u00e9"):
            headers = [("authorization", f"Bearer {api_key}"), ("x-request-id", junk.encode("utf-8"))]
            answers.append((f"junk {junk[:10]}", http.get(f"/records/{RECORD_ID}", headers=headers)))
        answers.append(("jwt", http.get("/whoami", headers={"authorization": f"Bearer {token}"})))
        answers.append(("dev", http.get("/whoami", headers={"authorization": f"Bearer {dev}"})))
        answers.append(("no token", http.get("/entries")))
        answers.append(("bad token", http.get(f"/records/{RECORD_ID}", headers={"authorization": "Bearer nuk_bad"})))
        answers.append(("stale key", http.get("/whoami", headers={"authorization": f"Bearer {stale_key}"})))
        answers.append(("no route", http.get(f"/nowhere/{RECORD_ID}", headers=key_auth)))
        boom = {"id": "b-1", "stream": "boom", "timestamp": 1, "payload": {"note": api_key}}
        answers.append(("boom", http.post("/entries", json=boom, headers={**key_auth, "x-request-id": "append-1"})))
    statuses = {what: r.status_code for what, r in answers}
    assert statuses["valid id"] == 200 and statuses["jwt"] == 200 and statuses["boom"] == 201, statuses
    assert statuses["no token"] == statuses["bad token"] == statuses["stale key"] == 401 and statuses["no route"] == 404
    ids = [r.headers.get("x-request-id") for _, r in answers]
    assert ids[0] == "proxy-7.a:b_c" and ids[-1] == "append-1"
    for (what, _), rid in zip(answers[1:-1], ids[1:-1], strict=True):
        assert rid is not None and GENERATED_ID.fullmatch(rid), (what, rid)  # junk is never echoed
    assert len(set(ids)) == len(ids)

    output = server.stop()
    lines = [json.loads(line) for line in output.splitlines()]  # every line parses
    for line in lines:
        assert TIMESTAMP.fullmatch(line["timestamp"]) and isinstance(line["pid"], int), line
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR") and line["logger"] and "message" in line
    access = {line["request_id"]: line for line in lines if line["logger"] == "nucleus_server.access"}
    assert len({line["pid"] for line in access.values()}) >= 1
    alice = hmac.new(REQUESTER_KEY.encode(), ALICE.encode(), hashlib.sha256).hexdigest()
    expected = [
        ("GET", "/whoami", 200, alice),
        *[("GET", "/records/{record_id}", 404, alice)] * 6,
        ("GET", "/whoami", 200, alice),
        ("GET", "/whoami", 200, hmac.new(REQUESTER_KEY.encode(), b"oid:test:user:json-dev", "sha256").hexdigest()),
        ("GET", "/entries", 401, None),
        ("GET", "/records/{record_id}", 401, None),
        ("GET", "/whoami", 401, None),
        ("GET", None, 404, alice),
        ("POST", "/entries", 201, alice),
    ]
    for rid, (method, route, status, requester) in zip(ids, expected, strict=True):
        line = access[rid]
        assert (line["method"], line["route"], line["status"], line["requester"]) == (method, route, status, requester)
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert line["message"] == f"{method} {route or '(no route)'} {status}"
    # The module's failure: one ERROR line, on the worker's thread pool, with the append's id.
    [failure] = [line for line in lines if line["level"] == "ERROR"]
    assert failure["request_id"] == "append-1" and failure["logger"] == "nucleus_core.modules"
    assert "after_append failed" in failure["message"]
    assert failure["exception"].startswith("Traceback") and "RuntimeError: boom after 1 entries" in failure["exception"]
    assert "token [redacted]" in failure["exception"]
    # A token parser's warning, logged on an authentication thread, with the request's id.
    [stale] = [line for line in lines if "no longer configured" in line["message"]]
    assert stale["level"] == "WARNING" and stale["logger"] == "nucleus_token_api_key.parser"
    assert stale["request_id"] == ids[[what for what, _ in answers].index("stale key")]
    # No credential, junk request id, raw record id or raw OID of an access line in the output.
    needles = [api_key, api_key.split("_")[2], stale_key, stale_key.split("_")[2], token, *token.split(".")[1:], dev]
    needles += [PEPPER, OLD_PEPPER, REQUESTER_KEY]
    needles += ["has space", "a" * 129, "<script>", 'quo"te', 'quo\\"te', "caf\u00e9", "caf\\u00e9", RECORD_ID]
    assert not [n[:12] for n in needles if n in output]
    assert not [line for line in access.values() if ALICE in json.dumps(line)]
    # A plugin's line naming the requester has its keyed hash (set in the worker from log_requester).
    [appended] = [line for line in lines if line["logger"] == "nucleus.module.boom"]
    assert appended["message"] == f"appended by oid-hmac:{alice}" and appended["request_id"] == "append-1"
    assert ALICE not in output


def test_text_format_keeps_its_lines_and_returns_request_ids(tmp_path: Path) -> None:
    server = Server(tmp_path, ["--dev", "--log-level", "info", "--workers", "1"], _env())
    sent = httpx.get(f"{server.url}/health", headers={"x-request-id": "text-1"})
    fresh = httpx.get(f"{server.url}/whoami", headers={"x-request-id": "bad id"})
    output = server.stop()
    assert sent.headers["x-request-id"] == "text-1"
    assert fresh.status_code == 401 and GENERATED_ID.fullmatch(fresh.headers["x-request-id"])
    assert re.search(r'^INFO nucleus_server\.access: 127\.0\.0\.1:\d+ - "GET /health HTTP/1\.1" 200$', output, re.M)
    assert re.search(r'^INFO nucleus_server\.access: 127\.0\.0\.1:\d+ - "GET /whoami HTTP/1\.1" 401$', output, re.M)
    assert "#  NUCLEUS DEVELOPMENT MODE" in output  # the banner, as before
    assert "text-1" not in output  # the text format is the same as before: no request id in it
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[-1])


def test_request_id_from_headers() -> None:
    assert request_id_from([(b"x-request-id", b"abc-1.2:3_4")]) == "abc-1.2:3_4"
    assert request_id_from([(b"X-Request-Id", b"A" * 128)]) == "A" * 128
    for junk in (b"A" * 129, b"", b"a b", b"a\r\nset-cookie: x", b"\xff", b"a/b", b"a=b"):
        rid = request_id_from([(b"x-request-id", junk)])
        assert GENERATED_ID.fullmatch(rid), junk
    first, second = request_id_from([]), request_id_from([(b"accept", b"*/*")])
    assert GENERATED_ID.fullmatch(first) and GENERATED_ID.fullmatch(second) and first != second
    # The first header counts: a second cannot override a generated id.
    assert GENERATED_ID.fullmatch(request_id_from([(b"x-request-id", b"bad id"), (b"x-request-id", b"ok")]))


def test_json_formatter_redacts_every_field_and_the_traceback() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("nucleus_server.test_json_logs")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    secret = "nuk_AAAAAAAAAAAA_" + "s" * 43 + "_cccccc"
    token = enter_request(RequestLog(request_id="r-1", method="GET"))
    try:
        try:
            raise ValueError(f"bad key {secret}\nsecond line")
        except ValueError:
            log.exception("failed for Bearer %s", secret)
        log.info("access", extra={"nucleus_request": {"request_id": "r-1", "route": f"/x/{secret}", "status": 200}})
    finally:
        leave_request(token)
    log.warning("outside")
    log.removeHandler(handler)
    failed, access, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "request_id" not in outside
    assert secret not in stream.getvalue() and "s" * 43 not in stream.getvalue()
    assert failed["message"] == "failed for [redacted]" and failed["request_id"] == "r-1"
    assert failed["exception"].endswith("ValueError: bad key [redacted]\nsecond line")
    assert access["route"] == "/x/[redacted]" and access["status"] == 200
    assert set(failed) == {"timestamp", "level", "logger", "message", "pid", "request_id", "exception"}


def test_log_settings_in_the_file_and_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    config = structure_config({"server": {"log_format": "json"}})
    assert config.server.log_format == "json" and config.server.settings().log_requester_key is None
    assert apply_flags(ServeConfig(), log_format="json").server.log_format == "json"
    assert apply_flags(config, log_format="text").server.log_format == "text"
    with pytest.raises(ConfigurationError, match=r"server\.log_format must be one of text, json"):
        structure_config({"server": {"log_format": "xml"}})
    with pytest.raises(ConfigurationError, match=r"server\.log_requester must be one of none, hash"):
        structure_config({"server": {"log_requester": "plain"}})
    monkeypatch.delenv("NUCLEUS_LOG_REQUESTER_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="NUCLEUS_LOG_REQUESTER_KEY"):
        structure_config({"server": {"log_requester": "hash"}})
    monkeypatch.setenv("NUCLEUS_LOG_REQUESTER_KEY", "short")
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        structure_config({"server": {"log_requester": "hash"}})
    monkeypatch.setenv("NUCLEUS_LOG_REQUESTER_KEY", REQUESTER_KEY)
    hashed = structure_config({"server": {"log_requester": "hash"}})
    assert hashed.server.settings().log_requester_key == REQUESTER_KEY.encode()
    assert REQUESTER_KEY not in repr(hashed.server.settings())


@pytest.fixture
def restore_logging() -> Any:
    """Undo what ``_configure_logging`` does to the process's loggers."""
    names = ("", "nucleus_core", "nucleus_server", "nucleus", "uvicorn")
    saved = {name: (logging.getLogger(name).level, list(logging.getLogger(name).handlers)) for name in names}
    yield
    for name, (level, handlers) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers
    logging.captureWarnings(False)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_package_logger_goes_through_the_handler(
    log_format: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """The plugin packages' loggers (nucleus_token_*, nucleus_storage_*) are formatted and redacted
    like the core's, at the configured level; other libraries' from WARNING up."""
    _configure_logging("info", log_format)
    secret = "nuk_AAAAAAAAAAAA_" + "t" * 43 + "_cccccc"
    logging.getLogger("nucleus_token_api_key.parser").warning("key %s refused", secret)
    logging.getLogger("nucleus_storage_sqlite.backend").info("the WAL was truncated")
    logging.getLogger("nucleus_storage_sql.backend").debug("below the level")
    logging.getLogger("httpx").info("another library's info")
    logging.getLogger("httpx").warning("another library's warning")
    err = capsys.readouterr().err
    assert secret not in err and "below the level" not in err and "another library's info" not in err
    lines = err.splitlines()
    if log_format == "text":
        assert lines == [
            "WARNING nucleus_token_api_key.parser: key [redacted] refused",
            "INFO nucleus_storage_sqlite.backend: the WAL was truncated",
            "WARNING httpx: another library's warning",
        ]
    else:
        assert [(d["level"], d["logger"], d["message"]) for d in map(json.loads, lines)] == [
            ("WARNING", "nucleus_token_api_key.parser", "key [redacted] refused"),
            ("INFO", "nucleus_storage_sqlite.backend", "the WAL was truncated"),
            ("WARNING", "httpx", "another library's warning"),
        ]


def test_without_log_requester_a_plugin_line_names_no_principal(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'none.db'}"
    settings = {"auth.api_key": {"pepper": PEPPER}}
    with create_ledger(id="jsonlogs", storage=storage, plugins=list(settings), settings=settings) as ledger:
        key = ledger.auth.parser("auth.api_key").create_key(ALICE, scopes=["read", "write"])[0]
    _boom_distribution(tmp_path / "site")
    config = tmp_path / "serve.toml"
    config.write_text(
        f'[ledger]\nid = "jsonlogs"\nstorage = "{storage}"\n[plugins."auth.api_key"]\npepper_env = "JSONLOGS_PEPPER"\n'
        '[plugins."jsonlogs.boom"]\n[server]\nlog_format = "json"\nworkers = 1\n'  # log_requester: "none"
    )
    site = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    env = _env(JSONLOGS_PEPPER=PEPPER, PYTHONPATH=site)
    server = Server(tmp_path, ["--config", str(config), "--log-level", "info"], env)
    try:
        boom = {"id": "b-1", "stream": "boom", "timestamp": 1, "payload": {}}
        auth = {"authorization": f"Bearer {key}"}
        response = httpx.post(f"{server.url}/entries", json=boom, headers=auth, timeout=30)
        assert response.status_code == 201
        output = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(60)
    lines = [json.loads(line) for line in output.splitlines()]
    [appended] = [line for line in lines if line["logger"] == "nucleus.module.boom"]
    assert appended["message"] == f"appended by {NOT_LOGGED}"
    assert ALICE not in output and "requester" not in {k for line in lines for k in line}


@pytest.fixture
def requester_log_policy() -> Any:
    """Put the process's requester policy back after the test."""
    yield
    set_requester_policy("none")


@pytest.mark.parametrize("policy", ["hash", "none"])
def test_api_key_lines_name_principals_only_as_the_policy_allows(
    tmp_path: Path, policy: str, requester_log_policy: None, caplog: pytest.LogCaptureFixture
) -> None:
    from click.testing import CliRunner

    from nucleus_core.cli import make_cli
    from nucleus_core.context import RequestContext

    admin = "oid:test:user:keymaster"
    set_requester_policy(policy, REQUESTER_KEY.encode() if policy == "hash" else None)
    assert requester_policy() == policy
    storage = f"sqlite:///{tmp_path / 'keys.db'}"
    settings = {"auth.api_key": {"pepper": PEPPER}}
    caplog.set_level(logging.INFO)
    with create_ledger(id="keys", storage=storage, plugins=list(settings), settings=settings) as ledger:
        parser = ledger.auth.parser("auth.api_key")
        ctx = RequestContext(oid=admin, source="test", scopes=frozenset({"keys"}))
        key, record = parser.create_key(ALICE, scopes=["read"], context=ctx)
        assert ledger.auth.authenticate(key).oid == ALICE
        assert parser.revoke_key(record.key_id, context=ctx)
    # The keys commands log their own lines (creator and principal).
    cleared = {k: None for k in os.environ if k.startswith("NUCLEUS_")}
    base = ["--ledger", storage, "--ledger-id", "keys", "--as", admin]
    env = {**cleared, "NUCLEUS_API_KEY_PEPPER": PEPPER}
    created = CliRunner().invoke(make_cli(), ["keys", "create", *base, "--principal", ALICE, "--json"], env=env)
    assert created.exit_code == 0, created.output
    key_id = json.loads(created.stdout)["key_id"]
    revoked = CliRunner().invoke(make_cli(), ["keys", "revoke", *base, key_id], env=env)
    assert revoked.exit_code == 0, revoked.output
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.name.startswith("nucleus_token_api_key")]
    text = "\n".join(line["message"] for line in lines)
    assert len([m for m in text.splitlines() if "API key" in m]) == 6, text
    assert ALICE not in text and admin not in text
    if policy == "hash":
        alice = hmac.new(REQUESTER_KEY.encode(), ALICE.encode(), hashlib.sha256).hexdigest()
        by = hmac.new(REQUESTER_KEY.encode(), admin.encode(), hashlib.sha256).hexdigest()
        assert f"for oid-hmac:{alice} created by oid-hmac:{by}" in text
        assert f"revoked by oid-hmac:{by}" in text
    else:
        assert NOT_LOGGED in text and "oid-hmac:" not in text

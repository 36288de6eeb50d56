"""``GET /metrics`` of a real ``nucleus serve`` (a subprocess on loopback), scraped over HTTP and
parsed with prometheus_client's text parser: counts after known operations, the three ``[server]
metrics`` modes, and what labels must never hold."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .conftest import ROOT_TOKEN, Served, parse, value, write_config

ALICE = "dev:oid:acmecorp:user:alicia-q7"
EVE = "dev:oid:acmecorp:user:mallory-k3"
BAD_TOKEN = "dev:not-an-oid-s3cr3t-Tz9q"
L = {"ledger": "observed"}


def record(rid: str, secret: str = "payload-text") -> dict[str, object]:
    return {"id": rid, "stream": "books", "timestamp": 1, "payload": {"note": secret}}


def test_counts_after_known_operations_and_no_private_strings(tmp_path: Path, serve: Callable[..., Served]) -> None:
    db = tmp_path / "ledger.db"
    config = write_config(tmp_path, checkpoints=True, storage=f"sqlite:///{db}?busy_timeout=0.2")
    served = serve(config)
    with served.client() as root, served.client(ALICE) as alice, served.client(EVE) as eve, \
            served.client(BAD_TOKEN) as bad, served.client(None) as anonymous:
        assert anonymous.get("/metrics").status_code == 401  # protected, the default
        for i in range(3):
            assert root.post("/entries", json=record(f"rec-one-{i}", "Confidential-Alpha")).status_code == 201
        batch = {"records": [record(f"rec-batch-{i}", "Confidential-Beta") for i in range(5)]}
        assert root.post("/entries/batch", json=batch).status_code == 201
        assert alice.get("/records/rec-one-0").status_code == 404  # exists, hidden from alice: a denial
        assert eve.post("/entries", json=record("rec-eve")).status_code == 403  # eve may not write
        assert bad.get("/ledger").status_code == 401
        assert root.get("/verify").json()["ok"] is True
        # A system record (an access-control grant): counted apart from the user appends.
        grant = {"resource_kind": "stream:books", "resource_id": "*", "principal_oid": "oid:acmecorp:user:alicia-q7",
                 "scope": "read"}
        assert root.post("/acl/grant", json={"grants": [grant]}).status_code == 201
        assert root.get("/records/rec-one-1").status_code == 200
        # A storage error: another connection holds the SQLite write lock past the busy timeout.
        lock = sqlite3.connect(db, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            assert root.post("/entries", json=record("rec-locked")).status_code == 409
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        length = root.get("/ledger").json()["length"]  # the records and the ledger's own (_ledger, _acl)
        scrape = root.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = scrape.text
    samples = parse(text)

    assert value(samples, "nucleus_appends_total", outcome="ok", **L) == 4
    assert value(samples, "nucleus_appended_records_total", **L) == 8
    assert value(samples, "nucleus_append_batch_size_count", **L) == 4
    assert value(samples, "nucleus_append_batch_size_sum", **L) == 8
    assert value(samples, "nucleus_append_batch_size_bucket", le="1.0", **L) == 3
    assert value(samples, "nucleus_append_batch_size_bucket", le="5.0", **L) == 4
    assert value(samples, "nucleus_append_duration_seconds_count", **L) == 4
    assert value(samples, "nucleus_group_commit_calls_count", **L) == 4
    assert value(samples, "nucleus_group_commit_records_sum", **L) == 8
    assert value(samples, "nucleus_appends_total", outcome="conflict", **L) == 1
    assert value(samples, "nucleus_storage_errors_total", operation="append", kind="conflict", **L) == 1
    assert value(samples, "nucleus_access_denials_total", operation="read", **L) == 1
    assert value(samples, "nucleus_access_denials_total", operation="append", **L) == 1
    assert value(samples, "nucleus_appends_total", outcome="access_denied", **L) == 1
    assert value(samples, "nucleus_authentications_total", parser="auth.dev", outcome="invalid", **L) == 1
    assert value(samples, "nucleus_authentications_total", parser="auth.dev", outcome="ok", **L) >= 8
    # The run on open (before the plugin's observer existed) and GET /verify.
    assert value(samples, "nucleus_verifications_total", outcome="ok", **L) == 2
    assert value(samples, "nucleus_verification_duration_seconds_count", **L) == 2
    assert value(samples, "nucleus_system_appends_total", outcome="ok", **L) == 1
    assert value(samples, "nucleus_system_appended_records_total", **L) == 1
    assert value(samples, "nucleus_checkpoints_issued_total", **L) >= 4  # interval 0: one per commit at least
    assert value(samples, "nucleus_checkpoint_size", **L) == length
    assert value(samples, "nucleus_ledgers_open") == 1
    http = {"ledger": "observed", "method": "POST", "route": "/entries"}
    assert value(samples, "nucleus_http_requests_total", status="201", **http) == 3
    assert value(samples, "nucleus_http_requests_total", status="403", **http) == 1
    assert value(samples, "nucleus_http_requests_total", status="409", **http) == 1
    get = {"ledger": "observed", "method": "GET", "route": "/records/{record_id}"}
    assert value(samples, "nucleus_http_requests_total", status="404", **get) == 1
    assert value(samples, "nucleus_http_requests_total", status="200", **get) == 1
    refused = {"ledger": "observed", "method": "GET", "status": "401"}  # by the auth middleware, counted too
    assert value(samples, "nucleus_http_requests_total", route="/ledger", **refused) == 1
    assert value(samples, "nucleus_http_requests_total", route="/metrics", **refused) == 1

    # Never record content, record ids, principals, tokens or raw paths.
    for private in (
        "Confidential", "payload-text", "rec-one", "rec-batch", "rec-eve", "rec-locked", "books", "acmecorp",
        "alicia-q7", "mallory-k3", "rootadm-r5", "oid:", "s3cr3t", "Tz9q", "dev:", "not-an-oid",
    ):
        assert private not in text, private


def test_public_mode_needs_no_token_and_off_serves_nothing(tmp_path: Path, serve: Callable[..., Served]) -> None:
    public = serve(write_config(tmp_path, server='metrics = "public"'))
    with public.client(None) as anonymous:
        response = anonymous.get("/metrics")
        assert response.status_code == 200
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert {"nucleus_appends", "nucleus_http_requests", "nucleus_ledgers_open"} <= names
        doc = anonymous.get("/openapi.json").json()
        assert set(doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}
    public.stop()

    off = serve(write_config(tmp_path, server='metrics = "off"'))
    with off.client(ROOT_TOKEN) as root:
        assert root.get("/metrics").status_code == 404
        assert "/metrics" not in root.get("/openapi.json").json()["paths"]


def test_without_the_plugin_metrics_answer_404(tmp_path: Path, serve: Callable[..., Served]) -> None:
    served = serve(write_config(tmp_path, plugins=()))
    with served.client(ROOT_TOKEN) as root:
        response = root.get("/metrics")
    assert response.status_code == 404
    assert "enable the metrics plugin" in response.json()["error"]["message"]


def test_openmetrics_when_the_scraper_asks(tmp_path: Path, serve: Callable[..., Served]) -> None:
    served = serve(write_config(tmp_path))
    with served.client(ROOT_TOKEN) as root:
        response = root.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")

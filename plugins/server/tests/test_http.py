"""The HTTP surface with a plain HTTP client: auth failures, limits, error shapes, routing, OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from nucleus_server import ROUTES, ServerSettings

from nucleus_core import Ledger

ALICE = "oid:test:user:alice"
ROOT = "oid:test:user:root"
RECORD = {"id": "r-1", "stream": "notes", "timestamp": 1, "payload": {"n": 1}}


def auth(oid: str = ALICE) -> dict[str, str]:
    return {"authorization": f"Bearer dev:{oid}"}


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert set(doc) == {"error"} and {"code", "message"} <= set(doc["error"])
    return dict(doc["error"])


@pytest.fixture
def served(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> Any:
    settings = ServerSettings(max_body_bytes=64 * 1024, max_batch_records=10, realm="books")
    return serve(open_ledger("ual", "proof", "token", admins=[ROOT]), settings)


@pytest.fixture
def client(served: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url) as http:
        yield http


def test_no_token_is_401_with_bearer_challenge(client: httpx.Client) -> None:
    response = client.get("/ledger")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="books"'
    assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "header",
    ["Bearer dev:oid:", "Bearer dev:oid:a:b", "Bearer nope", "Bearer dev:oid:test:user:alic\u0435".encode()],
)
def test_invalid_token_is_401_invalid_token(client: httpx.Client, header: Any) -> None:
    response = client.get("/ledger", headers={"authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="books", error="invalid_token"'
    assert error_of(response)["code"] == "invalid_token"
    assert "dev:" not in response.text  # the token is never echoed


def test_denied_is_403_insufficient_scope(client: httpx.Client) -> None:
    response = client.post("/entries", json=RECORD, headers=auth())
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer realm="books", error="insufficient_scope"'
    assert error_of(response)["code"] == "access_denied"
    assert client.get("/ledger", headers=auth()).json()["length"] == 1  # only the _ledger record of its plugins


def test_token_in_query_string_refused(client: httpx.Client) -> None:
    response = client.get("/ledger", params={"access_token": f"dev:{ALICE}"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_request"


def test_oversized_authorization_header_refused(client: httpx.Client) -> None:
    response = client.get("/ledger", headers={"authorization": "Bearer " + "a" * 9000})
    assert response.status_code == 431
    assert error_of(response)["code"] == "request_too_large"


@pytest.mark.parametrize("path", ["/health/", "//health", "/HEALTH", "/health%3F/x", "/healthz-admin"])
def test_public_paths_are_exact(client: httpx.Client, path: str) -> None:
    assert client.get("/health").status_code == 200
    assert client.get(path).status_code == 401


def test_health_and_openapi_are_public(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/openapi.json").json()["openapi"] == "3.1.0"
    # A bad token on a public path is still refused.
    assert client.get("/health", headers={"authorization": "Bearer junk"}).status_code == 401


def test_oversized_body_413_from_content_length(client: httpx.Client) -> None:
    big = {**RECORD, "payload": {"blob": "x" * 70_000}}
    response = client.post("/entries", json=big, headers=auth(ROOT))
    assert response.status_code == 413
    assert error_of(response) == {
        "code": "request_too_large",
        "message": "body: the body is larger than this server's 65536 bytes",
        "field": "body",
    }
    assert client.get("/ledger", headers=auth(ROOT)).json()["length"] == 1  # only the _ledger record


def test_oversized_chunked_body_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 8192

    response = client.post("/entries", content=chunks(), headers=auth(ROOT))
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


def test_batch_over_limit_413_and_nothing_written(client: httpx.Client) -> None:
    records = [{**RECORD, "id": f"r-{i}"} for i in range(11)]
    response = client.post("/entries/batch", json={"records": records}, headers=auth(ROOT))
    assert response.status_code == 413
    assert error_of(response)["field"] == "records"
    ok = client.post("/entries/batch", json={"records": records[:10]}, headers=auth(ROOT))
    assert ok.status_code == 201 and len(ok.json()["entries"]) == 10


def test_record_too_large_for_ledger_413(open_ledger: Callable[..., Ledger], serve: Callable[..., Any]) -> None:
    server = serve(open_ledger(max_record_bytes=1024))
    big = {**RECORD, "payload": {"blob": "x" * 2000}}
    response = httpx.post(f"{server.url}/entries", json=big, headers=auth())
    assert response.status_code == 413
    assert error_of(response)["code"] == "record_too_large"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 400, "malformed_request"),
        (b"{not json", 400, "malformed_request"),
        (b"\xff\xfe", 400, "malformed_request"),
        (b'{"id":"a","id":"b","stream":"s","timestamp":1,"payload":{}}', 400, "malformed_request"),
        (b'{"id":"a","stream":"s","timestamp":1,"payload":{"x":NaN}}', 400, "malformed_request"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "request_too_large"),
        (b"[" * 20_000 + b"]" * 20_000, 400, "malformed_request"),
        (b'{"id":"a","stream":"s","timestamp":1,"payload":{},"extra":1}', 422, "invalid_record"),
        (b'{"id":"a","stream":"s","timestamp":1,"payload":{"n":9007199254740992}}', 422, "invalid_record"),
        (b'{"id":"","stream":"s","timestamp":1,"payload":{}}', 422, "invalid_record"),
        (b'{"id":"a","stream":"_acl","timestamp":1,"payload":{}}', 422, "invalid_record"),
        (b'{"id":"a","stream":"s","timestamp":1,"payload":{"s":"\\ud800"}}', 422, "invalid_record"),
    ],
)
def test_bad_bodies(client: httpx.Client, body: bytes, status: int, code: str) -> None:
    response = client.post("/entries", content=body, headers=auth(ROOT))
    assert (response.status_code, error_of(response)["code"]) == (status, code)
    assert client.get("/ledger", headers=auth(ROOT)).json()["length"] == 1  # only the _ledger record


def test_invalid_record_names_the_field(client: httpx.Client) -> None:
    response = client.post("/entries", json={**RECORD, "timestamp": "now"}, headers=auth(ROOT))
    assert response.status_code == 422
    assert error_of(response)["field"] == "timestamp"
    batch = {"records": [RECORD, {**RECORD, "id": "r-2", "stream": "Bad Stream"}]}
    response = client.post("/entries/batch", json=batch, headers=auth(ROOT))
    assert response.status_code == 422
    assert error_of(response)["field"] == "records[1]"
    assert "stream" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("since=-1", "since"),
        ("cursor=zz", "cursor"),
        ("stream=BAD", "stream"),
        ("order=seq", "query"),
        ("limit=1&limit=2", "limit"),
    ],
)
def test_bad_query_parameters(client: httpx.Client, query: str, field: str) -> None:
    response = client.get(f"/entries?{query}", headers=auth(ROOT))
    assert response.status_code == 422
    assert error_of(response) | {"field": field} == error_of(response)
    assert error_of(response)["code"] == "invalid_query"


def test_query_values_are_literals(client: httpx.Client) -> None:
    client.post("/entries", json=RECORD, headers=auth(ROOT))
    for value in ["' OR 1=1 --", "%", "_", "r-%"]:
        response = client.get("/entries", params={"record_id": value}, headers=auth(ROOT))
        assert response.status_code == 200 and response.json()["entries"] == []


def test_unknown_route_and_method(client: httpx.Client) -> None:
    response = client.get("/nope", headers=auth())
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    response = client.delete("/entries", headers=auth())
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
    response = client.get(f"/entries/{'0' * 64}", headers=auth())
    assert response.status_code == 404
    response = client.get("/entries/not-a-hash", headers=auth())
    assert response.status_code == 422 and error_of(response)["field"] == "hash"
    response = client.head("/health")
    assert response.status_code == 405 and response.headers["allow"] == "GET"


def test_path_parameter_not_utf8_is_400(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    """A percent-escape that does not decode to UTF-8 is the client's mistake: 400, nothing logged
    as a server error."""
    with caplog.at_level("ERROR", logger="nucleus_server"):
        response = client.get("/records/%FF", headers=auth())
    assert response.status_code == 400
    assert error_of(response) == {
        "code": "malformed_request",
        "message": "record_id: is not percent-encoded UTF-8",
        "field": "record_id",
    }
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_openapi_documents_every_route(client: httpx.Client, served: Any) -> None:
    doc = client.get("/openapi.json").json()
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    # The static routes, and one per handle operation of the served ledger's modules.
    assert documented == {(r.method, r.path) for r in served.app.routes}
    assert {(r.method, r.path) for r in ROUTES} < documented
    assert {("GET", "/modules/proof/status"), ("GET", "/modules/token/balance")} <= documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["operationId"] and op["summary"] and "401" in op["responses"]
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path
            text = json.dumps(op)
            for ref in [p.split('"')[0] for p in text.split("#/components/schemas/")[1:]]:
                assert ref in doc["components"]["schemas"], ref
            # Every documented operation is served: never "no route" or "method not allowed".
            concrete = path.replace("{hash}", "0" * 64).replace("{record_id}", "x").replace("{module_id}", "m")
            if "text/event-stream" in op["responses"].get("200", {}).get("content", {}):  # never ends: its start only
                with client.stream(method.upper(), concrete, headers=auth(ROOT)) as stream:
                    assert stream.status_code == 200, (method, path)
                    assert stream.headers["content-type"].startswith("text/event-stream")
                continue
            response = client.request(method.upper(), concrete, headers=auth(ROOT), content=b"{}")
            assert response.status_code not in (405,), (method, path)
            if op["operationId"].startswith("handle."):
                # Without its required arguments a handle route names the first missing one.
                required = [p["name"] for p in op.get("parameters", []) if p["required"]]
                assert response.status_code == (422 if required else 200), (path, response.text)
                if required:
                    assert error_of(response)["field"] == required[0]
            if response.status_code == 404:
                assert "no route" not in error_of(response)["message"], (method, path)


def test_every_error_is_json(client: httpx.Client) -> None:
    responses = [
        client.get("/ledger"),
        client.get("/ledger", headers={"authorization": "Bearer x y"}),
        client.post("/entries", content=b"{", headers=auth()),
        client.get("/entries?limit=0", headers=auth()),
        client.put("/health"),
    ]
    for response in responses:
        assert response.status_code >= 400
        error_of(response)

"""The router on its own (``nucleus_server.routing.Router``), without a server or a ledger."""

from __future__ import annotations

import pytest
from nucleus_server import ROUTES
from nucleus_server.errors import MalformedRequestError, NotFoundError, status_for
from nucleus_server.openapi import Route
from nucleus_server.routing import RouteMethodNotAllowedError, Router

ROUTER = Router(ROUTES)


def names(method: str, path: str) -> tuple[str, dict[str, str]]:
    route, params = ROUTER.match(method, path)
    return route.name, params


def test_literal_routes() -> None:
    assert names("GET", "/health") == ("health", {})
    assert names("GET", "/openapi.json") == ("openapi", {})
    assert names("POST", "/entries") == ("append", {})
    assert names("GET", "/entries") == ("query", {})
    assert names("POST", "/acl/check") == ("acl_check", {})


def test_path_parameters() -> None:
    assert names("GET", "/records/r-1") == ("get_by_id", {"record_id": "r-1"})
    assert names("GET", "/modules/asset") == ("module", {"module_id": "asset"})
    assert names("GET", f"/entries/{'a' * 64}") == ("get", {"hash": "a" * 64})


def test_path_parameters_are_percent_decoded_once() -> None:
    # %2F is a slash inside the parameter, never a separator; %25 is a literal percent sign.
    assert names("GET", "/records/a%2Fb") == ("get_by_id", {"record_id": "a/b"})
    assert names("GET", "/records/r%20%C3%A9") == ("get_by_id", {"record_id": "r é"})
    assert names("GET", "/records/100%2541") == ("get_by_id", {"record_id": "100%41"})
    # A "%" without two hex digits after it is not an escape and stays.
    assert names("GET", "/records/50%zz") == ("get_by_id", {"record_id": "50%zz"})


@pytest.mark.parametrize("segment", ["%FF", "%C3", "a%80b", "%ED%A0%80"])
def test_escape_that_is_not_utf8_is_a_malformed_request(segment: str) -> None:
    with pytest.raises(MalformedRequestError) as info:
        ROUTER.match("GET", f"/records/{segment}")
    assert info.value.field == "record_id"
    assert status_for(info.value) == 400


def test_literal_segments_match_the_raw_path_exactly() -> None:
    for path in ["/hea%6Cth", "/HEALTH", "/health/", "//health", "/health/x", "/", ""]:
        with pytest.raises(NotFoundError):
            ROUTER.match("GET", path)


def test_empty_parameter_is_not_a_match() -> None:
    with pytest.raises(NotFoundError):
        ROUTER.match("GET", "/records/")
    with pytest.raises(NotFoundError):
        ROUTER.match("GET", "/records//x")


def test_query_string_is_not_part_of_the_path() -> None:
    assert names("GET", "/entries?stream=a") == ("query", {})
    assert names("GET", "/records/r-1?x=%FF") == ("get_by_id", {"record_id": "r-1"})


def test_unknown_path_is_404_and_names_it_redacted() -> None:
    with pytest.raises(NotFoundError) as info:
        ROUTER.match("GET", "/nope")
    assert str(info.value) == "no route '/nope'"
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    with pytest.raises(NotFoundError) as info:
        ROUTER.match("GET", f"/x/{token}")
    assert token not in str(info.value)


def test_known_path_with_another_method_is_405_with_every_allowed_method() -> None:
    with pytest.raises(RouteMethodNotAllowedError) as info:
        ROUTER.match("DELETE", "/entries")
    assert info.value.allowed == ["GET", "POST"]
    assert status_for(info.value) == 405
    assert str(info.value) == "this route takes GET, POST"
    with pytest.raises(RouteMethodNotAllowedError) as info:
        ROUTER.match("PUT", "/acl/grant")
    assert info.value.allowed == ["POST"]


def test_head_and_options_are_not_implicit() -> None:
    for method in ("HEAD", "OPTIONS"):
        with pytest.raises(RouteMethodNotAllowedError) as info:
            ROUTER.match(method, "/health")
        assert info.value.allowed == ["GET"]


def test_first_route_in_table_order_wins() -> None:
    # /entries/batch is a literal POST route and also fits GET /entries/{hash}.
    assert names("POST", "/entries/batch") == ("append_batch", {})
    assert names("GET", "/entries/batch") == ("get", {"hash": "batch"})
    with pytest.raises(RouteMethodNotAllowedError) as info:
        ROUTER.match("DELETE", "/entries/batch")
    assert info.value.allowed == ["GET", "POST"]


def test_a_table_of_its_own() -> None:
    router = Router(
        [
            Route("GET", "/a/{x}/b/{y}", "ab", "two parameters"),
            Route("PUT", "/a/{x}/b/{y}", "ab_put", "same path, another method"),
            Route("GET", "/a/{x}/b/{y}", "shadowed", "never reached: the first GET wins"),
        ]
    )
    route, params = router.match("GET", "/a/1/b/two%2F2")
    assert (route.name, params) == ("ab", {"x": "1", "y": "two/2"})
    assert router.match("PUT", "/a/1/b/2")[0].name == "ab_put"
    with pytest.raises(RouteMethodNotAllowedError) as info:
        router.match("POST", "/a/1/b/2")
    assert info.value.allowed == ["GET", "PUT"]
    with pytest.raises(NotFoundError):
        router.match("GET", "/a/1/b")
    assert Router([]).routes == ()
    with pytest.raises(NotFoundError):
        Router([]).match("GET", "/")

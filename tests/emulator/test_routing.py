"""Route selection without sockets: WebSocket RouteSelectionExpression and HTTP API matching."""

import pytest

from apigw_local.gateway.routing import HttpRouter, RouteSelectionError, WebSocketRouter, body_path
from apigw_local.model import HttpRoute, WebSocketApi, WebSocketRoute


def ws_api(keys, expression="$request.body.action"):
    routes = {k: WebSocketRoute(route_key=k, function=f"F{k}") for k in keys}
    return WebSocketApi("Api", "api", "abcdefghij", expression, routes, "dev")


def test_custom_route_selected_by_action():
    router = WebSocketRouter(ws_api(["$default", "send", "join"]))
    assert router.select('{"action": "send", "text": "hi"}').route_key == "send"
    assert router.select('{"action": "join"}').route.function == "Fjoin"


@pytest.mark.parametrize("body", ["not json", '{"action": "nope"}', '{"other": 1}', "[1,2]",
                                  '{"action": {"nested": 1}}', ""])
def test_unmatched_bodies_fall_back_to_default(body):
    router = WebSocketRouter(ws_api(["$default", "send"]))
    assert router.select(body).route_key == "$default"


def test_no_default_means_no_route():
    router = WebSocketRouter(ws_api(["send"]))
    assert router.select('{"action": "other"}').route is None


def test_lifecycle_keys_cannot_be_selected_by_a_message():
    router = WebSocketRouter(ws_api(["$default", "$connect", "$disconnect"]))
    assert router.select('{"action": "$connect"}').route_key == "$default"


def test_nested_expression_paths():
    router = WebSocketRouter(ws_api(["$default", "x"], "$request.body.meta.kind"))
    assert router.select('{"meta": {"kind": "x"}}').route_key == "x"
    assert router.select('{"meta": "x"}').route_key == "$default"


def test_expression_forms():
    assert body_path("$request.body.action") == ("action",)
    assert body_path("${request.body.a.b}") == ("a", "b")
    with pytest.raises(RouteSelectionError):
        body_path("$context.routeKey")


def http_router(*specs):
    return HttpRouter(HttpRoute(m, p, f"F{i}", "Api") for i, (m, p) in enumerate(specs))


def test_http_most_specific_route_wins():
    router = http_router(("ANY", "/{proxy+}"), ("GET", "/items/{id}"), ("GET", "/items/special"),
                         ("POST", "/items/{id}/verify"))
    assert router.match("GET", "/items/special").route_key == "GET /items/special"
    m = router.match("GET", "/items/42")
    assert (m.route_key, m.path_parameters) == ("GET /items/{id}", {"id": "42"})
    m = router.match("POST", "/items/a%20b/verify")
    assert m.path_parameters == {"id": "a b"}
    m = router.match("DELETE", "/items/42")
    assert m.route_key == "ANY /{proxy+}" and m.path_parameters == {"proxy": "items/42"}


def test_http_method_beats_any_and_default_catches_rest():
    router = http_router(("ANY", "/x"), ("GET", "/x"), ("ANY", "$default"))
    assert router.match("GET", "/x").route_key == "GET /x"
    assert router.match("PUT", "/x").route_key == "ANY /x"
    assert router.match("GET", "/elsewhere").route_key == "$default"


def test_http_no_match_is_none():
    router = http_router(("GET", "/a/{b}"))
    assert router.match("GET", "/a") is None
    assert router.match("GET", "/a/b/c") is None
    assert router.match("POST", "/a/b") is None
    assert router.allowed_methods("/a/b") == {"GET"}

from apigw_local.gateway import authorizers
from apigw_local.gateway.events import HandshakeRequest
from apigw_local.gateway.invocation import FunctionError, Invocation
from apigw_local.model import Authorizer

AUTH = Authorizer("A", "a", "AuthFn", ("route.request.querystring.token",
                                       "route.request.header.X-Key"))


def hs(query="", headers=()):
    return HandshakeRequest("/dev", query, tuple(headers), "127.0.0.1")


def inv(payload=None, error=None):
    return Invocation("AuthFn", "r", 1.0, payload=payload, error=error)


def policy(effect, **extra):
    return {"principalId": "u1", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": effect, "Resource": "*"}]}, **extra}


def test_identity_sources_must_all_be_present():
    assert not authorizers.identity_present(AUTH, hs("token=t"))
    assert not authorizers.identity_present(AUTH, hs("token=", [("x-key", "k")]))
    assert authorizers.identity_present(AUTH, hs("token=t", [("x-key", "k")]))


def test_allow_passes_principal_and_context():
    d = authorizers.decide(inv(policy("Allow", context={"role": "admin", "n": 1})))
    assert d.allowed and d.context == {"principalId": "u1", "role": "admin", "n": 1}


def test_deny_is_403_and_errors_are_500_or_401():
    assert authorizers.decide(inv(policy("Deny"))).status == 403
    assert authorizers.decide(inv({"nonsense": 1})).status == 500
    assert authorizers.decide(inv(error=FunctionError("ValueError", "x"))).status == 500
    assert authorizers.decide(inv(error=FunctionError("Exception", "Unauthorized"))).status == 401


def test_request_event_shape():
    from apigw_local.gateway import events
    from apigw_local.gateway.events import ConnectionInfo

    info = ConnectionInfo("AbCdEfGhIjKlMnO=", "abcdefghij", "dev", "localhost:3001",
                          "127.0.0.1", "ua", 0)
    h = hs("token=t", [("Host", "localhost:3001")])
    connect = events.websocket_connect(info, h, request_id="r", epoch_ms=0)
    e = authorizers.request_event(AUTH, connect, h, region="us-east-1", account_id="1")
    assert e["type"] == "REQUEST"
    assert e["methodArn"] == "arn:aws:execute-api:us-east-1:1:abcdefghij/dev/$connect"
    assert e["queryStringParameters"] == {"token": "t"}

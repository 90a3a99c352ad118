"""The registry and the Management API's semantics, with a fake transport."""

import pytest

from apigw_local.gateway.connections import ConnectionRegistry, ManagementError, State
from apigw_local.gateway.events import ConnectionInfo
from apigw_local.gateway.quotas import Quotas


class FakeTransport:
    def __init__(self):
        self.sent, self.closed = [], None

    def send_text(self, data):
        self.sent.append(data)
        return True

    def close(self, code, reason):
        self.closed = (code, reason)


def make(registry):
    info = ConnectionInfo(connection_id=registry.new_id(), api_id="a", stage="dev",
                          domain_name="localhost:1", source_ip="10.0.0.1", user_agent="ua",
                          connected_at=1_700_000_000_000)
    t = FakeTransport()
    return registry.add(info, t), t


def error_of(fn, *args):
    with pytest.raises(ManagementError) as exc:
        fn(*args)
    return exc.value.status, exc.value.error_type


def test_posting_during_connect_is_gone_then_works_once_open():
    reg = ConnectionRegistry()
    conn, t = make(reg)
    assert conn.state is State.CONNECTING
    assert error_of(reg.post, conn.id, b"x") == (410, "GoneException")
    reg.open(conn.id)
    reg.post(conn.id, b'{"a": 1}')
    assert t.sent == ['{"a": 1}']


def test_unknown_closed_and_malformed_ids():
    reg = ConnectionRegistry()
    assert error_of(reg.post, "AAAAAAAAAAAAAAA=", b"x") == (410, "GoneException")
    # "The connectionID isn't valid" is a cause of 410 GoneException (AWS knowledge center).
    assert error_of(reg.describe, "bad id", ) == (410, "GoneException")
    assert error_of(reg.post, "x" * 300, b"x") == (410, "GoneException")
    conn, _ = make(reg)
    reg.open(conn.id)
    reg.remove(conn.id, 1000, "bye")
    assert error_of(reg.post, conn.id, b"x") == (410, "GoneException")
    assert error_of(reg.delete, conn.id) == (410, "GoneException")


def test_payload_too_large():
    reg = ConnectionRegistry(Quotas(management_data_bytes=10))
    conn, _ = make(reg)
    reg.open(conn.id)
    assert error_of(reg.post, conn.id, b"x" * 11) == (413, "PayloadTooLargeException")
    reg.post(conn.id, b"x" * 10)


def test_describe_and_last_active_moves():
    reg = ConnectionRegistry()
    conn, _ = make(reg)
    reg.open(conn.id)
    d = reg.describe(conn.id)
    assert d["identity"] == {"sourceIp": "10.0.0.1", "userAgent": "ua"}
    assert d["connectedAt"].endswith("Z") and "T" in d["connectedAt"]
    conn.last_active_ms += 5000
    assert reg.describe(conn.id)["lastActiveAt"] > d["lastActiveAt"]


def test_delete_closes_with_1000_and_records_the_reason():
    reg = ConnectionRegistry()
    conn, t = make(reg)
    reg.open(conn.id)
    reg.delete(conn.id)
    assert t.closed == (1000, "")
    assert (conn.close_code, conn.close_reason) == (1000, "Connection Closed Normally")
    assert error_of(reg.post, conn.id, b"x") == (410, "GoneException")


def test_ids_are_unique_and_aws_shaped():
    reg = ConnectionRegistry()
    ids = {make(reg)[0].id for _ in range(500)}
    assert len(ids) == 500 and all(len(i) == 16 and i.endswith("=") for i in ids)

"""Lambda-style log lines: text as CloudWatch shows it, colour only when asked, JSON as the
Telemetry API shapes it."""

import json
import os
import re

import pytest

from apigw_local.logs import GatewayRecord, LogWriter, Report, colour_wanted, peak_rss_mb

RID = "8f5b0d1e-0000-4000-8000-000000000001"


def writer(fmt="text", colour=False):
    lines = []
    return LogWriter(fmt, colour=colour, write=lines.append, clock=lambda: "T"), lines


def test_text_invocation_reads_like_cloudwatch():
    log, lines = writer()
    log.start("Message", RID)
    log.output("Message", "hello from the handler")
    log.end("Message", Report(RID, 12.344, 128, 45, init_duration_ms=210.061))
    assert lines == [
        f"Message  | START RequestId: {RID} Version: $LATEST",
        "Message  | hello from the handler",
        f"Message  | END RequestId: {RID}",
        f"Message  | REPORT RequestId: {RID}\tDuration: 12.34 ms\tBilled Duration: 223 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 45 MB\tInit Duration: 210.06 ms",
    ]


def test_warm_report_has_no_init_duration_and_bills_whole_milliseconds():
    report = Report(RID, 3.01, 256, 60)
    assert report.billed_duration_ms == 4
    assert "Init Duration" not in report.text()
    assert report.text().endswith("Memory Size: 256 MB\tMax Memory Used: 60 MB")


def test_prefixes_line_up_and_colour_only_when_wanted():
    log, lines = writer()
    log.output("Connect", "a")
    log.output("VerifyTransaction", "b")
    log.output("Connect", "c")
    assert lines[0] == "Connect  | a"
    assert lines[2] == "Connect           | c"
    assert not any("\x1b[" in line for line in lines)
    coloured, clines = writer(colour=True)
    coloured.output("Connect", "[ERROR] ValueError: boom")
    assert "\x1b[31m[ERROR] ValueError: boom" in clines[0]
    assert re.sub(r"\x1b\[\d+m", "", clines[0]) == "Connect  | [ERROR] ValueError: boom"


def test_colour_follows_tty_and_the_no_color_conventions():
    class Tty:
        def isatty(self):
            return True

    class Pipe:
        def isatty(self):
            return False

    assert colour_wanted(Tty(), {}) and not colour_wanted(Pipe(), {})
    assert not colour_wanted(Tty(), {"NO_COLOR": "1"})
    assert colour_wanted(Pipe(), {"FORCE_COLOR": "1"})


def test_gateway_line_names_route_connection_status_duration():
    log, lines = writer()
    log.gateway(GatewayRecord("websocket", "$default", 200, 12.34, "Message", "abc=", RID))
    log.gateway(GatewayRecord("http", "POST /transactions/{id}/verify", 502, 3.0,
                              "VerifyTransaction", error="ValueError: boom"))
    assert lines[0] == "gateway  | $default              conn=abc=  200     12.3 ms  → Message"
    assert lines[1].startswith("gateway  | POST /transactions/{id}/verify  502      3.0 ms")
    assert lines[1].endswith("→ VerifyTransaction  ValueError: boom")


def test_json_lines_follow_the_telemetry_api():
    log, lines = writer("json")
    log.start("Message", RID)
    log.output("Message", "hi", RID)
    log.end("Message", Report(RID, 5.5, 128, 40, init_duration_ms=100.25, status="error"))
    log.gateway(GatewayRecord("websocket", "$connect", 200, 7.0, "Connect", "c1="))
    records = [json.loads(line) for line in lines]
    assert records[0] == {"time": "T", "type": "platform.start", "function": "Message",
                          "record": {"requestId": RID, "version": "$LATEST"}}
    assert records[1] == {"time": "T", "type": "function", "function": "Message",
                          "record": "hi", "requestId": RID}
    assert records[2]["record"] == {
        "requestId": RID, "status": "error",
        "metrics": {"durationMs": 5.5, "billedDurationMs": 106, "memorySizeMB": 128,
                    "maxMemoryUsedMB": 40, "initDurationMs": 100.25}}
    assert records[3] == {"time": "T", "type": "gateway", "api": "websocket",
                          "routeKey": "$connect", "status": 200, "durationMs": 7.0,
                          "function": "Connect", "connectionId": "c1="}


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="expected one of text, json"):
        LogWriter("xml")


def test_peak_rss_of_this_process():
    mb = peak_rss_mb(os.getpid())
    assert mb is not None and 5 < mb < 4096
    assert peak_rss_mb(2**22 + 12345) is None


def test_tokens_never_reach_a_log_line():
    log, lines = writer()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    log.output("Connect", f"event: {{'queryStringParameters': {{'token': '{jwt}'}}}}")
    log.gateway(GatewayRecord("websocket", "$connect", 200, 1.0, error=f"Bearer {jwt}"))
    assert not any(jwt in line or "eyJ" in line for line in lines), lines


def test_notices_in_both_formats():
    log, lines = writer()
    log.notice("reloaded EchoFunction ← echo/app.py")
    assert lines == ["apigw-local | reloaded EchoFunction ← echo/app.py"]
    log, lines = writer("json")
    log.notice("template reloaded: routes +ping")
    assert json.loads(lines[0]) == {"time": "T", "type": "notice",
                                    "record": "template reloaded: routes +ping"}

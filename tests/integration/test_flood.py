"""One client cannot stall the others: floods and a reader that does not read, through real
sockets against `apigw-local start` in its own process.

A bystander measures its echo round trip (the two-way `echo` route, a real worker) while idle
and again while another client floods; the assertions are ratios of those two measurements,
and the gateway's RSS after the flood against its RSS before, never fixed times.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import websockets

from apigw_local.testing import connect

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent.parent / "fixtures" / "gateway" / "template.yaml"
ROUNDS = 300

# Runs in its own process so that its CPU is not the bystander's (the machine has two cores).
FLOOD_FRAMES = textwrap.dedent("""
    import json, sys, threading
    from websockets.sync.client import connect

    url, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    frame = json.dumps({"action": "echo", "pad": "x" * size})
    with connect(url, max_size=None, close_timeout=1) as ws:
        def drain():
            try:
                for _ in ws:
                    pass
            except Exception:
                pass
        threading.Thread(target=drain, daemon=True).start()
        for _ in range(count):
            ws.send(frame)
    print("sent", count, flush=True)
""")

# Pings as fast as the socket takes them, never reading a pong.
FLOOD_PINGS = textwrap.dedent("""
    import socket, sys, time
    from websockets.frames import Frame, Opcode
    from websockets.sync.client import connect

    url, seconds = sys.argv[1], float(sys.argv[2])
    ws = connect(url)
    sock = ws.socket
    sock.settimeout(0.5)
    ping = Frame(Opcode.PING, b"p" * 125).serialize(mask=True, extensions=[]) * 64
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sock.sendall(ping)
            sent += 64
        except (TimeoutError, OSError):
            pass  # the gateway stopped reading us: that is the point
    print("pings", sent, flush=True)
    sock.close()
""")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read the gateway's RSS")
    tmp = tmp_path_factory.mktemp("flood")
    endpoints_file = tmp / "endpoints.json"
    log = open(tmp / "emulator.log", "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "apigw_local.cli", "start", "--template", str(FIXTURE),
         "--port", "0", "--ws-port", "0", "--no-static", "--prewarm",
         "--parameter-overrides", f"LogDir={tmp}", "--state-dir", str(tmp / "state"),
         "--endpoints-file", str(endpoints_file)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 90
        while not endpoints_file.exists() or not endpoints_file.stat().st_size:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise AssertionError(f"apigw-local did not start:\n{log.read()}")
            time.sleep(0.1)
        time.sleep(0.2)
        yield process.pid, json.loads(endpoints_file.read_text())["websocket"], log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def echo_times(ws, rounds: int) -> list[float]:
    times = []
    for n in range(rounds):
        started = time.perf_counter()
        await ws.send_json({"action": "echo", "n": n})
        reply = await ws.receive_json(timeout=30)
        times.append(time.perf_counter() - started)
        assert reply == {"action": "echo", "n": n}
    return times


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


async def under_flood(url: str, script: str, *args: str) -> tuple[float, float, str]:
    """(idle p99, p99 during the flood, the flooder's output)."""
    async with connect(url) as ws:
        await echo_times(ws, 50)  # warm
        idle = p99(await echo_times(ws, ROUNDS))
        flooder = spawn(script, url, *args)
        try:
            await asyncio.sleep(0.5)  # let the flood build up
            during: list[float] = []
            while flooder.poll() is None and len(during) < 5 * ROUNDS:
                during += await echo_times(ws, 20)
            assert len(during) >= ROUNDS // 3, "the flood ended before it could be measured"
        finally:
            out, _ = flooder.communicate(timeout=120)
        return idle, p99(during), out


def test_a_frame_flood_does_not_stall_a_bystander(emulator):
    pid, url, _ = emulator
    rss_start = rss_kib(pid)
    idle, flooded, out = asyncio.run(under_flood(url, FLOOD_FRAMES, "20000", str(30_000)))
    assert "sent 20000" in out, out
    print(f"bystander echo p99: idle {idle * 1000:.2f} ms, during the flood "
          f"{flooded * 1000:.2f} ms")
    assert flooded <= 3 * idle
    time.sleep(1.0)
    assert rss_kib(pid) - rss_start <= 50 * 1024


def test_a_ping_flood_without_reading_pongs_does_not_stall_a_bystander(emulator):
    pid, url, _ = emulator
    rss_start = rss_kib(pid)
    idle, flooded, out = asyncio.run(under_flood(url, FLOOD_PINGS, "4"))
    assert out.startswith("pings"), out
    print(f"bystander echo p99: idle {idle * 1000:.2f} ms, during the ping flood "
          f"{flooded * 1000:.2f} ms")
    assert flooded <= 3 * idle
    assert rss_kib(pid) - rss_start <= 50 * 1024


def test_a_client_that_does_not_read_is_closed_and_logged(emulator):
    pid, url, log = emulator
    rss_start = rss_kib(pid)
    host, port = url.split("//")[1].split("/")[0].split(":")

    async def scenario():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # a small window
        sock.connect((host, int(port)))
        sock.setblocking(False)
        async with websockets.connect(url, sock=sock, max_size=None) as silent, \
                connect(url) as bystander:
            silent.transport.pause_reading()  # from here on, nobody reads this socket
            # $default answers each message through PostToConnection, twice its size.
            message = json.dumps({"pad": "y" * 30_000})
            for _ in range(400):
                try:
                    await asyncio.wait_for(silent.send(message), 2)
                except TimeoutError:
                    break  # the gateway stopped reading us too
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                log.seek(0)
                if "does not read what it is sent" in log.read():
                    break
                await asyncio.sleep(0.2)
            await echo_times(bystander, 20)  # everyone else is still served
            silent.transport.abort()

    asyncio.run(scenario())
    log.seek(0)
    assert "does not read what it is sent" in log.read()
    time.sleep(1.0)
    assert rss_kib(pid) - rss_start <= 50 * 1024

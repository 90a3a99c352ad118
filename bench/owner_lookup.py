"""What the owner check costs per connection: one sock_diag lookup (apigw_local/peers.py)
beside reading /proc/net/tcp and /proc/net/tcp6, the other way to find a socket's owner.

    python -m bench.owner_lookup [--rounds 2000]

Both run in this process over the same loopback connection; the figure that matters is the
ratio (the /proc tables are walked whole, so their cost grows with the host's connection
table, while a lookup by address does not).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time

from apigw_local.peers import peer_uid


def _median_us(call, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def _read_proc_tables() -> None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, "rb") as f:
            f.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.owner_lookup")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, peer = server.accept()
        with client, accepted:
            local = accepted.getsockname()
            lookup = _median_us(lambda: peer_uid(peer, local), args.rounds)
            proc = _median_us(_read_proc_tables, max(args.rounds // 10, 20))
    print(json.dumps({"sock_diag_lookup_us": round(lookup, 1),
                      "proc_net_tcp_read_us": round(proc, 1),
                      "proc_over_lookup": round(proc / lookup, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

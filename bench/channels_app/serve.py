"""Run the baseline with uvicorn on a free port of 127.0.0.1; print its endpoints as one line.

    bench/.venv-channels/bin/python -m bench.channels_app.serve
"""

import json
import socket

import uvicorn

from .asgi import application


def main() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)  # before the endpoints are announced: no client is refused
    port = sock.getsockname()[1]
    config = uvicorn.Config(application, log_level="warning", lifespan="off",
                            ws_ping_interval=None, ws_max_queue=10_000)
    server = uvicorn.Server(config)
    print(json.dumps({"websocket": f"ws://127.0.0.1:{port}/ws", "http": f"http://127.0.0.1:{port}"}),
          flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()

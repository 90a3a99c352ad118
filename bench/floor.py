"""The floor: rooms as a bare `websockets` broadcast server (no Lambda, no DynamoDB).

    python -m bench.floor      prints {"websocket": "ws://127.0.0.1:PORT"} once it listens
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

from websockets.asyncio.server import ServerConnection, broadcast, serve

from . import rooms_protocol as protocol

rooms: dict[str, dict[ServerConnection, str]] = defaultdict(dict)


def join(ws: ServerConnection, room: str, user: str) -> bool:
    new = ws not in rooms[room]
    rooms[room][ws] = user
    return new


async def handler(ws: ServerConnection) -> None:
    user, first_room = protocol.identity(ws.request.path if ws.request else "/")
    if first_room:
        join(ws, first_room, user)
    try:
        async for raw in ws:
            frame = json.loads(raw)
            action, room = frame.get("action"), frame.get("room") or protocol.DASHBOARD
            if action == "join":
                new = join(ws, room, user)
                await ws.send(protocol.presence(room, list(rooms[room].values())))
                if new:
                    broadcast(rooms[room], protocol.joined(room, user))
            elif action == "send":
                broadcast(rooms[room], protocol.message(room, user, frame["text"]))
            elif action == "subscribe":
                join(ws, protocol.DASHBOARD, user)
                await ws.send(protocol.income(None))
            else:
                await ws.send(raw)
    finally:
        for members in rooms.values():
            members.pop(ws, None)


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0, max_queue=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"websocket": f"ws://127.0.0.1:{port}"}), flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())

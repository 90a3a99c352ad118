"""The tutorial's room consumer (`group_add` on join, `group_send` to the room), in our protocol."""

from __future__ import annotations

import json
from collections import defaultdict

from channels.generic.websocket import AsyncWebsocketConsumer

from .. import rooms_protocol as protocol

# Who is in which room, for `presence` (one server process, so a dict is the whole truth).
MEMBERS: dict[str, dict[str, str]] = defaultdict(dict)


def group(room: str) -> str:
    return f"room.{room}"


class RoomConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        path = "/?" + self.scope["query_string"].decode()
        self.user, room = protocol.identity(path)
        self.rooms: set[str] = set()
        await self.accept()
        if room:
            await self.join(room)

    async def disconnect(self, code: int) -> None:
        for room in self.rooms:
            MEMBERS[room].pop(self.channel_name, None)
            await self.channel_layer.group_discard(group(room), self.channel_name)

    async def join(self, room: str) -> bool:
        new = room not in self.rooms
        self.rooms.add(room)
        MEMBERS[room][self.channel_name] = self.user
        await self.channel_layer.group_add(group(room), self.channel_name)
        return new

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        action, room = frame.get("action"), frame.get("room") or protocol.DASHBOARD
        if action == "join":
            new = await self.join(room)
            await self.send(text_data=protocol.presence(room, list(MEMBERS[room].values())))
            if new:
                await self.channel_layer.group_send(
                    group(room), {"type": "room.frame", "frame": json.loads(
                        protocol.joined(room, self.user))})
        elif action == "send":
            await self.channel_layer.group_send(
                group(room), {"type": "room.frame", "frame": {
                    "type": "message", "room": room, "sender": self.user, "text": frame["text"]}})
        elif action == "subscribe":
            await self.join(protocol.DASHBOARD)
            await self.send(text_data=protocol.income(None))
        else:
            await self.send(text_data=text_data)

    async def room_frame(self, event: dict) -> None:
        # As the tutorial's chat_message: each consumer serialises the event for its socket.
        await self.send(text_data=json.dumps(event["frame"]))

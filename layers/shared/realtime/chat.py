"""Rooms, messages and the dashboard channel: what each WebSocket action does.

Every action is validated first (`models.parse_action`); a refused frame is answered with an
`error` frame to its sender and writes nothing. Replies to the sender and broadcasts to a
room both go through `Fanout`, so a vanished connection is cleaned up the same way anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from realtime import clock, income
from realtime.auth import Identity
from realtime.fanout import Fanout, FanoutResult
from realtime.ids import new_id
from realtime.models import (
    DASHBOARD,
    ErrorFrame,
    FrameError,
    History,
    HistoryFrame,
    Join,
    JoinedFrame,
    Leave,
    LeftFrame,
    MessageFrame,
    Ping,
    PongFrame,
    PresenceFrame,
    Send,
    Subscribe,
    Unsubscribe,
    parse_action,
)
from realtime.store import Connection, InvalidCursor, Store, channel_target, room_target

# API Gateway closes a WebSocket after 2 hours at most
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html); records of a
# connection whose $disconnect never arrived expire by TTL an hour after that.
CONNECTION_TTL = timedelta(hours=3)
JOIN_HISTORY = 50
PRESENCE_MEMBERS = 100


def message_frame(item: dict) -> MessageFrame:
    return MessageFrame(
        room=item["room"],
        id=item["id"],
        sender=item["sender"],
        text=item["text"],
        sent_at=item["sentAt"],
    )


class Chat:
    def __init__(
        self,
        store: Store,
        fanout: Fanout,
        *,
        retention_days: int = 30,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.retention = timedelta(days=retention_days)
        self.now = now

    # --- lifecycle ------------------------------------------------------------------------

    def connect(
        self,
        connection_id: str,
        identity: Identity,
        room: str | None,
        connected_at: int | None = None,
    ) -> None:
        """Register the connection (and its first room), with API Gateway's `connectedAt`
        (epoch ms; the clock if absent). Nothing is posted, to it or to the room: during
        $connect a connection cannot receive (API Gateway answers GoneException), and the
        room's members may be connecting too. The membership is stored unannounced; the
        connection's first `join` announces it (`joined`)."""
        now = self.now()
        if connected_at is None:
            connected_at = round(now.timestamp() * 1000)
        expires = clock.epoch_seconds(now + CONNECTION_TTL)
        self.store.put_connection(
            connection_id,
            identity.user,
            identity.role,
            clock.iso(datetime.fromtimestamp(connected_at / 1000, UTC)),
            expires,
        )
        if room is not None:
            self.store.add_member(
                room_target(room),
                connection_id,
                identity.user,
                expires,
                connected_at,
                announce=False,
            )

    def disconnect(self, connection_id: str) -> list[FanoutResult]:
        """Forget the connection and its memberships; tell each of its rooms."""
        connection = self.store.get_connection(connection_id)
        targets = self.store.remove_connection(connection_id)
        if connection is None:
            return []
        return [
            self.fanout.to_target(
                target, LeftFrame(room=target.removeprefix("room#"), user=connection.user)
            )
            for target in targets
            if target.startswith("room#")
        ]

    # --- frames ---------------------------------------------------------------------------

    def handle(self, connection_id: str, body: str | None) -> list[FanoutResult]:
        """Answer one client frame; the fan-outs it caused (for metrics)."""
        try:
            action = parse_action(body)
            connection = self.store.get_connection(connection_id)
            if connection is None:
                raise FrameError(
                    "forbidden", "This connection is not registered; reconnect.", action.action
                )
            identity = Identity(connection.user, connection.role)
            match action:
                case Join():
                    return self._join(connection, identity, action)
                case Leave():
                    return self._leave(connection_id, identity, action)
                case Send():
                    return self._send(connection_id, identity, action)
                case History():
                    return self._history(connection_id, action)
                case Subscribe():
                    return self._subscribe(connection, identity, action)
                case Unsubscribe():
                    self.store.remove_member(channel_target(action.channel), connection_id)
                    return []
                case Ping():
                    return [self.fanout.send(connection_id, PongFrame())]
        except FrameError as error:
            return [self.fanout.send(connection_id, ErrorFrame.of(error))]
        raise AssertionError(f"unhandled action {action!r}")  # pragma: no cover

    def _join(self, connection: Connection, identity: Identity, action: Join) -> list[FanoutResult]:
        connection_id = connection.connection_id
        target = room_target(action.room)
        expires = clock.epoch_seconds(self.now() + CONNECTION_TTL)
        announce = self.store.add_member(
            target, connection_id, identity.user, expires, connection.connected_at
        )
        items, cursor = self.store.latest_messages(action.room, JOIN_HISTORY)
        history = HistoryFrame(
            room=action.room, messages=[message_frame(i) for i in items], next=cursor
        )
        results = [
            self.fanout.send(connection_id, history),
            self.fanout.send(connection_id, self.presence(action.room)),
        ]
        if announce:  # a new membership, or the first join after connecting with &room=
            results.append(
                self.fanout.to_target(target, JoinedFrame(room=action.room, user=identity.user))
            )
        return results

    def _leave(self, connection_id: str, identity: Identity, action: Leave) -> list[FanoutResult]:
        target = room_target(action.room)
        if not self.store.remove_member(target, connection_id):
            raise FrameError("not_member", f"You are not in room '{action.room}'.", "leave")
        left = LeftFrame(room=action.room, user=identity.user)
        return [self.fanout.to_target(target, left), self.fanout.send(connection_id, left)]

    def _send(self, connection_id: str, identity: Identity, action: Send) -> list[FanoutResult]:
        target = room_target(action.room)
        self._require_member(target, connection_id, action.room, "send")
        now = self.now()
        message = MessageFrame(
            room=action.room,
            id=new_id(now),
            sender=identity.user,
            text=action.text,
            sent_at=clock.iso(now),
        )
        self.store.put_message(
            {
                "room": message.room,
                "id": message.id,
                "sender": message.sender,
                "text": message.text,
                "sentAt": message.sent_at,
                "expiresAt": clock.epoch_seconds(now + self.retention),
            }
        )
        return [self.fanout.to_target(target, message)]

    def _history(self, connection_id: str, action: History) -> list[FanoutResult]:
        self._require_member(room_target(action.room), connection_id, action.room, "history")
        try:
            items, cursor = self.store.latest_messages(action.room, action.limit, action.before)
        except InvalidCursor as error:
            raise FrameError("invalid_request", f"before: {error}", "history") from None
        frame = HistoryFrame(
            room=action.room, messages=[message_frame(i) for i in items], next=cursor
        )
        return [self.fanout.send(connection_id, frame)]

    def _subscribe(
        self, connection: Connection, identity: Identity, action: Subscribe
    ) -> list[FanoutResult]:
        connection_id = connection.connection_id
        if not identity.is_admin:
            raise FrameError(
                "forbidden", f"Only admins may subscribe to '{DASHBOARD}'.", "subscribe"
            )
        expires = clock.epoch_seconds(self.now() + CONNECTION_TTL)
        self.store.add_member(
            channel_target(action.channel),
            connection_id,
            identity.user,
            expires,
            connection.connected_at,
        )
        return [self.fanout.send(connection_id, income.income_frame(self.store, self.now()))]

    # --- reads ----------------------------------------------------------------------------

    def presence(self, room: str) -> PresenceFrame:
        users: dict[str, None] = {}
        count = 0
        for page in self.store.member_pages(room_target(room)):
            count += len(page)
            for member in page:
                if len(users) < PRESENCE_MEMBERS:
                    users.setdefault(member.user)
        return PresenceFrame(room=room, members=sorted(users), count=count)

    def _require_member(self, target: str, connection_id: str, room: str, action: str) -> None:
        if not self.store.is_member(target, connection_id):
            raise FrameError("not_member", f"Join room '{room}' before using it.", action)

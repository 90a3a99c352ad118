"""Rooms, messages and the dashboard channel: what each WebSocket action does.

Every action is validated first (`models.parse_action`); a refused frame is answered with an
`error` frame to its sender and writes nothing. Replies to the sender and broadcasts to a
room both go through `Fanout`, so a vanished connection is cleaned up the same way anywhere.

Order and retries (docs/protocol.md, "Sending"). API Gateway may run a connection's frames
concurrently in different Lambda instances, so the order is kept in DynamoDB: a send with
`seq` n takes its place only once n - 1 is stored AND delivered (a condition on the connection
item), and its `ack` goes out after its fan-out. A send with `clientId` claims that id (a
conditional put), so a retry is stored once; the retry re-posts the stored message (same id),
which completes a fan-out that a dead worker left half done, and members drop the copy they
already have by its `id`. Each step is one conditional write that a retry can repeat (no
TransactWriteItems: nothing to roll back, and a crash between steps is resumed by the retry).

Presence (docs/protocol.md, "Presence"): joins are coalesced per room in windows of
`presence_window_ms`. The first join of a window claims it and, when it ends, posts ONE
`presence` snapshot to the room covering every join of the window, which is also the
`presence` of the window's joiners; the window's other joins post nothing and read no member
list. So a burst of K joins costs O(K) frames instead of K², and one member Query per window
instead of one per join.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from realtime import clock, income
from realtime.auth import Identity
from realtime.fanout import Fanout, FanoutResult
from realtime.ids import new_id
from realtime.models import (
    DASHBOARD,
    AckFrame,
    Connection,
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
from realtime.store import (
    InvalidCursor,
    SeqTaken,
    Store,
    channel_target,
    room_target,
)

# API Gateway closes a WebSocket after 2 hours at most
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html); records of a
# connection whose $disconnect never arrived expire by TTL an hour after that.
CONNECTION_TTL = timedelta(hours=3)
JOIN_HISTORY = 50
PRESENCE_MEMBERS = 100
PRESENCE_WINDOW_MS = 250
# A window's snapshot is read this long after it ends, so that a join another Lambda instance
# counted in the window (its clock a little behind) is stored before the snapshot is read.
PRESENCE_MARGIN_MS = 50
PRESENCE_WINDOW_TTL = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(milliseconds=1)


class Chat:
    def __init__(
        self,
        store: Store,
        fanout: Fanout,
        *,
        retention_days: int = 30,
        presence_window_ms: int = PRESENCE_WINDOW_MS,
        now: Callable[[], datetime] = clock.now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.retention = timedelta(days=retention_days)
        self.presence_window_ms = presence_window_ms
        self.now = now
        self.sleep = sleep

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
                    return self._send(connection, identity, action)
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
        messages, cursor = self.store.latest_messages(action.room, JOIN_HISTORY)
        history = HistoryFrame(room=action.room, messages=messages, next=cursor)
        results = [self.fanout.send(connection_id, history)]
        if announce:  # a new membership, or the first join after connecting with &room=
            results.extend(self._announce_join(action.room, identity.user, connection_id))
        else:
            results.append(self.fanout.send(connection_id, self.presence(action.room)))
        return results

    def _announce_join(self, room: str, user: str, connection_id: str) -> list[FanoutResult]:
        """The joiner's `presence` and the room's news of the join: see the module's
        docstring. The first join of a window claims it and, at its end, posts ONE snapshot
        to the room, the window's joiners included; the window's other joins post nothing
        and read no member list. Without a window: the joiner's snapshot at once and
        `joined` to the room (where the member list is capped, more users than `presence`
        lists, a delta cannot keep a view's count: the snapshot goes to the room instead)."""
        target = room_target(room)
        if self.presence_window_ms <= 0:
            presence = self.presence(room)
            capped = presence.count > len(presence.members)
            joined = presence if capped else JoinedFrame(room=room, user=user)
            return [
                self.fanout.send(connection_id, presence),
                self.fanout.to_target(target, joined),
            ]
        expires = clock.epoch_seconds(self.now() + PRESENCE_WINDOW_TTL)
        for _ in range(3):  # a lost race re-reads the window
            end = self.store.presence_window(room)
            # The clock is read AFTER this membership was stored: a join that finds the
            # window open is stored before the window's snapshot reads the members.
            now_ms = epoch_ms(self.now())
            if end is not None and now_ms < end:
                return []  # this window's snapshot covers the join
            new_end = now_ms + self.presence_window_ms
            if self.store.claim_presence_window(room, end, new_end, expires):
                self.sleep((new_end - now_ms + PRESENCE_MARGIN_MS) / 1000)
                return [self.fanout.to_target(target, self.presence(room))]
        return [self.fanout.to_target(target, self.presence(room))]  # contended: post it now

    def _leave(self, connection_id: str, identity: Identity, action: Leave) -> list[FanoutResult]:
        target = room_target(action.room)
        if not self.store.remove_member(target, connection_id):
            raise FrameError("not_member", f"You are not in room '{action.room}'.", "leave")
        left = LeftFrame(room=action.room, user=identity.user)
        return [self.fanout.to_target(target, left), self.fanout.send(connection_id, left)]

    def _send(self, connection: Connection, identity: Identity, action: Send) -> list[FanoutResult]:
        """Store and deliver a message; with `seq`/`clientId`, in order and once (see the
        module's docstring). Every step is one conditional write, safe to repeat: take the
        seq (the message's id and time are fixed there), claim the client id, store, fan
        out, mark the seq delivered, acknowledge."""
        target = room_target(action.room)
        connection_id = connection.connection_id
        self._require_member(target, connection_id, action.room, "send")
        now = self.now()
        if action.seq is not None:
            # Never before this connection's previous message, whatever the clocks of the
            # Lambda instances: history (ordered by id) keeps the order of `seq`.
            now = max(now, _EPOCH + timedelta(milliseconds=connection.last_sent_ms + 1))
        message = MessageFrame(
            room=action.room,
            id=new_id(now),
            sender=identity.user,
            text=action.text,
            sent_at=clock.iso(now),
            client_id=action.client_id,
            seq=action.seq,
        )
        expires = clock.epoch_seconds(now + self.retention)
        if action.seq is None and action.client_id is None:
            self.store.put_message(message, expires)  # the plain path: one write
            return [self.fanout.to_target(target, message)]

        def refused(code: str, text: str, expected: int | None = None) -> FrameError:
            return FrameError(code, text, "send", client_id=action.client_id, expected=expected)

        duplicate = False
        if action.seq is not None:
            try:
                self.store.take_seq(connection_id, message)
            except SeqTaken as taken:
                current = taken.connection
                if current is None:
                    raise refused("forbidden", "This connection is not registered.") from None
                if (
                    action.client_id is not None
                    and current.seq == action.seq
                    and current.pending_client == action.client_id
                    and current.pending_id is not None
                ):
                    # A retry of the send that holds this seq: it resumes with its id and time.
                    message = message.model_copy(update={
                        "id": current.pending_id,
                        "sent_at": clock.iso(
                            _EPOCH + timedelta(milliseconds=current.last_sent_ms)
                        ),
                    })
                    duplicate = True
                    if current.done >= action.seq:  # and it was delivered
                        return [self._ack(connection_id, message, action, duplicate=True)]
                else:
                    claim = self.store.get_claim(message) if action.client_id else None
                    stored = claim and self.store.get_message(action.room, claim.message_id)
                    if not stored:
                        expected = current.seq if current.seq > current.done else current.done + 1
                        raise refused(
                            "out_of_order",
                            f"seq {action.seq} is not next: send seq {expected} "
                            "(and wait for its ack) first.",
                            expected,
                        ) from None
                    # An earlier send of this connection, retried: delivered before the
                    # later seqs were taken.
                    return [self._ack(connection_id, stored, action, duplicate=True)]
        stored = None
        if action.client_id is not None:
            claim = self.store.claim_client_id(message, expires)
            if claim is not None:  # an earlier attempt (perhaps on another connection)
                stored = self.store.get_message(action.room, claim.message_id)
                if stored is None:  # it died before storing: finish it, with its id
                    message = message.model_copy(
                        update={"id": claim.message_id, "sent_at": claim.sent_at}
                    )
                elif stored.text != action.text:
                    if action.seq is not None:  # the seq is spent on a refused send
                        self.store.complete_send(connection_id, action.seq)
                    raise refused("invalid_request", "clientId: already used for another message")
                else:
                    message, duplicate = stored, True
        if stored is None:
            self.store.put_message(message, expires)
        # A retry posts the message again (same id: members drop the copy they have); this
        # completes a fan-out that a dead worker left half done.
        results = [self.fanout.to_target(target, message)]
        if action.seq is not None:
            self.store.complete_send(connection_id, action.seq)
        results.append(self._ack(connection_id, message, action, duplicate=duplicate))
        return results

    def _ack(
        self, connection_id: str, message: MessageFrame, action: Send, *, duplicate: bool
    ) -> FanoutResult:
        ack = AckFrame(
            room=action.room,
            id=message.id,
            client_id=action.client_id,
            seq=action.seq,
            duplicate=duplicate,
        )
        return self.fanout.send(connection_id, ack)

    def _history(self, connection_id: str, action: History) -> list[FanoutResult]:
        self._require_member(room_target(action.room), connection_id, action.room, "history")
        try:
            messages, cursor = self.store.latest_messages(
                action.room, action.limit, action.before
            )
        except InvalidCursor as error:
            raise FrameError("invalid_request", f"before: {error}", "history") from None
        frame = HistoryFrame(room=action.room, messages=messages, next=cursor)
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
        for page in self.store.user_pages(room_target(room)):
            count += len(page)
            for user in page:
                if len(users) < PRESENCE_MEMBERS:
                    users.setdefault(user)
        return PresenceFrame(room=room, members=sorted(users), count=count)

    def _require_member(self, target: str, connection_id: str, room: str, action: str) -> None:
        if not self.store.is_member(target, connection_id):
            raise FrameError("not_member", f"Join room '{room}' before using it.", action)

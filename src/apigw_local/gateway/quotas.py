"""API Gateway's WebSocket quotas, as plain values and checks (no I/O).

Source: API Gateway developer guide, "Amazon API Gateway quotas for configuring and running a
WebSocket API": WebSocket frame size 32 KB, message payload size 128 KB, idle connection
timeout 10 minutes, connection duration 2 hours. Frames and messages over the limits make API
Gateway close the connection with 1009 (message too big), as that page's footnote says. The idle
and duration closes use 1001 "Going away": AWS does not document them; a `$disconnect` event
captured from AWS after the idle timeout reports 1001 "Going away", and we assume the maximum
duration closes the same way (docs/fidelity.md, rows Q5 and Q6).
"""

from __future__ import annotations

from dataclasses import dataclass

KB = 1024

# RFC 6455 7.4.1 status codes used by API Gateway.
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003  # binary frames from clients
CLOSE_INVALID_DATA = 1007  # text frame that is not UTF-8


@dataclass(frozen=True)
class Quotas:
    """The limits one gateway enforces; every field can be changed for local work."""

    frame_bytes: int = 32 * KB
    message_bytes: int = 128 * KB
    idle_timeout: float = 10 * 60.0  # seconds without traffic in either direction
    max_duration: float = 2 * 60 * 60.0  # seconds since the connection opened
    # PostToConnection: "Data" over the message payload limit → 413 PayloadTooLargeException.
    management_data_bytes: int = 128 * KB
    # Not AWS quotas: bounds that keep one client from holding the gateway's memory or the
    # workers (see session.py). Bytes waiting for a client that does not read before it is
    # closed; invocations of one connection running at once, and waiting before the gateway
    # stops reading that client (by count and by the bytes of their messages).
    client_write_buffer_bytes: int = 4 * 1024 * KB
    connection_inflight: int = 2
    connection_queue: int = 64
    connection_queue_bytes: int = 1024 * KB

    def websocket_max_size(self) -> tuple[int, int]:
        """(max message, max frame) in the form websockets' sans-I/O protocol takes."""
        return (self.message_bytes, self.frame_bytes)

    def deadline(self, connected_at: float, last_active_at: float) -> tuple[float, str]:
        """The monotonic time at which the connection must close, and why."""
        idle_end = last_active_at + self.idle_timeout
        max_end = connected_at + self.max_duration
        if idle_end <= max_end:
            return idle_end, "idle"
        return max_end, "max_duration"


DEFAULT_QUOTAS = Quotas()

"""A WebSocket API served at one stage: its router, lifecycle routes and throttling bucket."""

from __future__ import annotations

from ..model import WebSocketApi
from .routing import CONNECT, DISCONNECT, WebSocketRouter
from .throttle import TokenBucket


class Stage:
    def __init__(self, api: WebSocketApi, name: str, now: float) -> None:
        self.name = name
        self.router = WebSocketRouter(api)
        self.reload(api)
        # One bucket for the whole stage: API Gateway throttles a stage's requests together.
        self.throttle = TokenBucket.for_stage(api.throttle, now)

    def reload(self, api: WebSocketApi) -> None:
        """Serve `api`'s routes from now on (hot reload); open connections keep this stage,
        so their next message is routed by the new routes."""
        self.api = api
        self.router.load(api)
        self.connect_route = self.router.lifecycle(CONNECT)
        self.disconnect_route = self.router.lifecycle(DISCONNECT)

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
        # One bucket for the whole stage: API Gateway throttles a stage's requests together;
        # a route with RouteSettings of its own has its own bucket instead.
        self.throttle = TokenBucket.for_stage(api.throttle, now)
        self.route_throttles = {key: TokenBucket(t.burst_limit, t.rate_limit, now)
                                for key, t in api.route_throttles.items()}

    def bucket(self, route_key: str) -> TokenBucket | None:
        """The bucket a request on `route_key` spends from; None: not throttled."""
        return self.route_throttles.get(route_key, self.throttle)

    def reload(self, api: WebSocketApi) -> None:
        """Serve `api`'s routes from now on (hot reload); open connections keep this stage,
        so their next message is routed by the new routes."""
        self.api = api
        self.router.load(api)
        self.connect_route = self.router.lifecycle(CONNECT)
        self.disconnect_route = self.router.lifecycle(DISCONNECT)

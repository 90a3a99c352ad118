"""A stage's throttling: the token bucket API Gateway describes (no I/O; the time is given).

"API Gateway throttles requests to your API using the token bucket algorithm, where a token
counts for a request": the bucket holds at most the burst limit and refills at the rate limit
per second; a request finding it empty is throttled ("Protect your WebSocket APIs in API
Gateway", developer guide). One bucket per stage, shared by all its connections, from the
stage's `DefaultRouteSettings` (ThrottlingBurstLimit, ThrottlingRateLimit) for a WebSocket
API, plus one for each route with `RouteSettings` of its own (`Stage.bucket`); one per route
of an HTTP API's stage (`RouteBuckets`).
"""

from __future__ import annotations

from ..model import RouteThrottling, Throttle


class TokenBucket:
    __slots__ = ("burst", "rate", "_tokens", "_at")

    def __init__(self, burst: int, rate: float, now: float) -> None:
        self.burst = float(burst)
        self.rate = float(rate)
        self._tokens = self.burst  # a fresh bucket is full
        self._at = now

    @classmethod
    def for_stage(cls, throttle: Throttle | None, now: float) -> TokenBucket | None:
        if throttle is None:
            return None
        return cls(throttle.burst_limit, throttle.rate_limit, now)

    def take(self, now: float) -> bool:
        """Spend one token at `now`; False: the request is throttled."""
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RouteBuckets:
    """An HTTP API stage's throttling: one token bucket per route key, with the route's own
    `RouteSettings` limits or else the stage's `DefaultRouteSettings` ("Throttling requests to
    your HTTP API", route-level throttling: limits "for a specific stage or for individual
    routes"; `aws apigatewayv2 update-stage --route-settings '{"GET /pets": {…}}'`)."""

    __slots__ = ("settings", "_buckets")

    def __init__(self, settings: RouteThrottling) -> None:
        self.settings = settings
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, route_key: str, now: float) -> bool:
        """Spend one token of `route_key`'s bucket at `now`; False: the request is throttled."""
        bucket = self._buckets.get(route_key)
        if bucket is None:
            limits = self.settings.routes.get(route_key, self.settings.default)
            if limits is None:
                return True
            bucket = self._buckets[route_key] = TokenBucket(
                limits.burst_limit, limits.rate_limit, now)
        return bucket.take(now)

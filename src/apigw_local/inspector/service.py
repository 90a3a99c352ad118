"""The inspector mounted on an HTTP server: `server.http11` requests in, responses out.

The HTTP API's application hands over every request under `/_apigw-local/` (`wants`), upgrades
included; everything else stays the HTTP API's.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from ..server.http11 import HttpConnection, Response, reject_upgrade
from ..server.http11 import Request as HttpRequest
from .api import LIVE_PATH, Actions, Answer, InspectorApi, Request
from .live import LiveHub
from .model import InspectorModel


def _request(request: HttpRequest) -> Request:
    return Request(method=request.method, path=request.path, query=request.query,
                   headers={k.lower(): v for k, v in request.headers}, body=request.body,
                   peer=request.peer[0])


def _response(answer: Answer) -> Response:
    return Response(answer.status, list(answer.headers), answer.body)


class InspectorService:
    def __init__(self, model: InspectorModel, actions: Actions, *, port: int,
                 poll: Callable[[], None] | None = None) -> None:
        self.model = model
        self.api = InspectorApi(model, actions, port=port, poll=poll)
        self.hub = LiveHub(model, actions.describe, poll=poll)

    @staticmethod
    def wants(path: str) -> bool:
        return InspectorApi.wants(path)

    def start(self) -> None:
        self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()

    def handle(self, request: HttpRequest) -> Response | Awaitable[Response]:
        answer = self.api.handle(_request(request))
        if inspect.isawaitable(answer):
            return self._later(answer)
        return _response(answer)

    @staticmethod
    async def _later(answer: Awaitable[Answer]) -> Response:
        return _response(await answer)

    def upgrade(self, request: HttpRequest, connection: HttpConnection) -> Awaitable[None] | None:
        if request.path != LIVE_PATH or request.method != "GET":
            return None
        refused = self.api.check_live(_request(request))
        if refused is not None:
            reject_upgrade(connection, _response(refused))
            return _done()
        self.hub.accept(request.target, request.headers, connection)
        return _done()


async def _done() -> None:
    return None

"""What the inspector may do to the running emulator, through the emulator's own doors:
posts and disconnects go through the Management API core (so they answer, and fail, as a
handler's would: chaos included), a replay through the integrations (so it is observed and
logged like any invocation), table pages through DynamoDB's Scan."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from decimal import Decimal
from typing import Any

from .api import ActionError
from .model import InspectorModel, InvocationView


def _plain(value: Any) -> Any:
    """A deserialised DynamoDB value as JSON: numbers as numbers, sets as lists, bytes base64."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3's Binary
        return base64.b64encode(value.value).decode()
    return value


class EmulatorActions:
    def __init__(self, emulator: Any, model: InspectorModel) -> None:
        self.emulator = emulator
        self.model = model
        self._dynamodb: Any = None

    def describe(self) -> dict[str, Any]:
        e = self.emulator
        app = e.app
        routes = [{"api": api.logical_id, "route_key": key, "function": route.function}
                  for api in app.websocket_apis for key, route in api.routes.items()]
        routes += [{"api": r.api_logical_id, "route_key": f"{r.method} {r.path}",
                    "function": r.function} for r in app.http_routes]
        tables = [{"logical_id": lid, "name": t.name} for lid, t in app.tables.items()]
        policy = e.devloop.chaos
        chaos = f"{policy.chaos.describe()} (seed {policy.seed})" if policy else "off"
        return {"routes": routes, "tables": tables, "chaos": chaos,
                "endpoints": e.endpoints.as_json() if e.endpoints else {}}

    def _management(self, method: str, connection_id: str, body: bytes) -> None:
        e = self.emulator
        conn = e.registry.get(connection_id)
        if conn is None:
            raise ActionError(410, "GoneException: no such connection")
        path = f"/{conn.info.stage}/@connections/{connection_id}"
        answer = e.management.handle(method, path, [], body, signed=True)
        if answer.status >= 300:
            kind = dict(answer.headers).get("x-amzn-ErrorType", "")
            try:
                message = json.loads(answer.body or b"{}").get("message") or ""
            except ValueError:
                message = ""
            raise ActionError(answer.status, ": ".join(p for p in (kind, message) if p)
                              or f"status {answer.status}")

    def post(self, connection_id: str, data: bytes) -> None:
        self._management("POST", connection_id, data)

    def disconnect(self, connection_id: str) -> None:
        self._management("DELETE", connection_id, b"")

    async def replay(self, invocation: InvocationView) -> InvocationView:
        if invocation.function not in self.emulator.app.functions:
            raise ActionError(409, f"{invocation.function} is no longer in the template")
        inv, _ = await self.emulator.integrations.invoke(invocation.function, invocation.event)
        for view in reversed(self.model.invocations):
            if view.request_id == inv.request_id and inv.request_id:
                view.replay_of = invocation.seq
                return view
        raise ActionError(500, "the replay ran but was not recorded")

    async def items(self, table: str, limit: int, start: str | None) -> dict[str, Any]:
        e = self.emulator
        model = e.app.tables.get(table)
        if model is None:
            raise ActionError(404, f"no table {table} in the template")
        if not e.endpoints or not e.endpoints.dynamodb:
            raise ActionError(409, "no DynamoDB endpoint")
        kwargs: dict[str, Any] = {"TableName": model.name, "Limit": limit}
        if start:
            try:
                kwargs["ExclusiveStartKey"] = json.loads(base64.urlsafe_b64decode(start))
            except (ValueError, binascii.Error):
                raise ActionError(400, "bad page token") from None
        return await asyncio.to_thread(self._scan, kwargs)

    def _scan(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from boto3.dynamodb.types import TypeDeserializer
        from botocore.exceptions import BotoCoreError, ClientError

        if self._dynamodb is None:
            self._dynamodb = self.emulator.backend.client("dynamodb")
        try:
            page = self._dynamodb.scan(**kwargs)
        except (BotoCoreError, ClientError) as err:
            raise ActionError(502, f"DynamoDB: {err}") from None
        deserializer = TypeDeserializer()
        items = [{k: _plain(deserializer.deserialize(v)) for k, v in item.items()}
                 for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        token = base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None
        return {"items": items, "next": token}

"""HTTP routes of the baseline: create and verify a transaction, pushing `income` to dashboards."""

from __future__ import annotations

import json
import uuid

from channels.layers import get_channel_layer
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from .. import rooms_protocol as protocol
from .consumers import group


@csrf_exempt
async def create(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"transaction": {"id": uuid.uuid4().hex}}, status=201)


@csrf_exempt
async def verify(request: HttpRequest, transaction_id: str) -> JsonResponse:
    # As the app does: push the new totals to every dashboard, then answer.
    await get_channel_layer().group_send(group(protocol.DASHBOARD), {
        "type": "room.frame", "frame": json.loads(protocol.income(transaction_id))})
    return JsonResponse({"transaction": {"id": transaction_id, "status": "verified"}})


urlpatterns = [
    path("transactions", create),
    path("transactions/<str:transaction_id>/verify", verify),
]

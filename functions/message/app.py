"""$default: every client frame (join, leave, send, history, subscribe, unsubscribe, ping)."""

import base64
import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from realtime import chat, fanout
from realtime.models import ErrorFrame
from realtime.store import Store

logger = Logger()
metrics = Metrics()
tracer = Tracer()
store = Store.from_env(boto3.resource("dynamodb"))
RETENTION_DAYS = int(os.environ.get("MESSAGE_RETENTION_DAYS", "30"))
PRESENCE_WINDOW_MS = int(os.environ.get("PRESENCE_WINDOW_MS", str(chat.PRESENCE_WINDOW_MS)))


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event carries the token.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    request = event["requestContext"]
    connection_id = request["connectionId"]
    logger.append_keys(connection_id=connection_id)
    body = event.get("body")
    if body and event.get("isBase64Encoded"):
        body = base64.b64decode(body)
    endpoint = fanout.endpoint_of(request)
    room_chat = chat.Chat(
        store,
        fanout.fanout_for(endpoint, store),
        retention_days=RETENTION_DAYS,
        presence_window_ms=PRESENCE_WINDOW_MS,
    )
    try:
        results = room_chat.handle(connection_id, body)
    except Exception:
        logger.exception("frame failed")
        metrics.add_metric(name="InternalErrors", unit=MetricUnit.Count, value=1)
        room_chat.fanout.send(connection_id, ErrorFrame(code="internal", message="Internal error."))
        return {"statusCode": 500}
    fanout.record(metrics, results)
    return {"statusCode": 200}

"""$connect: check the token, register the connection and, with `?room=`, its first room
(stored unannounced: nothing is posted from $connect).

A non-2xx answer makes API Gateway refuse the WebSocket handshake.
"""


import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from realtime import auth, fanout
from realtime.chat import Chat
from realtime.models import is_name
from realtime.store import Store

logger = Logger()
metrics = Metrics()
tracer = Tracer()
store = Store.from_env(boto3.resource("dynamodb"))


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: the event carries the token.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    request = event["requestContext"]
    logger.append_keys(connection_id=request["connectionId"])
    params = event.get("queryStringParameters") or {}
    try:
        identity = auth.verify(auth.secret(), params.get("token"))
    except auth.AuthError as error:
        logger.info("connection refused", reason=str(error))
        metrics.add_metric(name="RefusedConnections", unit=MetricUnit.Count, value=1)
        return {"statusCode": 401, "body": "Unauthorized"}
    room = params.get("room") or None
    if room is not None and not is_name(room):
        metrics.add_metric(name="RefusedConnections", unit=MetricUnit.Count, value=1)
        return {"statusCode": 400, "body": "Invalid room name"}
    chat = Chat(store, fanout.fanout_for(fanout.endpoint_of(request), store))
    # Membership only, no fan-out: see Chat.connect.
    chat.connect(request["connectionId"], identity, room, request.get("connectedAt"))
    metrics.add_metric(name="Connections", unit=MetricUnit.Count, value=1)
    logger.info("connected", user=identity.user, role=identity.role, room=room)
    return {"statusCode": 200}

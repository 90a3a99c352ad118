"""$disconnect: forget the connection and its memberships, tell its rooms."""

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from realtime import fanout
from realtime.chat import Chat
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
    chat = Chat(store, fanout.fanout_for(fanout.endpoint_of(request), store))
    results = chat.disconnect(request["connectionId"])
    fanout.record(metrics, results)
    logger.info(
        "disconnected",
        status_code=request.get("disconnectStatusCode"),
        reason=request.get("disconnectReason"),
    )
    return {"statusCode": 200}

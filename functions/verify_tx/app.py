"""The HTTP API: create and list transactions, verify one exactly once, read weekly income.

Every route is admin-only (a Bearer token); errors are `{"code", "message"}` as in
docs/protocol.md. After a verify, the dashboards get the new absolute totals.
"""

import json
import os
import re
import warnings
from typing import Annotated, Literal

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from realtime import auth, clock, fanout, income, transactions
from realtime.models import NewTransaction
from realtime.store import AlreadyVerified, InvalidCursor, NotFound, Store

logger = Logger()
metrics = Metrics()
tracer = Tracer()
store = Store.from_env(boto3.resource("dynamodb"))
app = APIGatewayHttpResolver(
    enable_validation=True,
    cors=CORSConfig(
        allow_origin="*", allow_headers=["Authorization", "Content-Type", "Idempotency-Key"]
    ),
)
# Reads publish no metrics, by design.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
TRANSACTION_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# Printable ASCII, no spaces: what a UUID, a ULID or any sane key is (RFC draft
# "The Idempotency-Key HTTP Header Field" leaves the format to the server).
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# Powertools idempotency: the first answer to a key is kept for a day (TTL on the table) and
# given again to every retry; a retry with another body is refused (payload validation).
idempotency = IdempotencyConfig(
    event_key_jmespath="[user, key]",
    payload_validation_jmespath="body",
    expires_after_seconds=24 * 3600,
)
persistence = DynamoDBPersistenceLayer(table_name=os.environ.get("IDEMPOTENCY_TABLE", ""))


def problem(status: int, code: str, message: str) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps({"code": code, "message": message}),
    )


def ok(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def require_admin(resolver: APIGatewayHttpResolver, next_middleware):
    header = resolver.current_event.headers.get("authorization")
    try:
        identity = auth.verify(auth.secret(), auth.bearer(header))
    except auth.AuthError as error:
        return problem(401, "unauthorized", str(error))
    if not identity.is_admin:
        return problem(403, "forbidden", "Admins only.")
    resolver.append_context(identity=identity)
    logger.append_keys(user=identity.user)
    return next_middleware(resolver)


app.use(middlewares=[require_admin])


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'body'}: {item.get('msg')}")
    return problem(400, "invalid_request", "; ".join(parts))


@app.exception_handler(InvalidCursor)
def invalid_cursor(error: InvalidCursor) -> Response:
    return problem(400, "invalid_request", f"next: {error}")


@app.exception_handler(transactions.InvalidTransaction)
def invalid_transaction(error: transactions.InvalidTransaction) -> Response:
    return problem(400, "invalid_request", str(error))


@app.not_found
def not_found(_error: Exception) -> Response:
    return problem(404, "not_found", "No such route.")


@app.exception_handler(RecursionError)
def too_deep(_error: RecursionError) -> Response:
    # json.loads recurses once per nesting level: a deeply nested body ends here.
    return problem(400, "invalid_request", "body: JSON nested too deeply")


@app.exception_handler(UnicodeDecodeError)
def not_utf8(_error: UnicodeDecodeError) -> Response:
    # A binary body comes base64-encoded (isBase64Encoded); decoded, JSON must be UTF-8 text.
    return problem(400, "invalid_request", "body: not UTF-8 text")


@app.post("/transactions")
def create_transaction(body: NewTransaction):
    """With an `Idempotency-Key` header, a retry gets the first answer and creates nothing."""
    key = app.current_event.headers.get("idempotency-key")
    if key is None:
        return ok(201, create(body))
    if not IDEMPOTENCY_KEY.fullmatch(key):
        return problem(400, "invalid_request", "Idempotency-Key: 1 to 255 printable characters")
    identity: auth.Identity = app.context["identity"]
    request = {"user": identity.user, "key": key, "body": body.model_dump(mode="json")}
    try:
        return ok(201, create_once(request=request))
    except IdempotencyValidationError:
        return problem(
            422, "idempotency_key_reused", "This Idempotency-Key was used with another body."
        )
    except IdempotencyAlreadyInProgressError:
        return problem(
            409, "in_progress", "A request with this Idempotency-Key is still running; retry."
        )


def create(body: NewTransaction) -> dict:
    created = transactions.create(store, body, clock.now())
    metrics.add_metric(name="TransactionsCreated", unit=MetricUnit.Count, value=1)
    logger.info("transaction created", transaction_id=created.id, amount=created.amount)
    return {"transaction": created.to_wire()}


@idempotent_function(
    data_keyword_argument="request", persistence_store=persistence, config=idempotency
)
def create_once(request: dict) -> dict:
    return create(NewTransaction.model_validate(request["body"]))


@app.get("/transactions")
def list_transactions(
    status: Annotated[Literal["pending", "verified"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(alias="next", max_length=1024)] = None,
):
    page, next_cursor = transactions.list_page(store, status, limit, cursor)
    return ok(200, {"transactions": [t.to_wire() for t in page], "next": next_cursor})


@app.post("/transactions/<transaction_id>/verify")
def verify_transaction(transaction_id: str):
    if not TRANSACTION_ID.fullmatch(transaction_id):
        return problem(404, "not_found", f"No transaction {transaction_id!r}.")
    identity: auth.Identity = app.context["identity"]
    try:
        result = transactions.verify(
            store, transaction_id, identity.user, clock.now(),
            # The template sets the stage's Management API endpoint: no HTTP event carries it.
            fanout.fanout_for(os.environ["MANAGEMENT_API_ENDPOINT"], store)
        )
    except NotFound:
        return problem(404, "not_found", f"No transaction {transaction_id!r}.")
    except AlreadyVerified:
        metrics.add_metric(name="VerifyConflicts", unit=MetricUnit.Count, value=1)
        return problem(
            409, "already_verified", f"Transaction {transaction_id!r} is already verified."
        )
    metrics.add_metric(name="TransactionsVerified", unit=MetricUnit.Count, value=1)
    fanout.record(metrics, [result.push])
    logger.info("transaction verified", transaction_id=transaction_id, week=result.week.week)
    return ok(200, {"transaction": result.transaction.to_wire(), "week": result.week.to_wire()})


@app.get("/income/weekly")
def weekly_income(weeks: Annotated[int, Query(ge=1, le=104)] = income.SERIES_WEEKS):
    current = income.week_of(clock.now())
    series = income.series(store, current, weeks)
    return ok(200, {"currentWeek": current, "weeks": [w.to_wire() for w in series]})


# log_event=False whatever POWERTOOLS_LOGGER_LOG_EVENT says: `Authorization` is in the event.
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: object) -> dict:
    idempotency.register_lambda_context(context)  # in-progress records expire with the call
    return app.resolve(event, context)

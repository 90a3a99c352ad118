"""Local only (local/template.yaml is never deployed): `POST /dev/token` signs a token for
the web client's dev sign-in, with the same secret the app checks."""

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from realtime import auth
from realtime.models import TokenRequest

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True, cors=CORSConfig(allow_origin="*"))


@app.exception_handler(RequestValidationError)
def invalid_request(error: RequestValidationError) -> Response:
    message = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in error.errors()
    )
    return Response(
        status_code=400,
        content_type="application/json",
        body=json.dumps({"code": "invalid_request", "message": message}),
    )


@app.post("/dev/token")
def dev_token(body: TokenRequest) -> dict:
    return {"token": auth.issue(auth.secret(), body.user, body.role)}


@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    return app.resolve(event, context)

"""apigw-local: a SAM template's WebSocket and HTTP APIs, served locally as API Gateway does."""

__version__ = "0.1.0"

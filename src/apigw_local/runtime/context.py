"""The `context` object handed to handlers, with the attributes of Lambda's Python runtime.

See "Using the Lambda context object to retrieve Python function information" in the Lambda
developer guide. Stdlib only (it runs inside the worker).
"""

from __future__ import annotations

import time
from typing import Any


class LambdaContext:
    """What Lambda passes as the second handler argument.

    `get_remaining_time_in_millis()` counts down to the invocation's real deadline (the
    function's Timeout after the invocation started), as Lambda's does.
    """

    __slots__ = (
        "aws_request_id",
        "function_name",
        "function_version",
        "invoked_function_arn",
        "memory_limit_in_mb",
        "log_group_name",
        "log_stream_name",
        "identity",
        "client_context",
        "_deadline_ms",
    )

    def __init__(
        self,
        *,
        aws_request_id: str,
        deadline_ms: float,
        function_name: str,
        function_version: str,
        invoked_function_arn: str,
        memory_limit_in_mb: str,
        log_group_name: str,
        log_stream_name: str,
        identity: Any = None,
        client_context: Any = None,
    ) -> None:
        self.aws_request_id = aws_request_id
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        # Lambda's Python runtime passes the memory limit as a string, from the env var.
        self.memory_limit_in_mb = memory_limit_in_mb
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        self.identity = identity
        self.client_context = client_context
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(int(self._deadline_ms - time.time() * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r})"
        )

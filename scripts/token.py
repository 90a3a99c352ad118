"""Print a signed token for the app: `python -m scripts.token --user alice --role admin`.

The key comes from the environment (`AUTH_SECRET`): `make token` passes the local one. For a
deployed stack, `--stack NAME` reads it from the stack's secret instead (its `AuthSecretArn`
output; CloudFormation DescribeStacks and Secrets Manager GetSecretValue with your AWS
credentials): `make token STACK=realtime-app`.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# The token format lives in the Lambda layer; use that very code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers" / "shared"))

from realtime import auth  # noqa: E402

from scripts.web_config import explain, samconfig_defaults  # noqa: E402


def stack_secret_arn(stack: str, cloudformation: Any) -> str:
    """The ARN of a deployed stack's token key: its AuthSecretArn output."""
    outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    arns = [o["OutputValue"] for o in outputs if o["OutputKey"] == "AuthSecretArn"]
    if not arns:
        raise KeyError(f"stack {stack!r} has no AuthSecretArn output")
    return arns[0]


# What a call about a deployed stack can fail with: AWS's answer, no credentials or region,
# or a stack without the output.
STACK_ERRORS = (ClientError, BotoCoreError, KeyError, IndexError)


def stack_clients(region: str | None, clients: tuple[Any, Any] | None = None
                  ) -> tuple[Any, Any]:
    """CloudFormation and Secrets Manager clients for `region` (or the ones given, in tests)."""
    return clients or (boto3.client("cloudformation", region_name=region),
                       boto3.client("secretsmanager", region_name=region))


def stack_secret(stack: str, cloudformation: Any, secretsmanager: Any) -> str:
    """The token key of a deployed stack, from the secret its AuthSecretArn output names."""
    arn = stack_secret_arn(stack, cloudformation)
    return secretsmanager.get_secret_value(SecretId=arn)["SecretString"]


def main(argv: list[str] | None = None, clients: tuple[Any, Any] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.token", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--user", required=True, help="user id and display name ([A-Za-z0-9_-]{1,64})"
    )
    parser.add_argument("--role", default="user", choices=auth.ROLES)
    parser.add_argument("--hours", type=float, default=12, help="validity (default 12)")
    parser.add_argument("--stack", help="sign with this deployed stack's key")
    parser.add_argument("--region", default=samconfig_defaults().get("region"))
    args = parser.parse_args(argv)
    if args.stack:
        try:
            secret = stack_secret(args.stack, *stack_clients(args.region, clients))
        except STACK_ERRORS as error:
            print(f"error: cannot read the key of stack {args.stack!r}: {explain(error)}",
                  file=sys.stderr)
            return 2
    else:
        secret = os.environ.get("AUTH_SECRET", "")
    if not secret:
        print(
            "error: AUTH_SECRET is not set (use `make token`, or --stack for a deployed stack)",
            file=sys.stderr,
        )
        return 2
    try:
        print(auth.issue(secret, args.user, args.role, ttl=timedelta(hours=args.hours)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

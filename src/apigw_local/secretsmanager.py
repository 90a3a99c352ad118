"""Secrets Manager for the local stack: the template's secrets put into the backend at start,
as tables are, so functions read them the AWS way (GetSecretValue on the ARN that `Ref`
gives them, through the local endpoint).

The ARN is made up by the template reader, with a six-character suffix as Secrets Manager
gives one ("Secret ARN" in the Secrets Manager user guide). moto names a new secret's suffix
after its `_custom_id_` tag, so moto answers to that very ARN; a backend that ignores the
tag chooses its own, and then the functions cannot find the secret by its ARN: said in one
warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from .model import Secret

__all__ = ["provision_secrets"]

log = logging.getLogger(__name__)

CUSTOM_ID_TAG = "_custom_id_"  # moto: the tag whose value becomes the resource's id


def provision_secrets(
    endpoint_url: str | None,
    secrets: Iterable[Secret],
    *,
    region: str = "us-east-1",
    credentials: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Create the missing secrets; give existing ones the template's value (a generated
    value already there is kept). Returns {logical id: "created" | "updated" | "kept"}."""
    client: Any = boto3.client("secretsmanager", endpoint_url=endpoint_url, region_name=region,
                               **(credentials or {}))
    outcome: dict[str, str] = {}
    for secret in secrets:
        suffix = secret.arn.rsplit("-", 1)[1]
        try:
            client.create_secret(Name=secret.name, SecretString=secret.value,
                                 Tags=[{"Key": CUSTOM_ID_TAG, "Value": suffix}])
            outcome[secret.logical_id] = "created"
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            if secret.generated:
                outcome[secret.logical_id] = "kept"
            else:
                client.put_secret_value(SecretId=secret.name, SecretString=secret.value)
                outcome[secret.logical_id] = "updated"
        arn = client.describe_secret(SecretId=secret.name)["ARN"]
        if arn != secret.arn:
            log.warning("secret %s is %s on %s, not %s: functions given its Ref will not "
                        "find it", secret.logical_id, arn, endpoint_url, secret.arn)
    return outcome

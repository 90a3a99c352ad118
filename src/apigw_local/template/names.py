"""Resource kinds and the names AWS gives resources, as a local stack can reproduce them.

`Ref` to a function gives its name (FunctionName, else the logical id), to a table its
TableName (else "{stack}-{logical id}"), to an API its id (`api_id_for`); `Fn::GetAtt Fn.Arn`
is an ARN in the stack's region and account.
"""

from __future__ import annotations

import hashlib

FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})
LAYER_TYPES = frozenset({"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"})
TABLE_TYPES = frozenset({"AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"})
API_TYPES = frozenset({"AWS::ApiGatewayV2::Api", "AWS::Serverless::HttpApi"})
SECRET_TYPE = "AWS::SecretsManager::Secret"
V2_CHILD_TYPES = frozenset({
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::RouteResponse",
    "AWS::ApiGatewayV2::Stage",
})
IMPLICIT_HTTP_API = "ServerlessHttpApi"  # SAM's implicit API for HttpApi events without ApiId
# Resource types that only matter in AWS: skipped without a word.
SILENT_PREFIXES = (
    "AWS::Lambda::Permission",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::Version",
    "AWS::Lambda::Alias",
    "AWS::ApiGatewayV2::Deployment",
    "AWS::ApiGatewayV2::ApiMapping",
    "AWS::ApiGatewayV2::DomainName",
    "AWS::ApiGatewayV2::IntegrationResponse",
    "AWS::ApiGatewayV2::Model",
    "AWS::ApiGateway::Account",
    "AWS::IAM::",
    "AWS::Logs::",
    "AWS::CloudWatch::",
    "AWS::ApplicationAutoScaling::",
    "AWS::SSM::",
    "AWS::KMS::",
    "AWS::CertificateManager::",
    "AWS::Route53::",
    "AWS::S3::",
    "AWS::CloudFront::",
)
_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"


def api_id_for(logical_id: str) -> str:
    """A stable 10-character lowercase alphanumeric id for a resource, like AWS's API ids."""
    number = int.from_bytes(hashlib.sha256(logical_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(10):
        number, digit = divmod(number, 36)
        chars.append(_ALNUM[digit])
    return "".join(chars)


def function_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}"


def layer_arn(region: str, account_id: str, logical_id: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:layer:{logical_id}:1"


def secret_arn(region: str, account_id: str, name: str) -> str:
    # Secrets Manager appends "-" and six random characters; a stable six here.
    return f"arn:aws:secretsmanager:{region}:{account_id}:secret:{name}-{api_id_for(name)[:6]}"


def execute_api_host(api_id: str, region: str) -> str:
    return f"{api_id}.execute-api.{region}.amazonaws.com"

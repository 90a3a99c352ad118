"""template.yaml and the local overlay: cfn-lint clean, SAM-transformable, least privilege."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from app_support import ROOT, TABLE_ENV, load_function, table_definitions, template
from realtime import income
from realtime.models import Transaction
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

FUNCTIONS = ("ConnectFunction", "MessageFunction", "DisconnectFunction", "VerifyTxFunction")


class StubPolicyLoader:
    """SAM asks for managed policy ARNs (Tracing adds AWSXrayWriteOnlyAccess)."""

    def load(self) -> dict[str, str]:
        return {
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
            "AWSLambdaBasicExecutionRole": (
                "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
            ),
        }


def packaged(doc: dict) -> dict:
    """What `sam package` does before the transform: local code directories become S3 URIs."""
    for resource in doc["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = f"s3://artifacts/{resource['Properties'][key]}.zip"
    return doc


@pytest.fixture(scope="module")
def transformed() -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # SAM fills in AWS::Region
        return transform(packaged(template()), {"AuthSecret": "s" * 32}, StubPolicyLoader())


def resources_of(doc: dict, rtype: str) -> dict:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == rtype}


def test_cfn_lint_reports_nothing():
    lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(lint), str(ROOT / "template.yaml")], capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_sam_transform_makes_functions_roles_and_http_routes(transformed):
    functions = resources_of(transformed, "AWS::Lambda::Function")
    assert set(FUNCTIONS) <= set(functions)
    for name in FUNCTIONS:
        props = functions[name]["Properties"]
        assert props["Runtime"] == "python3.13" and props["Handler"] == "app.lambda_handler"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Layers"] == [
            {"Ref": next(iter(resources_of(transformed, "AWS::Lambda::LayerVersion")))}
        ]
    body = transformed["Resources"]["HttpApi"]["Properties"]["Body"]
    assert set(body["paths"]) == {"/transactions", "/transactions/{id}/verify", "/income/weekly"}
    assert set(body["paths"]["/transactions"]) == {"get", "post"}
    # The hosted web client's origin, plus AllowedOrigins when there are any.
    condition, cors, hosted_only = body["x-amazon-apigateway-cors"]["Fn::If"]
    assert condition == "HasAllowedOrigins"
    assert cors["allowOrigins"] == {"Fn::Split": [",", {"Fn::Sub": (
        "https://${WebDistribution.DomainName},http://localhost:3000,http://127.0.0.1:3000"
    )}]}
    assert hosted_only["allowOrigins"] == [{"Fn::Sub": "https://${WebDistribution.DomainName}"}]
    for config in (cors, hosted_only):
        # idempotency-key: POST /transactions honours it (docs/protocol.md).
        assert config["allowHeaders"] == ["authorization", "content-type", "idempotency-key"]


@pytest.mark.parametrize(
    ("origins", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://a.example.com,http://localhost:3000", True),
        ("*", False),
        ("https://a.example.com,*", False),
        ("https://*.example.com", False),
        ("", True),  # no CORS at all
        ("app.example.com", False),
        ("https://a.example.com,", False),
    ],
)
def test_cors_origins_are_a_parameter_that_refuses_a_wildcard(origins, allowed):
    parameter = template()["Parameters"]["AllowedOrigins"]
    assert bool(re.fullmatch(parameter["AllowedPattern"], origins)) is allowed
    assert re.fullmatch(parameter["AllowedPattern"], parameter["Default"])


def statements(doc: dict, function: str) -> list[dict]:
    role = doc["Resources"][f"{function}Role"]["Properties"]
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def test_manage_connections_is_scoped_to_the_stage(transformed):
    for function in ("MessageFunction", "DisconnectFunction", "VerifyTxFunction"):
        [grant] = [
            s
            for s in statements(transformed, function)
            if "execute-api:ManageConnections" in json.dumps(s["Action"])
        ]
        resource = grant["Resource"]["Fn::Sub"]
        assert resource.endswith(":${WebSocketApi}/${StageName}/POST/@connections/*")


def test_no_wildcard_actions_or_resources(transformed):
    for function in FUNCTIONS:
        for statement in statements(transformed, function):
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert all("*" not in a for a in actions), (function, actions)
            assert statement["Resource"] != "*"
            assert all(
                not a.startswith("dynamodb:")
                or a
                in {
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:Query",
                }
                for a in actions
            )


def granted(doc: dict, function: str) -> set[tuple[str, str]]:
    """(action, resource) pairs: a resource is the logical id of a GetAtt's or Ref's target,
    or a Sub's pattern."""
    pairs = set()
    for s in statements(doc, function):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for r in resources:
            target = r
            if isinstance(r, dict):
                [(fn, arg)] = r.items()
                target = {"Fn::GetAtt": lambda a: a[0], "Ref": str, "Fn::Sub": str}[fn](arg)
            pairs |= {(a, target) for a in actions}
    return pairs


MEMBERSHIPS_BY_CONNECTION = "${MembershipsTable.Arn}/index/byConnection"
MANAGE = "execute-api:ManageConnections"
STAGE_CONNECTIONS = (
    "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
    "${WebSocketApi}/${StageName}/POST/@connections/*"
)
READ_SECRET = ("secretsmanager:GetSecretValue", "AuthTokenSecret")
# What a fan-out needs: query the members, post to them, and delete a gone connection
# (its memberships through byConnection, then the connection).
FANOUT = {
    ("dynamodb:Query", "MembershipsTable"),
    ("dynamodb:Query", MEMBERSHIPS_BY_CONNECTION),
    ("dynamodb:DeleteItem", "MembershipsTable"),
    ("dynamodb:DeleteItem", "ConnectionsTable"),
    (MANAGE, STAGE_CONNECTIONS),
}


def test_each_function_gets_exactly_what_it_calls(transformed):
    """Each grant traced to a call: layers/shared/realtime/store.py and fanout.py."""
    expected = {
        # put_connection, add_member(announce=False); the token key. Nothing else.
        "ConnectFunction": {
            ("dynamodb:PutItem", "ConnectionsTable"),
            ("dynamodb:PutItem", "MembershipsTable"),
            READ_SECRET,
        },
        # get_connection and its send sequence (UpdateItem); join/leave/is_member and the
        # presence window; send (a retry reads its claim: GetItem)/history; subscribe's
        # income snapshot (TransactGetItems: GetItem).
        "MessageFunction": FANOUT | {
            ("dynamodb:GetItem", "ConnectionsTable"),
            ("dynamodb:UpdateItem", "ConnectionsTable"),
            ("dynamodb:GetItem", "MembershipsTable"),
            ("dynamodb:PutItem", "MembershipsTable"),
            ("dynamodb:GetItem", "MessagesTable"),
            ("dynamodb:PutItem", "MessagesTable"),
            ("dynamodb:Query", "MessagesTable"),
            ("dynamodb:GetItem", "WeeklyIncomeTable"),
        },
        # get_connection, remove_connection, tell its rooms.
        "DisconnectFunction": FANOUT | {("dynamodb:GetItem", "ConnectionsTable")},
        # create/get/list; verify is TransactWriteItems of three UpdateItems; weekly totals
        # and the income snapshot (TransactGetItems); the dashboard push; the admin token;
        # Powertools idempotency's records.
        "VerifyTxFunction": FANOUT | {
            ("dynamodb:GetItem", "IdempotencyTable"),
            ("dynamodb:PutItem", "IdempotencyTable"),
            ("dynamodb:UpdateItem", "IdempotencyTable"),
            ("dynamodb:DeleteItem", "IdempotencyTable"),
            ("dynamodb:GetItem", "WeeklyIncomeTable"),
            ("dynamodb:PutItem", "TransactionsTable"),
            ("dynamodb:GetItem", "TransactionsTable"),
            ("dynamodb:UpdateItem", "TransactionsTable"),
            ("dynamodb:Query", "${TransactionsTable.Arn}/index/byStatus"),
            ("dynamodb:Query", "${TransactionsTable.Arn}/index/byCreated"),
            ("dynamodb:UpdateItem", "WeeklyIncomeTable"),
            ("dynamodb:Query", "WeeklyIncomeTable"),
            READ_SECRET,
        },
    }
    for function, grants in expected.items():
        assert granted(transformed, function) == grants, function


def test_the_token_key_is_a_secret_read_at_run_time():
    doc = template()
    resources = doc["Resources"]
    secret = resources["AuthTokenSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["SecretString"] == {"Ref": "AuthSecret"}
    # Nothing hands the key itself to a function: only the secret's ARN.
    for lid, resource in resources.items():
        assert "AuthSecret" not in json.dumps(resource).replace('"Ref": "AuthSecret"}', "")
        if lid != "AuthTokenSecret":
            assert {"Ref": "AuthSecret"} not in _values(resource), lid
    assert {"Ref": "AuthSecret"} not in _values(doc["Globals"])
    for name in ("ConnectFunction", "VerifyTxFunction"):
        env = resources[name]["Properties"]["Environment"]["Variables"]
        assert env["AUTH_SECRET_ARN"] == {"Ref": "AuthTokenSecret"}


def _values(node) -> list:
    """Every mapping and scalar nested in `node`."""
    out = [node]
    if isinstance(node, dict):
        for value in node.values():
            out.extend(_values(value))
    elif isinstance(node, list):
        for value in node:
            out.extend(_values(value))
    return out


def test_every_function_logs_to_a_group_with_retention(transformed):
    resources = transformed["Resources"]
    for function in FUNCTIONS:
        config = resources[function]["Properties"]["LoggingConfig"]
        group = resources[config["LogGroup"]["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_both_stages_write_access_logs_and_throttle(transformed):
    stages = resources_of(transformed, "AWS::ApiGatewayV2::Stage")
    assert set(stages) == {"WebSocketStage", "HttpApiApiGatewayDefaultStage"}
    for stage in stages.values():
        props = stage["Properties"]
        destination = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"]
        assert transformed["Resources"][destination[0]]["Type"] == "AWS::Logs::LogGroup"
        assert json.loads(props["AccessLogSettings"]["Format"])["requestId"] == (
            "$context.requestId"
        )
        throttle = props["DefaultRouteSettings"]
        assert throttle["ThrottlingBurstLimit"] > 0 and throttle["ThrottlingRateLimit"] > 0
    # WebSocket access logs need the account's CloudWatch role: made here unless it exists.
    account = transformed["Resources"]["ApiGatewayAccount"]
    assert account["Condition"] == "CreatesApiGatewayLogRole"


def test_tables_are_encrypted_and_the_ledger_protected():
    for lid, props in table_definitions().items():
        assert props["SSESpecification"] == {"SSEEnabled": True}, lid
        ledger = lid in ("TransactionsTable", "WeeklyIncomeTable")
        assert props.get("DeletionProtectionEnabled", False) is ledger, lid
        if ledger:
            assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
            assert template()["Resources"][lid]["DeletionPolicy"] == "Retain"


def test_alarms_watch_errors_throttles_failed_posts_and_tables():
    doc = template()
    alarms = {
        lid: r["Properties"]
        for lid, r in doc["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    watched: dict[str, set] = {}
    for lid, alarm in alarms.items():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }, lid
        for query in alarm.get("Metrics", []):
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                [dimension] = metric["Dimensions"]
                watched.setdefault(metric["MetricName"], set()).add(dimension["Value"]["Ref"])
    functions = set(FUNCTIONS)
    assert watched["Errors"] == watched["Throttles"] == functions
    assert watched["ReadThrottleEvents"] == watched["WriteThrottleEvents"] == set(TABLE_ENV)
    # The app's own metric, under the namespace and service the functions publish with.
    posts = alarms["FailedPostsAlarm"]
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert posts["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"]
    assert posts["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]


def test_the_web_client_is_private_in_s3_and_served_by_cloudfront_alone():
    resources = template()["Resources"]
    bucket = resources["WebBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    distribution = resources["WebDistribution"]["Properties"]["DistributionConfig"]
    [origin] = distribution["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["WebOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert distribution["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    oac = resources["WebOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["SigningBehavior"], oac["SigningProtocol"]) == ("always", "sigv4")
    read, tls = resources["WebBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Action"] == "s3:GetObject"
    assert read["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"].endswith(
        ":distribution/${WebDistribution}")
    assert (tls["Effect"], tls["Condition"]) == (
        "Deny", {"Bool": {"aws:SecureTransport": "false"}})
    assert set(template()["Outputs"]) >= {"WebUrl", "WebBucketName", "WebDistributionId"}


def test_arns_name_the_partition():
    text = (ROOT / "template.yaml").read_text()
    assert "arn:aws:" not in text


def test_every_checkov_skip_says_why():
    skips = [
        skip
        for r in template()["Resources"].values()
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips and all(s["id"].startswith("CKV") and len(s["comment"]) > 10 for s in skips)


def test_websocket_api_routes_stage_and_permissions():
    resources = template()["Resources"]
    [api] = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]["Target"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }
    assert set(routes) == {"$connect", "$default", "$disconnect"}
    integrations = {
        lid: r["Properties"]
        for lid, r in resources.items()
        if r["Type"] == "AWS::ApiGatewayV2::Integration"
    }
    for target in routes.values():
        integration = integrations[target["Fn::Sub"].removeprefix("integrations/${").rstrip("}")]
        assert integration["IntegrationType"] == "AWS_PROXY"
    deployment = next(r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Deployment")
    assert len(deployment["DependsOn"]) == 3
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert {p["Properties"]["FunctionName"]["Ref"] for p in permissions} == {
        "ConnectFunction",
        "MessageFunction",
        "DisconnectFunction",
    }
    outputs = template()["Outputs"]
    assert outputs["WebSocketUrl"]["Value"]["Fn::Sub"].startswith("wss://${WebSocketApi}.")
    assert outputs["ManagementApiEndpoint"]["Value"]["Fn::Sub"].endswith("/${StageName}")
    env = resources["VerifyTxFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MANAGEMENT_API_ENDPOINT"]["Fn::Sub"] == (
        "https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"
    )


def test_tables_are_on_demand_with_ttl_where_ephemeral():
    tables = table_definitions()
    assert set(tables) == set(TABLE_ENV)
    assert all(t["BillingMode"] == "PAY_PER_REQUEST" for t in tables.values())
    ttl = {lid for lid, t in tables.items() if t.get("TimeToLiveSpecification", {}).get("Enabled")}
    assert ttl == {"ConnectionsTable", "MembershipsTable", "MessagesTable", "IdempotencyTable"}
    assert tables["IdempotencyTable"]["TimeToLiveSpecification"]["AttributeName"] == "expiration"
    memberships = tables["MembershipsTable"]
    assert [k["AttributeName"] for k in memberships["KeySchema"]] == ["target", "connectionId"]
    assert memberships["GlobalSecondaryIndexes"][0]["IndexName"] == "byConnection"


def test_auth_secret_is_a_noecho_parameter():
    params = template()["Parameters"]
    assert params["AuthSecret"]["NoEcho"] is True and params["AuthSecret"]["MinLength"] == 32
    assert params["StageName"]["Default"] == "dev"


def test_no_code_branches_on_local():
    for path in [*ROOT.glob("functions/*/app.py"), *ROOT.glob("layers/shared/realtime/*.py")]:
        text = path.read_text().lower()
        assert "localhost" not in text and "127.0.0.1" not in text and "is_local" not in text, path


# --- the local overlay and the seed -------------------------------------------------------


def test_local_overlay_adds_the_dev_token_route():
    overlay = yaml_parse((ROOT / "local" / "template.yaml").read_text())
    function = overlay["Resources"]["DevTokenFunction"]["Properties"]
    assert (ROOT / "local" / function["CodeUri"] / "app.py").is_file()
    assert function["Layers"] == [{"Ref": "SharedLayer"}]
    assert function["Environment"]["Variables"] == {
        "AUTH_SECRET_ARN": {"Ref": "AuthTokenSecret"},
        "POWERTOOLS_SERVICE_NAME": "realtime-dev-token",
    }
    event = function["Events"]["DevToken"]["Properties"]
    assert (event["Path"], event["Method"]) == ("/dev/token", "POST")
    assert event["ApiId"] == {"Ref": "HttpApi"}  # the app's HTTP API, with its CORS


@pytest.mark.parametrize("today", ["2026-11-25T12:00:00+00:00", "2027-01-02T12:00:00+00:00"])
def test_seed_is_consistent(store, today):
    generator = load_function("seed", ROOT / "local" / "seed.py")
    seed = json.loads(json.dumps(generator.build(datetime.fromisoformat(today))))
    current = income.week_of(datetime.fromisoformat(today))
    assert all(w in income.weeks_ending(current, income.SERIES_WEEKS)
               for w in {t["week"] for t in seed["TransactionsTable"]})
    assert set(seed) <= set(TABLE_ENV)
    sums: dict[str, list[int]] = {}
    for t in seed["TransactionsTable"]:
        created = datetime.fromisoformat(t["createdAt"].replace("Z", "+00:00"))
        assert t["week"] == income.week_of(created)
        assert isinstance(t["amount"], int) and t["amount"] > 0
        assert t["kind"] == "transaction" and t["status"] in ("pending", "verified")
        if t["status"] == "verified":
            s = sums.setdefault(t["week"], [0, 0])
            s[0] += t["amount"]
            s[1] += 1
        store.put_transaction(Transaction.model_validate(t))
    assert len({t["week"] for t in seed["TransactionsTable"]}) >= 3
    assert any(t["status"] == "pending" for t in seed["TransactionsTable"])
    assert {w["week"]: [w["total"], w["count"]] for w in seed["WeeklyIncomeTable"]} == sums
    listed, _ = store.list_transactions("pending", 100, None)  # the seed fits the indexes
    assert len(listed) == sum(t["status"] == "pending" for t in seed["TransactionsTable"])

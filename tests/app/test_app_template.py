"""template.yaml and the local overlay: cfn-lint clean, SAM-transformable, least privilege."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from app_support import ROOT, TABLE_ENV, load_function, table_definitions, template
from realtime import income
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
    routes = transformed["Resources"]["ServerlessHttpApi"]["Properties"]["Body"]["paths"]
    assert set(routes) == {"/transactions", "/transactions/{id}/verify", "/income/weekly"}
    assert set(routes["/transactions"]) == {"get", "post"}
    cors = transformed["Resources"]["ServerlessHttpApi"]["Properties"]["Body"][
        "x-amazon-apigateway-cors"
    ]
    assert cors["allowOrigins"] == ["*"] and "authorization" in cors["allowHeaders"]


def statements(doc: dict, function: str) -> list[dict]:
    role = doc["Resources"][f"{function}Role"]["Properties"]
    return [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def test_manage_connections_is_scoped_to_the_stage(transformed):
    for function in FUNCTIONS:
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
    pairs = set()
    for s in statements(doc, function):
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for r in resources:
            target = r.get("Fn::GetAtt", [None])[0] if isinstance(r, dict) else r
            if isinstance(r, dict) and "Fn::Sub" in r:
                target = r["Fn::Sub"]
            pairs |= {(a, str(target)) for a in actions}
    return pairs


def test_each_function_gets_only_what_it_uses(transformed):
    connect, message = (
        granted(transformed, "ConnectFunction"),
        granted(transformed, "MessageFunction"),
    )
    disconnect, verify = (
        granted(transformed, "DisconnectFunction"),
        granted(transformed, "VerifyTxFunction"),
    )
    assert ("dynamodb:PutItem", "ConnectionsTable") in connect
    assert not any(t == "MessagesTable" or t == "TransactionsTable" for _, t in connect)
    assert ("dynamodb:PutItem", "MessagesTable") in message
    assert not any("Transactions" in t for _, t in message)
    assert not any(a == "dynamodb:PutItem" for a, _ in disconnect)
    assert ("dynamodb:UpdateItem", "TransactionsTable") in verify
    assert ("dynamodb:UpdateItem", "WeeklyIncomeTable") in verify
    assert not any(t == "MessagesTable" for _, t in verify)


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
    assert ttl == {"ConnectionsTable", "MembershipsTable", "MessagesTable"}
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
    assert function["Environment"]["Variables"]["AUTH_SECRET"] == {"Ref": "AuthSecret"}
    event = function["Events"]["DevToken"]["Properties"]
    assert (event["Path"], event["Method"]) == ("/dev/token", "POST")
    assert overlay["Parameters"]["AuthSecret"]["NoEcho"] is True


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
        store.put_transaction(t)
    assert len({t["week"] for t in seed["TransactionsTable"]}) >= 3
    assert any(t["status"] == "pending" for t in seed["TransactionsTable"])
    assert {w["week"]: [w["total"], w["count"]] for w in seed["WeeklyIncomeTable"]} == sums
    listed, _ = store.list_transactions("pending", 100, None)  # the seed fits the indexes
    assert len(listed) == sum(t["status"] == "pending" for t in seed["TransactionsTable"])

"""scripts/token.py, scripts/web_config.py and the local-only dev token function."""

from __future__ import annotations

import json

import boto3
import pytest
from app_support import ROOT, SECRET, LambdaContext, http_event, load_function
from botocore.stub import Stubber
from realtime import auth

from scripts import token as token_script
from scripts import web_config


def test_token_script_prints_a_valid_token(capsys):
    assert token_script.main(["--user", "alice", "--role", "admin"]) == 0
    printed = capsys.readouterr().out.strip()
    assert auth.verify(SECRET, printed) == auth.Identity("alice", "admin")


def test_token_script_needs_the_secret(capsys, monkeypatch):
    monkeypatch.delenv("AUTH_SECRET")
    assert token_script.main(["--user", "alice"]) == 2
    assert "AUTH_SECRET" in capsys.readouterr().err


def test_token_script_signs_with_a_deployed_stacks_secret(capsys, monkeypatch):
    monkeypatch.delenv("AUTH_SECRET")
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbCdEf"
    deployed_key = "k" * 48
    with Stubber(cloudformation) as cfn, Stubber(secretsmanager) as sm:
        cfn.add_response(
            "describe_stacks",
            describe_stacks_answer("app", [{"OutputKey": "AuthSecretArn", "OutputValue": arn}]),
            {"StackName": "app"},
        )
        sm.add_response("get_secret_value", {"ARN": arn, "SecretString": deployed_key},
                        {"SecretId": arn})
        cfn.add_response("describe_stacks", describe_stacks_answer("old", []),
                         {"StackName": "old"})
        clients = (cloudformation, secretsmanager)
        assert token_script.main(["--user", "bob", "--role", "admin", "--stack", "app"],
                                 clients) == 0
        printed = capsys.readouterr().out.strip()
        assert auth.verify(deployed_key, printed) == auth.Identity("bob", "admin")
        assert token_script.main(["--user", "bob", "--stack", "old"], clients) == 2
        assert "no AuthSecretArn output" in capsys.readouterr().err


def test_token_script_rejects_bad_names(capsys):
    assert token_script.main(["--user", "a b"]) == 2
    with pytest.raises(SystemExit):
        token_script.main(["--user", "alice", "--role", "root"])


def describe_stacks_answer(stack: str, outputs: list[dict]) -> dict:
    return {
        "Stacks": [
            {
                "StackName": stack,
                "CreationTime": "2026-11-25T00:00:00Z",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": outputs,
            }
        ]
    }


def test_web_config_prints_the_outputs_and_writes_the_config(tmp_path, capsys):
    client = boto3.client("cloudformation", region_name="us-east-1")
    outputs = [
        {"OutputKey": "WebSocketUrl", "OutputValue": "wss://a.example/dev"},
        {"OutputKey": "HttpApiUrl", "OutputValue": "https://b.example"},
        {"OutputKey": "ManagementApiEndpoint", "OutputValue": "https://a.example/dev"},
    ]
    with Stubber(client) as stub:
        stub.add_response("describe_stacks", describe_stacks_answer("app", outputs),
                          {"StackName": "app"})
        stub.add_client_error("describe_stacks", "ValidationError", "Stack does not exist")
        target = tmp_path / "config.json"
        assert web_config.main(["--stack", "app", "--output", str(target)], client) == 0
        assert json.loads(target.read_text()) == {
            "websocketUrl": "wss://a.example/dev",
            "httpApiUrl": "https://b.example",
        }
        printed = capsys.readouterr().out
        assert "ManagementApiEndpoint  https://a.example/dev" in printed
        assert web_config.main(["--stack", "nope", "--output", str(target)], client) == 2
        assert "Stack does not exist" in capsys.readouterr().err


def test_web_config_takes_stack_and_region_from_samconfig(tmp_path, capsys):
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "from-config"\n'
        '[default.deploy.parameters]\nregion = "eu-west-1"\n'
    )
    assert web_config.samconfig_defaults(samconfig) == {
        "stack_name": "from-config", "region": "eu-west-1"
    }
    # The committed samconfig.toml names the stack that `make deploy` creates.
    assert web_config.samconfig_defaults()["stack_name"] == "realtime-app"
    client = boto3.client("cloudformation", region_name="eu-west-1")
    outputs = [
        {"OutputKey": "WebSocketUrl", "OutputValue": "wss://c.example/dev"},
        {"OutputKey": "HttpApiUrl", "OutputValue": "https://d.example"},
    ]
    with Stubber(client) as stub:
        stub.add_response("describe_stacks", describe_stacks_answer("from-config", outputs),
                          {"StackName": "from-config"})
        target = tmp_path / "config.json"
        assert web_config.main(["--output", str(target)], client, samconfig) == 0
    assert json.loads(target.read_text())["httpApiUrl"] == "https://d.example"
    assert web_config.main([], client, tmp_path / "missing.toml") == 2
    assert "no stack name" in capsys.readouterr().err


def test_dev_token_function(dynamodb):
    module = load_function("dev_token", ROOT / "local" / "dev_token" / "app.py")

    def call(body):
        response = module.lambda_handler(
            http_event("POST", "/dev/token", body=body), LambdaContext()
        )
        return response["statusCode"], json.loads(response["body"])

    status, body = call({"user": "bob", "role": "admin"})
    assert status == 200 and auth.verify(SECRET, body["token"]) == auth.Identity("bob", "admin")
    assert auth.verify(SECRET, call({"user": "eve"})[1]["token"]).role == "user"
    for bad in ({"user": "bad name"}, {"user": "x", "role": "root"}, {}, {"user": "x" * 65}):
        status, body = call(bad)
        assert (status, body["code"]) == (400, "invalid_request")

"""scripts/token.py, scripts/web_config.py and the local-only dev token function."""

from __future__ import annotations

import json

import boto3
import pytest
from app_support import ROOT, SECRET, LambdaContext, http_event, load_function
from botocore.stub import ANY, Stubber
from realtime import auth

from scripts import rotate_secret, web_config
from scripts import token as token_script


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


def test_rotate_secret_stores_a_key_made_by_secrets_manager(capsys, monkeypatch):
    """The new key is made and stored by Secrets Manager: old tokens stop verifying, and the
    key is in no argument and nothing printed."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
        old_key = "o" * 48
        arn = secretsmanager.create_secret(Name="key", SecretString=old_key)["ARN"]
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        with Stubber(cloudformation) as cfn:
            cfn.add_response(
                "describe_stacks",
                describe_stacks_answer("app", [{"OutputKey": "AuthSecretArn",
                                                "OutputValue": arn}]),
                {"StackName": "app"})
            cfn.add_response("describe_stacks", describe_stacks_answer("old", []),
                             {"StackName": "old"})
            clients = (cloudformation, secretsmanager)
            assert rotate_secret.main(["--stack", "app"], clients) == 0
            new_key = secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
            assert len(new_key) == rotate_secret.KEY_LENGTH and new_key.isalnum()
            old_token = auth.issue(old_key, "bob", "admin")
            with pytest.raises(auth.AuthError):
                auth.verify(new_key, old_token)
            printed = capsys.readouterr()
            assert arn in printed.out and new_key not in printed.out + printed.err
            assert rotate_secret.main(["--stack", "old"], clients) == 2
            assert "no AuthSecretArn output" in capsys.readouterr().err
            assert secretsmanager.get_secret_value(SecretId=arn)["SecretString"] == new_key


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


def test_web_publish_uploads_the_client_and_its_config_then_invalidates(tmp_path, capsys):
    from moto import mock_aws

    from scripts import web_publish

    web = tmp_path / "web"
    (web / "js").mkdir(parents=True)
    (web / "node_modules" / "chart.js" / "dist").mkdir(parents=True)
    (web / "index.html").write_text(
        '<script src="node_modules/chart.js/dist/chart.umd.js"></script>'
        '<script type="module" src="js/app.js"></script>'
    )
    (web / "js" / "app.js").write_text("export {};")
    (web / "node_modules" / "chart.js" / "dist" / "chart.umd.js").write_text("/* chart */")
    (web / "node_modules" / "chart.js" / "package.json").write_text("{}")
    (web / "package.json").write_text("{}")
    (web / "config.json").write_text('{"websocketUrl": "ws://127.0.0.1:3001/dev"}')
    outputs = [
        {"OutputKey": "WebSocketUrl", "OutputValue": "wss://a.example/dev"},
        {"OutputKey": "HttpApiUrl", "OutputValue": "https://b.example"},
        {"OutputKey": "WebBucketName", "OutputValue": "web-bucket"},
        {"OutputKey": "WebDistributionId", "OutputValue": "E123"},
        {"OutputKey": "WebUrl", "OutputValue": "https://d111.cloudfront.net/"},
    ]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="web-bucket")
        s3.put_object(Bucket="web-bucket", Key="old.js", Body=b"stale")
        cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        cloudfront = boto3.client("cloudfront", region_name="us-east-1")
        clients = {"cloudformation": cloudformation, "s3": s3, "cloudfront": cloudfront}
        with Stubber(cloudformation) as cfn, Stubber(cloudfront) as cf:
            for _ in range(2):
                cfn.add_response("describe_stacks", describe_stacks_answer("app", outputs),
                                 {"StackName": "app"})
            cf.add_response(
                "create_invalidation",
                {"Invalidation": {"Id": "I1", "Status": "InProgress",
                                  "CreateTime": "2026-11-25T00:00:00Z",
                                  "InvalidationBatch": {"Paths": {"Quantity": 1,
                                                                  "Items": ["/*"]},
                                                        "CallerReference": "x"}}},
                {"DistributionId": "E123", "InvalidationBatch": ANY},
            )
            args = ["--stack", "app", "--web", str(web)]
            assert web_publish.main(args, clients) == 0
            keys = {o["Key"] for o in s3.list_objects_v2(Bucket="web-bucket")["Contents"]}
            assert keys == {"index.html", "js/app.js", "node_modules/chart.js/dist/chart.umd.js",
                            "config.json"}
            config = s3.get_object(Bucket="web-bucket", Key="config.json")
            assert json.loads(config["Body"].read()) == {
                "websocketUrl": "wss://a.example/dev", "httpApiUrl": "https://b.example"}
            script = s3.get_object(Bucket="web-bucket", Key="js/app.js")
            assert script["ContentType"] == "application/javascript; charset=utf-8"
            assert "https://d111.cloudfront.net/" in capsys.readouterr().out
            assert web_publish.main([*args, "--empty"], clients) == 0
            assert "Contents" not in s3.list_objects_v2(Bucket="web-bucket")

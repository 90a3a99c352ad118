"""`AWS::SecretsManager::Secret`: read from the template (Ref and GetAtt give its ARN) and
provisioned into the embedded moto server, where GetSecretValue on that ARN finds it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import boto3
import pytest

from apigw_local.dynamodb import LOCAL_CREDENTIALS, EmbeddedDynamoDB
from apigw_local.secretsmanager import provision_secrets
from apigw_local.template import TemplateError, load_application

FUNCTION_DIR = Path(__file__).parent.parent / "fixtures" / "functions" / "echo"


def app_with(tmp_path: Path, secrets: str, **kwargs):
    template = tmp_path / "template.yaml"
    template.write_text(textwrap.dedent(f"""
        Transform: AWS::Serverless-2016-10-31
        Parameters:
          Key: {{Type: String, NoEcho: true}}
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: {FUNCTION_DIR}
              Handler: app.handler
              Runtime: python3.13
              Environment:
                Variables:
                  BY_REF: !Ref Key1
                  BY_ID: !GetAtt Key1.Id
        """) + textwrap.indent(textwrap.dedent(secrets), "  "))
    return load_application([template], parameter_overrides={"Key": "k" * 40},
                            stack_name="stack", **kwargs)


def test_ref_and_getatt_id_give_the_arn_and_the_value_is_the_secret_string(tmp_path):
    app = app_with(tmp_path, """
        Key1:
          Type: AWS::SecretsManager::Secret
          Properties: {SecretString: !Ref Key}
        """)
    [secret] = app.secrets.values()
    assert secret.name == "stack-Key1" and secret.value == "k" * 40 and not secret.generated
    prefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack-Key1-"
    assert secret.arn.startswith(prefix) and len(secret.arn) == len(prefix) + 6
    env = app.functions["Fn"].environment
    assert env["BY_REF"] == env["BY_ID"] == secret.arn
    assert "k" * 40 not in repr(secret)


def test_a_generated_secret_follows_its_spec(tmp_path):
    app = app_with(tmp_path, """
        Key1:
          Type: AWS::SecretsManager::Secret
          Properties:
            Name: named
            GenerateSecretString:
              PasswordLength: 50
              ExcludePunctuation: true
              ExcludeCharacters: "aeiou"
              SecretStringTemplate: '{"user": "admin"}'
              GenerateStringKey: password
        """)
    secret = app.secrets["Key1"]
    assert secret.name == "named" and secret.generated
    value = json.loads(secret.value)
    assert value["user"] == "admin" and len(value["password"]) == 50
    assert value["password"].isalnum() and not set("aeiou") & set(value["password"])


@pytest.mark.parametrize("properties", ["{}", "{SecretString: a, GenerateSecretString: {}}",
                                        "{GenerateSecretString: {PasswordLength: 0}}"])
def test_a_secret_without_one_clear_value_is_refused(tmp_path, properties):
    with pytest.raises(TemplateError, match="Key1"):
        app_with(tmp_path, f"""
            Key1:
              Type: AWS::SecretsManager::Secret
              Properties: {properties}
            """)


def test_provisioned_secrets_answer_to_the_arn_of_the_template(tmp_path):
    app = app_with(tmp_path, """
        Key1:
          Type: AWS::SecretsManager::Secret
          Properties: {SecretString: !Ref Key}
        Key2:
          Type: AWS::SecretsManager::Secret
          Properties: {GenerateSecretString: {}}
        """)
    with EmbeddedDynamoDB() as db:
        secrets = list(app.secrets.values())
        client = boto3.client("secretsmanager", endpoint_url=db.endpoint_url,
                              region_name="us-east-1", **LOCAL_CREDENTIALS)
        kwargs = {"region": "us-east-1", "credentials": LOCAL_CREDENTIALS}
        assert provision_secrets(db.endpoint_url, secrets, **kwargs) == {
            "Key1": "created", "Key2": "created"}
        for secret in secrets:
            answer = client.get_secret_value(SecretId=secret.arn)
            assert (answer["ARN"], answer["SecretString"]) == (secret.arn, secret.value)
        # A restart: the parameter's value is applied, a generated value is kept.
        changed = app_with(tmp_path, """
            Key1:
              Type: AWS::SecretsManager::Secret
              Properties: {SecretString: new-value}
            Key2:
              Type: AWS::SecretsManager::Secret
              Properties: {GenerateSecretString: {}}
            """)
        assert provision_secrets(db.endpoint_url, list(changed.secrets.values()),
                                 **kwargs) == {"Key1": "updated", "Key2": "kept"}
        values = {s.logical_id: client.get_secret_value(SecretId=s.arn)["SecretString"]
                  for s in secrets}
        assert values == {"Key1": "new-value", "Key2": app.secrets["Key2"].value}


def test_the_apps_template_loads_silently_with_its_secret(caplog):
    root = Path(__file__).resolve().parents[2]
    with caplog.at_level("WARNING"):
        app = load_application([root / "template.yaml", root / "local" / "template.yaml"],
                               parameter_overrides={"AuthSecret": "s" * 40})
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    secret = app.secrets["AuthTokenSecret"]
    assert secret.value == "s" * 40
    for name in ("ConnectFunction", "VerifyTxFunction", "DevTokenFunction"):
        assert app.functions[name].environment["AUTH_SECRET_ARN"] == secret.arn
    assert "s" * 40 not in repr(app.functions)

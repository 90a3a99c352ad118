"""Secrets: `AWS::SecretsManager::Secret` (Name, SecretString or GenerateSecretString),
provisioned at start like tables; `Ref` and `Fn::GetAtt Id` give its ARN, as CloudFormation's
(see `reader.Stack`)."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from ..intrinsics import TemplateError
from ..model import Secret
from .reader import Resource, Stack, truthy


def read_secret(stack: Stack, r: Resource) -> Secret:
    value = stack.prop(r, "SecretString")
    generate = stack.prop(r, "GenerateSecretString")
    if (value is None) == (generate is None):
        raise TemplateError(f"{r.where()}: a secret needs SecretString or "
                            "GenerateSecretString (one of them)")
    if value is not None and not isinstance(value, str):
        raise TemplateError(f"{r.where('SecretString')}: expected a string")
    return Secret(
        logical_id=r.logical_id,
        name=stack.secret_name(r),
        arn=stack.secret_arn_of(r),
        value=value if value is not None else _generate_secret(
            generate, r.where("GenerateSecretString")),
        generated=value is None,
    )


def _generate_secret(spec: Any, where: str) -> str:
    """A random value as GenerateSecretString describes it (AWS::SecretsManager::Secret
    GenerateSecretString): PasswordLength (32), ExcludeCharacters, ExcludePunctuation,
    ExcludeUppercase/Lowercase/Numbers, IncludeSpace; with SecretStringTemplate and
    GenerateStringKey, that JSON object with the value under that key."""
    if not isinstance(spec, dict):
        raise TemplateError(f"{where}: expected a mapping")
    alphabet = "".join(
        chars for chars, exclude in (
            (string.ascii_uppercase, "ExcludeUppercase"),
            (string.ascii_lowercase, "ExcludeLowercase"),
            (string.digits, "ExcludeNumbers"),
            (string.punctuation, "ExcludePunctuation"),
        ) if not truthy(spec.get(exclude, False))
    ) + (" " if truthy(spec.get("IncludeSpace", False)) else "")
    alphabet = "".join(c for c in alphabet if c not in str(spec.get("ExcludeCharacters", "")))
    length = int(spec.get("PasswordLength", 32))
    if not alphabet or not 1 <= length <= 4096:
        raise TemplateError(f"{where}: no characters to choose from, or a PasswordLength "
                            "outside 1..4096")
    value = "".join(secrets.choice(alphabet) for _ in range(length))
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template is None and key is None:
        return value
    try:
        document = json.loads(str(template))
    except ValueError:
        raise TemplateError(f"{where}.SecretStringTemplate: not a JSON object") from None
    if not isinstance(document, dict) or not isinstance(key, str):
        raise TemplateError(f"{where}: SecretStringTemplate (a JSON object) and "
                            "GenerateStringKey go together")
    return json.dumps({**document, key: value})

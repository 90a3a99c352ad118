"""Read SAM/CloudFormation templates into the plain `Application` model.

What is read (everything else is ignored, silently for resources that only matter in AWS —
permissions, deployments, IAM, logs — and with one warning per resource otherwise):

- `Parameters` (Default, overrides, AllowedValues, AllowedPattern), `Conditions`, pseudo
  parameters, and the intrinsics of `intrinsics.py`;
- `Globals.Function`, merged as SAM merges it: maps key by key (the function wins), lists
  concatenated (globals first), scalars replaced;
- `AWS::Serverless::Function` (CodeUri, Handler, Runtime, Timeout, MemorySize,
  Environment, Layers, `HttpApi` events) and `AWS::Lambda::Function` whose `Code` is a
  local directory;
- `AWS::Serverless::LayerVersion` (ContentUri; its `python/` subdirectory goes first on
  `sys.path`, as Lambda puts `/opt/python` first);
- `AWS::ApiGatewayV2::Api` (WEBSOCKET and HTTP) with its Routes, Integrations (AWS_PROXY),
  Authorizers (REQUEST), RouteResponses and Stage; `AWS::Serverless::HttpApi`;
- `AWS::DynamoDB::Table` and `AWS::Serverless::SimpleTable`;
- `AWS::SecretsManager::Secret` (Name, SecretString or GenerateSecretString), provisioned at
  start like tables; `Ref` and `Fn::GetAtt Id` give its ARN, as CloudFormation's.

Several templates can be given: later ones (overlays) add parameters and resources and may
refer to resources of earlier ones; a logical id defined twice is an error.

Names follow AWS where a local stack can: `Ref` to a function gives its name (FunctionName,
else the logical id), to a table its TableName (else "{stack}-{logical id}"), to an API its
id (`api_id_for`), `Fn::GetAtt Fn.Arn` an ARN in the stack's region and account.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from .intrinsics import NO_VALUE, Resolver, TemplateError
from .model import (
    Application,
    Authorizer,
    Cors,
    Function,
    HttpRoute,
    Secret,
    Table,
    WebSocketApi,
    WebSocketRoute,
)

__all__ = ["TemplateError", "api_id_for", "load_application"]

log = logging.getLogger(__name__)

_FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
_LAYER_TYPES = {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}
_TABLE_TYPES = {"AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"}
_API_TYPES = {"AWS::ApiGatewayV2::Api", "AWS::Serverless::HttpApi"}
_SECRET_TYPE = "AWS::SecretsManager::Secret"
_IMPLICIT_HTTP_API = "ServerlessHttpApi"  # SAM's implicit API for HttpApi events without ApiId
# Resource types that only matter in AWS: skipped without a word.
_SILENT_PREFIXES = (
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
_V2_CHILD_TYPES = {
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::RouteResponse",
    "AWS::ApiGatewayV2::Stage",
}
_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"


def api_id_for(logical_id: str) -> str:
    """A stable 10-character lowercase alphanumeric id for a resource, like AWS's API ids."""
    number = int.from_bytes(hashlib.sha256(logical_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(10):
        number, digit = divmod(number, 36)
        chars.append(_ALNUM[digit])
    return "".join(chars)


@dataclass
class _Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    template: Path
    condition: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def where(self, prop: str | None = None) -> str:
        base = f"{self.template}: Resources.{self.logical_id}"
        return f"{base}.Properties.{prop}" if prop else base


@dataclass
class _GlobalValue:
    value: Any
    template: Path


def load_application(
    paths: Sequence[Path],
    *,
    parameter_overrides: Mapping[str, str] = {},  # noqa: B006 - read-only
    region: str = "us-east-1",
    account_id: str = "123456789012",
    stack_name: str = "apigw-local",
    websocket_domain: str | None = None,
    http_domain: str | None = None,
) -> Application:
    """Read and resolve `paths` (a template, then overlays) into an `Application`.

    `websocket_domain` / `http_domain` (e.g. "localhost:3001"): every resolved string holding
    a WebSocket (HTTP) API's AWS host `{api_id}.execute-api.{region}.amazonaws.com` gets that
    host replaced, and `Fn::GetAtt Api.ApiEndpoint` becomes `wss://{websocket_domain}`
    (`http://{http_domain}`), so handlers reach the local gateway.
    """
    return _Loader(
        [Path(p) for p in paths],
        parameter_overrides=parameter_overrides,
        region=region,
        account_id=account_id,
        stack_name=stack_name,
        websocket_domain=websocket_domain,
        http_domain=http_domain,
    ).load()


class _Loader:
    def __init__(
        self,
        paths: list[Path],
        *,
        parameter_overrides: Mapping[str, str],
        region: str,
        account_id: str,
        stack_name: str,
        websocket_domain: str | None,
        http_domain: str | None,
    ) -> None:
        if not paths:
            raise TemplateError("no template given")
        self.paths = [p.resolve() for p in paths]
        self.overrides = dict(parameter_overrides)
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.websocket_domain = websocket_domain
        self.http_domain = http_domain
        self.resources: dict[str, _Resource] = {}
        self.parameter_defs: dict[str, tuple[dict[str, Any], Path]] = {}
        self.condition_defs: dict[str, Any] = {}
        self.mappings: dict[str, Any] = {}
        self.globals: dict[str, _GlobalValue] = {}
        self.http_api_globals: dict[str, Any] = {}  # Globals.HttpApi
        self._by_physical: dict[str, str] = {}  # synthetic ids of V2 children → logical id
        self._api_hosts: dict[str, str] = {}  # "{id}.execute-api.{region}.amazonaws.com" → local
        self._fn_names: dict[str, str] = {}

    # -- reading ------------------------------------------------------------------------------

    def load(self) -> Application:
        for path in self.paths:
            self._read(path)
        self._add_implicit_http_api()
        self._by_physical = {api_id_for(lid): lid for lid in self.resources}
        parameters = self._parameters()
        self._prepare_rewrites()
        self.resolver = Resolver(
            parameters=parameters,
            pseudo={
                "AWS::Region": self.region,
                "AWS::AccountId": self.account_id,
                "AWS::StackName": self.stack_name,
                "AWS::StackId": (
                    f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/"
                    f"{self.stack_name}/{api_id_for(self.stack_name)}"
                ),
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::Partition": "aws",
                "AWS::NotificationARNs": [],
            },
            ref=self._ref,
            get_att=self._get_att,
            conditions=self.condition_defs,
            mappings=self.mappings,
            rewrite=self._rewrite if self._api_hosts else None,
        )
        self._drop_disabled_resources()
        for r in self.resources.values():
            if r.type in _FUNCTION_TYPES | _LAYER_TYPES | _TABLE_TYPES | _API_TYPES | {
                    _SECRET_TYPE}:
                continue
            if r.type in _V2_CHILD_TYPES or r.type.startswith(_SILENT_PREFIXES):
                continue
            if r.type == "AWS::Serverless::Api":
                log.warning("%s: REST APIs (AWS::Serverless::Api) are not emulated", r.where())
            else:
                log.warning("%s: resource type %s is not emulated; ignored", r.where(), r.type)

        functions: dict[str, Function] = {}
        http_routes: list[HttpRoute] = []
        for r in self.resources.values():
            if r.type in _FUNCTION_TYPES:
                fn, routes = self._function(r)
                functions[fn.logical_id] = fn
                http_routes.extend(routes)
        websocket_apis = []
        for r in self.resources.values():
            if r.type == "AWS::ApiGatewayV2::Api":
                protocol = self._prop(r, "ProtocolType")
                if protocol == "WEBSOCKET":
                    websocket_apis.append(self._websocket_api(r, functions))
                elif protocol == "HTTP":
                    http_routes.extend(self._v2_http_routes(r, functions))
                else:
                    raise TemplateError(f"{r.where('ProtocolType')}: unknown value {protocol!r}")
        tables = {r.logical_id: self._table(r) for r in self.resources.values()
                  if r.type in _TABLE_TYPES}
        return Application(
            functions=functions,
            websocket_apis=tuple(websocket_apis),
            http_routes=tuple(http_routes),
            tables=tables,
            parameters={k: _param_str(v) for k, v in parameters.items()},
            http_cors={r.logical_id: cors for r in self.resources.values()
                       if (cors := self._cors(r)) is not None},
            secrets={r.logical_id: self._secret(r) for r in self.resources.values()
                     if r.type == _SECRET_TYPE},
            region=self.region,
            account_id=self.account_id,
            stack_name=self.stack_name,
        )

    def _read(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"{path}: cannot read template: {exc}") from None
        try:
            doc = yaml_parse(text)
        except Exception as exc:  # yaml and json errors alike
            raise TemplateError(f"{path}: not a valid YAML/JSON template: {exc}") from None
        if not isinstance(doc, dict):
            raise TemplateError(f"{path}: a template must be a mapping")
        for name, definition in (doc.get("Parameters") or {}).items():
            if not isinstance(definition, dict):
                raise TemplateError(f"{path}: Parameters.{name} must be a mapping")
            self.parameter_defs[name] = (definition, path)
        self.condition_defs.update(doc.get("Conditions") or {})
        self.mappings.update(doc.get("Mappings") or {})
        for key, value in ((doc.get("Globals") or {}).get("Function") or {}).items():
            if key in self.globals:
                value = _sam_merge(self.globals[key].value, value)
            self.globals[key] = _GlobalValue(value, path)
        self.http_api_globals.update((doc.get("Globals") or {}).get("HttpApi") or {})
        for lid, definition in (doc.get("Resources") or {}).items():
            if lid in self.resources:
                raise TemplateError(
                    f"{path}: Resources.{lid}: already defined in {self.resources[lid].template}"
                )
            if not isinstance(definition, dict) or "Type" not in definition:
                raise TemplateError(f"{path}: Resources.{lid}: a resource needs a Type")
            self.resources[lid] = _Resource(
                logical_id=lid,
                type=definition["Type"],
                properties=definition.get("Properties") or {},
                template=path,
                condition=definition.get("Condition"),
                metadata=definition.get("Metadata") or {},
            )

    def _add_implicit_http_api(self) -> None:
        """SAM creates `ServerlessHttpApi` for `HttpApi` events that name no ApiId."""
        if _IMPLICIT_HTTP_API in self.resources:
            return
        for r in self.resources.values():
            if r.type != "AWS::Serverless::Function":
                continue
            for event in (r.properties.get("Events") or {}).values():
                if isinstance(event, dict) and event.get("Type") == "HttpApi" and not (
                    event.get("Properties") or {}
                ).get("ApiId"):
                    self.resources[_IMPLICIT_HTTP_API] = _Resource(
                        _IMPLICIT_HTTP_API, "AWS::Serverless::HttpApi", {}, r.template
                    )
                    return

    def _parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, (definition, path) in self.parameter_defs.items():
            where = f"{path}: Parameters.{name}"
            if name in self.overrides:
                value = self.overrides[name]
            elif "Default" in definition:
                value = definition["Default"]
            else:
                raise TemplateError(f"{where}: no value given and no Default")
            value = _param_str(value)
            ptype = str(definition.get("Type", "String"))
            allowed = definition.get("AllowedValues")
            if allowed is not None and value not in [_param_str(a) for a in allowed]:
                raise TemplateError(f"{where}: {value!r} is not one of AllowedValues {allowed}")
            # (NoEcho values are never echoed in the messages below.)
            pattern = definition.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise TemplateError(f"{where}: value does not match AllowedPattern {pattern!r}")
            shown = "value" if definition.get("NoEcho") else repr(value)
            if "MinLength" in definition and len(value) < int(definition["MinLength"]):
                raise TemplateError(f"{where}: {shown} is shorter than MinLength "
                                    f"{definition['MinLength']}")
            if "MaxLength" in definition and len(value) > int(definition["MaxLength"]):
                raise TemplateError(f"{where}: {shown} is longer than MaxLength "
                                    f"{definition['MaxLength']}")
            if ptype == "Number":
                try:
                    number = float(value)
                except ValueError:
                    raise TemplateError(f"{where}: {shown} is not a Number") from None
                if "MinValue" in definition and number < float(definition["MinValue"]):
                    raise TemplateError(f"{where}: {shown} is below MinValue")
                if "MaxValue" in definition and number > float(definition["MaxValue"]):
                    raise TemplateError(f"{where}: {shown} is above MaxValue")
            if ptype == "CommaDelimitedList" or ptype.startswith("List<"):
                values[name] = [v.strip() for v in value.split(",")] if value else []
            else:
                values[name] = value
        for name in self.overrides:
            if name not in self.parameter_defs:
                log.warning("parameter override %s: no such parameter in the templates", name)
        return values

    def _prepare_rewrites(self) -> None:
        for r in self.resources.values():
            if r.type not in _API_TYPES:
                continue
            host = f"{api_id_for(r.logical_id)}.execute-api.{self.region}.amazonaws.com"
            protocol = r.properties.get("ProtocolType")
            if r.type == "AWS::Serverless::HttpApi" or protocol == "HTTP":
                if self.http_domain:
                    self._api_hosts[host] = self.http_domain
            elif protocol == "WEBSOCKET" and self.websocket_domain:
                self._api_hosts[host] = self.websocket_domain

    def _rewrite(self, text: str) -> str:
        if "execute-api" not in text:
            return text
        for host, local in self._api_hosts.items():
            text = text.replace(host, local)
        return text

    def _drop_disabled_resources(self) -> None:
        for lid in list(self.resources):
            r = self.resources[lid]
            if r.condition is not None and not self.resolver.condition(
                r.condition, f"{r.where()}.Condition"
            ):
                del self.resources[lid]

    # -- Ref and GetAtt -----------------------------------------------------------------------

    def _resource(self, lid: str) -> _Resource:
        return self.resources[lid]  # KeyError: reported by the resolver with its location

    def _ref(self, lid: str) -> Any:
        r = self._resource(lid)
        if r.type in _FUNCTION_TYPES:
            return self._function_name(r)
        if r.type in _TABLE_TYPES:
            return self._table_name(r)
        if r.type in _LAYER_TYPES:
            return self._layer_arn(lid)
        if r.type == "AWS::ApiGatewayV2::Stage":
            return self._prop(r, "StageName")
        if r.type == _SECRET_TYPE:
            return self._secret_arn(r)
        if r.type.startswith("AWS::ApiGatewayV2::") or r.type.startswith("AWS::Serverless::"):
            physical = api_id_for(lid)
            self._by_physical[physical] = lid
            return physical
        return lid

    def _get_att(self, lid: str, attribute: str) -> Any:
        r = self._resource(lid)
        if r.type in _FUNCTION_TYPES and attribute == "Arn":
            return self._function_arn(self._function_name(r))
        if r.type in _TABLE_TYPES:
            arn = f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{self._table_name(r)}"
            if attribute == "Arn":
                return arn
            if attribute == "StreamArn":
                return f"{arn}/stream/1970-01-01T00:00:00.000"
        if r.type in _API_TYPES:
            api_id = api_id_for(lid)
            if attribute == "ApiId":
                return api_id
            if attribute == "ApiEndpoint":
                websocket = r.properties.get("ProtocolType") == "WEBSOCKET"
                local = self.websocket_domain if websocket else self.http_domain
                if local:
                    return f"{'wss' if websocket else 'http'}://{local}"
                scheme = "wss" if websocket else "https"
                return f"{scheme}://{api_id}.execute-api.{self.region}.amazonaws.com"
        if r.type in _LAYER_TYPES and attribute == "Arn":
            return self._layer_arn(lid)
        if r.type == _SECRET_TYPE and attribute == "Id":
            return self._secret_arn(r)
        if r.type.startswith("AWS::IAM::") and attribute == "Arn":
            return f"arn:aws:iam::{self.account_id}:{r.type.split('::')[-1].lower()}/{lid}"
        if r.type in _FUNCTION_TYPES | _TABLE_TYPES | _API_TYPES | _LAYER_TYPES | {_SECRET_TYPE}:
            raise TemplateError(f"attribute {attribute!r} of {r.type} is not supported")
        if not r.type.startswith(_SILENT_PREFIXES):
            log.warning("Fn::GetAtt %s.%s: %s is not emulated; using a placeholder",
                        lid, attribute, r.type)
        return f"arn:aws:local:{self.region}:{self.account_id}:{lid}/{attribute}"

    def _function_name(self, r: _Resource) -> str:
        if r.logical_id not in self._fn_names:
            name = self._prop(r, "FunctionName", r.logical_id)
            self._fn_names[r.logical_id] = str(name)
        return self._fn_names[r.logical_id]

    def _function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def _table_name(self, r: _Resource) -> str:
        return str(self._prop(r, "TableName", f"{self.stack_name}-{r.logical_id}"))

    def _secret_name(self, r: _Resource) -> str:
        return str(self._prop(r, "Name", f"{self.stack_name}-{r.logical_id}"))

    def _secret_arn(self, r: _Resource) -> str:
        # Secrets Manager appends "-" and six random characters; a stable six here.
        name = self._secret_name(r)
        return (f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:"
                f"{name}-{api_id_for(name)[:6]}")

    def _secret(self, r: _Resource) -> Secret:
        value = self._prop(r, "SecretString")
        generate = self._prop(r, "GenerateSecretString")
        if (value is None) == (generate is None):
            raise TemplateError(f"{r.where()}: a secret needs SecretString or "
                                "GenerateSecretString (one of them)")
        if value is not None and not isinstance(value, str):
            raise TemplateError(f"{r.where('SecretString')}: expected a string")
        return Secret(
            logical_id=r.logical_id,
            name=self._secret_name(r),
            arn=self._secret_arn(r),
            value=value if value is not None else _generate_secret(
                generate, r.where("GenerateSecretString")),
            generated=value is None,
        )

    def _layer_arn(self, lid: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{lid}:1"

    def _prop(self, r: _Resource, name: str, default: Any = None) -> Any:
        if name not in r.properties:
            return default
        value = self.resolver.resolve(r.properties[name], r.where(name))
        return default if value is NO_VALUE else value

    def _str_prop(self, r: _Resource, name: str) -> str:
        value = self._prop(r, name)
        if not isinstance(value, str):
            raise TemplateError(f"{r.where(name)}: expected a string")
        return value

    def _only(self, r: _Resource, name: str, supported: str) -> None:
        """`name` must be `supported`, the one value the emulator implements."""
        value = self._prop(r, name)
        if value != supported:
            raise TemplateError(f"{r.where(name)}: {value!r} is not supported ({supported} only)")

    def _function_by_arn(self, text: str, where: str, functions: Mapping[str, Function]) -> str:
        """The logical id of the function whose ARN `text` (an integration URI) contains."""
        for fn in functions.values():
            arn = self._function_arn(fn.name)
            if text == arn or arn + "/" in text or text.endswith(arn) or arn + ":" in text:
                return fn.logical_id
        raise TemplateError(f"{where}: {text!r} names no function of the template")

    # -- functions ----------------------------------------------------------------------------

    def _merged(self, r: _Resource, name: str) -> tuple[Any, Path] | None:
        """A function property merged with Globals.Function, and the template it came from."""
        where = r.where(name)
        own = r.properties.get(name)
        glob = self.globals.get(name) if r.type == "AWS::Serverless::Function" else None
        if own is None and glob is None:
            return None
        if glob is None:
            return self.resolver.resolve(own, where), r.template
        g = self.resolver.resolve(glob.value, f"{glob.template}: Globals.Function.{name}")
        if own is None:
            return g, glob.template
        return _sam_merge(g, self.resolver.resolve(own, where)), r.template

    def _function(self, r: _Resource) -> tuple[Function, list[HttpRoute]]:
        serverless = r.type == "AWS::Serverless::Function"
        if self._prop(r, "PackageType", "Zip") != "Zip":
            raise TemplateError(f"{r.where('PackageType')}: only Zip functions can run locally")
        runtime = _value(self._merged(r, "Runtime"))
        if not isinstance(runtime, str):
            raise TemplateError(f"{r.where('Runtime')}: a function needs a Runtime")
        if not runtime.startswith("python"):
            raise TemplateError(
                f"{r.where('Runtime')}: runtime {runtime!r} is not supported (python only)"
            )
        handler = _value(self._merged(r, "Handler"))
        if not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{r.where('Handler')}: expected 'module.function', "
                                f"got {handler!r}")
        code_uri = self._code_dir(r, "CodeUri" if serverless else "Code")
        timeout = _value(self._merged(r, "Timeout"))
        memory = _value(self._merged(r, "MemorySize"))
        env = _value(self._merged(r, "Environment")) or {}
        variables = env.get("Variables") or {} if isinstance(env, dict) else None
        if not isinstance(variables, dict):
            raise TemplateError(f"{r.where('Environment')}: expected {{Variables: {{...}}}}")
        try:
            fn = Function(
                logical_id=r.logical_id,
                name=self._function_name(r),
                code_uri=code_uri,
                handler=handler,
                runtime=runtime,
                timeout=float(timeout) if timeout is not None else 3.0,
                memory_size=int(memory) if memory is not None else 128,
                environment={k: _param_str(v) for k, v in variables.items()},
                layers=self._layers(r),
            )
        except (TypeError, ValueError) as exc:
            raise TemplateError(f"{r.where()}: {exc}") from None
        routes = self._http_events(r) if serverless else []
        return fn, routes

    def _code_dir(self, r: _Resource, prop: str) -> Path:
        merged = self._merged(r, prop)
        if merged is None:
            if r.type == "AWS::Serverless::Function" and "InlineCode" in r.properties:
                raise TemplateError(f"{r.where('InlineCode')}: InlineCode is not supported")
            raise TemplateError(f"{r.where(prop)}: a function needs a local {prop} directory")
        value, template = merged
        if not isinstance(value, str):
            raise TemplateError(f"{r.where(prop)}: only a local directory is supported, "
                                f"got {value!r}")
        path = (template.parent / value).resolve()
        if not path.is_dir():
            raise TemplateError(f"{r.where(prop)}: directory {path} does not exist")
        return path

    def _layers(self, r: _Resource) -> tuple[Path, ...]:
        merged = self._merged(r, "Layers")
        if merged is None:
            return ()
        arns, _ = merged
        if not isinstance(arns, list):
            raise TemplateError(f"{r.where('Layers')}: expected a list")
        dirs: list[Path] = []
        prefix = f"arn:aws:lambda:{self.region}:{self.account_id}:layer:"
        for arn in arns:
            if isinstance(arn, str) and arn.startswith(prefix):
                lid = arn[len(prefix):].rsplit(":", 1)[0]
                if lid in self.resources and self.resources[lid].type in _LAYER_TYPES:
                    dirs.extend(self._layer_dirs(self.resources[lid]))
                    continue
            log.warning("%s: layer %s is not part of the templates; skipped",
                        r.where("Layers"), arn)
        return tuple(dict.fromkeys(dirs))  # a layer named twice (Globals + function) once

    def _layer_dirs(self, layer: _Resource) -> list[Path]:
        prop = "ContentUri" if layer.type == "AWS::Serverless::LayerVersion" else "Content"
        value = self._prop(layer, prop)
        if not isinstance(value, str):
            raise TemplateError(f"{layer.where(prop)}: only a local directory is supported, "
                                f"got {value!r}")
        path = (layer.template.parent / value).resolve()
        if not path.is_dir():
            raise TemplateError(f"{layer.where(prop)}: directory {path} does not exist")
        # Lambda extracts a layer to /opt and puts /opt/python on sys.path (before /opt's
        # other paths); `sam build` places the sources there.
        return [p for p in (path / "python", path) if p.is_dir()]

    def _http_events(self, r: _Resource) -> list[HttpRoute]:
        routes = []
        events = r.properties.get("Events") or {}
        for name, event in events.items():
            where = f"{r.where('Events')}.{name}"
            if not isinstance(event, dict):
                raise TemplateError(f"{where}: an event must be a mapping")
            if event.get("Type") != "HttpApi":
                log.warning("%s: event type %s is not emulated", where, event.get("Type"))
                continue
            props = self.resolver.resolve(event.get("Properties") or {}, f"{where}.Properties")
            api_id = props.get("ApiId")
            if api_id is None:
                api = _IMPLICIT_HTTP_API
            else:
                api = self._by_physical.get(str(api_id))
                if api is None:
                    raise TemplateError(f"{where}.Properties.ApiId: {api_id!r} is not an API "
                                        "of the templates")
            method = str(props.get("Method", "ANY")).upper()
            path = props.get("Path")
            if path is None:  # SAM: an HttpApi event without Path/Method is the catch-all
                method, path = "ANY", "$default"
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD":
                method = "ANY"
            routes.append(HttpRoute(
                method=method,
                path=str(path),
                function=r.logical_id,
                api_logical_id=api,
                payload_format_version=str(props.get("PayloadFormatVersion", "2.0")),
            ))
        return routes

    def _cors(self, r: _Resource) -> Cors | None:
        """An HTTP API's CorsConfiguration; SAM also takes it from Globals.HttpApi, and reads
        `true` or a bare value as AllowOrigins (`true`: `*`)."""
        if r.type == "AWS::Serverless::HttpApi":
            own = r.properties.get("CorsConfiguration")
            glob = self.http_api_globals.get("CorsConfiguration")
            intrinsic = isinstance(own, dict) and len(own) == 1 and (
                next(iter(own)).startswith("Fn::") or "Ref" in own)
            # SAM merges a mapping with the global one; an intrinsic replaces it whole.
            raw = glob if own is None else own if intrinsic else _sam_merge(glob, own)
        elif r.type == "AWS::ApiGatewayV2::Api" and self._prop(r, "ProtocolType") == "HTTP":
            raw = r.properties.get("CorsConfiguration")
        else:
            return None
        where = r.where("CorsConfiguration")
        value = self.resolver.resolve(raw, where)
        if value in (None, False, NO_VALUE):
            return None
        if not isinstance(value, dict):
            value = {"AllowOrigins": ["*"] if value is True else value}

        def strings(key: str) -> tuple[str, ...]:
            items = value.get(key) or []
            items = [items] if isinstance(items, str) else items
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise TemplateError(f"{where}.{key}: expected a list of strings")
            return tuple(i.strip() for i in items if i.strip())

        max_age = value.get("MaxAge")
        return Cors(
            allow_origins=strings("AllowOrigins"), allow_methods=strings("AllowMethods"),
            allow_headers=strings("AllowHeaders"), expose_headers=strings("ExposeHeaders"),
            max_age=None if max_age is None else int(max_age),
            allow_credentials=_truthy(value.get("AllowCredentials", False)),
        )

    # -- API Gateway V2 -----------------------------------------------------------------------

    def _children(self, api: _Resource, rtype: str) -> list[_Resource]:
        api_id = api_id_for(api.logical_id)
        self._by_physical[api_id] = api.logical_id
        out = []
        for r in self.resources.values():
            if r.type == rtype and self._prop(r, "ApiId") == api_id:
                out.append(r)
        return out

    def _physical_to(self, value: Any, rtype: str, where: str) -> _Resource:
        lid = self._by_physical.get(str(value))
        if lid is None or lid not in self.resources or self.resources[lid].type != rtype:
            raise TemplateError(f"{where}: {value!r} does not name a {rtype} of the templates")
        return self.resources[lid]

    def _integration_function(self, route: _Resource, functions: Mapping[str, Function]
                              ) -> str | None:
        target = self._prop(route, "Target")
        if target is None:
            return None
        where = route.where("Target")
        if not isinstance(target, str) or not target.startswith("integrations/"):
            raise TemplateError(f"{where}: expected 'integrations/{{IntegrationId}}', "
                                f"got {target!r}")
        integration = self._physical_to(target.split("/", 1)[1],
                                        "AWS::ApiGatewayV2::Integration", where)
        self._only(integration, "IntegrationType", "AWS_PROXY")
        uri = self._str_prop(integration, "IntegrationUri")
        return self._function_by_arn(uri, integration.where("IntegrationUri"), functions)

    def _websocket_api(self, api: _Resource, functions: Mapping[str, Function]) -> WebSocketApi:
        authorizers: dict[str, Authorizer] = {}
        for a in self._children(api, "AWS::ApiGatewayV2::Authorizer"):
            self._only(a, "AuthorizerType", "REQUEST")
            uri = self._str_prop(a, "AuthorizerUri")
            sources = self._prop(a, "IdentitySource") or []
            if isinstance(sources, str):
                sources = [s.strip() for s in sources.split(",")]
            authorizers[a.logical_id] = Authorizer(
                logical_id=a.logical_id,
                name=str(self._prop(a, "Name", a.logical_id)),
                function=self._function_by_arn(uri, a.where("AuthorizerUri"), functions),
                identity_sources=tuple(str(s) for s in sources),
            )
        with_response = set()
        for rr in self._children(api, "AWS::ApiGatewayV2::RouteResponse"):
            route = self._physical_to(self._prop(rr, "RouteId"), "AWS::ApiGatewayV2::Route",
                                      rr.where("RouteId"))
            with_response.add(route.logical_id)
        routes: dict[str, WebSocketRoute] = {}
        for route in self._children(api, "AWS::ApiGatewayV2::Route"):
            key = self._prop(route, "RouteKey")
            if not isinstance(key, str):
                raise TemplateError(f"{route.where('RouteKey')}: a route needs a RouteKey")
            if key in routes:
                raise TemplateError(f"{route.where('RouteKey')}: route {key!r} defined twice")
            authorizer = None
            auth_type = self._prop(route, "AuthorizationType", "NONE")
            if auth_type == "CUSTOM":
                auth = self._physical_to(self._prop(route, "AuthorizerId"),
                                         "AWS::ApiGatewayV2::Authorizer",
                                         route.where("AuthorizerId"))
                authorizer = authorizers[auth.logical_id]
            elif auth_type not in ("NONE", None):
                log.warning("%s: AuthorizationType %s is not emulated",
                            route.where("AuthorizationType"), auth_type)
            routes[key] = WebSocketRoute(
                route_key=key,
                function=self._integration_function(route, functions),
                authorizer=authorizer,
                route_response=route.logical_id in with_response,
            )
        stages = self._children(api, "AWS::ApiGatewayV2::Stage")
        if stages:
            stage = str(self._prop(stages[0], "StageName"))
            if len(stages) > 1:
                log.warning("%s: several stages; serving %s", api.where(), stage)
        else:
            stage = "$default"
            log.warning("%s: no AWS::ApiGatewayV2::Stage; serving stage $default", api.where())
        return WebSocketApi(
            logical_id=api.logical_id,
            name=str(self._prop(api, "Name", api.logical_id)),
            api_id=api_id_for(api.logical_id),
            route_selection_expression=str(
                self._prop(api, "RouteSelectionExpression", "$request.body.action")
            ),
            routes=routes,
            stage=stage,
        )

    def _v2_http_routes(self, api: _Resource, functions: Mapping[str, Function]
                        ) -> list[HttpRoute]:
        routes = []
        for route in self._children(api, "AWS::ApiGatewayV2::Route"):
            key = self._prop(route, "RouteKey")
            fn = self._integration_function(route, functions)
            if fn is None:
                continue
            if key == "$default":
                method, path = "ANY", "$default"
            elif isinstance(key, str) and " " in key:
                method, path = key.split(" ", 1)
            else:
                raise TemplateError(f"{route.where('RouteKey')}: expected 'METHOD /path', "
                                    f"got {key!r}")
            target = self._prop(route, "Target")
            integration = self._physical_to(target.split("/", 1)[1],
                                            "AWS::ApiGatewayV2::Integration", route.where())
            routes.append(HttpRoute(
                method=method.upper(), path=path, function=fn, api_logical_id=api.logical_id,
                payload_format_version=str(
                    self._prop(integration, "PayloadFormatVersion", "2.0")),
            ))
        return routes

    # -- tables -------------------------------------------------------------------------------

    def _table(self, r: _Resource) -> Table:
        name = self._table_name(r)
        if r.type == "AWS::Serverless::SimpleTable":
            pk = self._prop(r, "PrimaryKey") or {"Name": "id", "Type": "String"}
            short = {"String": "S", "Number": "N", "Binary": "B"}
            if pk.get("Type", "String") not in short:
                raise TemplateError(f"{r.where('PrimaryKey')}: Type must be String, Number "
                                    "or Binary")
            kwargs: dict[str, Any] = {
                "TableName": name,
                "KeySchema": [{"AttributeName": pk["Name"], "KeyType": "HASH"}],
                "AttributeDefinitions": [
                    {"AttributeName": pk["Name"], "AttributeType": short[pk.get("Type",
                                                                                "String")]}
                ],
            }
            throughput = self._prop(r, "ProvisionedThroughput")
            if throughput:
                kwargs["BillingMode"] = "PROVISIONED"
                kwargs["ProvisionedThroughput"] = _throughput(throughput)
            else:
                kwargs["BillingMode"] = "PAY_PER_REQUEST"
            return Table(logical_id=r.logical_id, name=name, create_table=kwargs)

        for required in ("KeySchema", "AttributeDefinitions"):
            if required not in r.properties:
                raise TemplateError(f"{r.where(required)}: a table needs {required}")
        kwargs = {
            "TableName": name,
            "KeySchema": self._prop(r, "KeySchema"),
            "AttributeDefinitions": self._prop(r, "AttributeDefinitions"),
        }
        throughput = self._prop(r, "ProvisionedThroughput")
        billing = self._prop(r, "BillingMode") or ("PROVISIONED" if throughput
                                                   else "PAY_PER_REQUEST")
        kwargs["BillingMode"] = billing
        if billing == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = _throughput(throughput or {})
        for prop in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            indexes = self._prop(r, prop)
            if indexes:
                kwargs[prop] = [
                    _index(ix, billing, prop == "GlobalSecondaryIndexes") for ix in indexes
                ]
        stream = self._prop(r, "StreamSpecification")
        if stream and stream.get("StreamViewType"):
            kwargs["StreamSpecification"] = {
                "StreamEnabled": True, "StreamViewType": stream["StreamViewType"],
            }
        ttl = self._prop(r, "TimeToLiveSpecification") or {}
        ttl_attribute = None
        if _truthy(ttl.get("Enabled", False)):
            ttl_attribute = ttl.get("AttributeName")
            if not ttl_attribute:
                raise TemplateError(f"{r.where('TimeToLiveSpecification')}: AttributeName "
                                    "missing")
        return Table(logical_id=r.logical_id, name=name, create_table=kwargs,
                     ttl_attribute=ttl_attribute)


# -- helpers ----------------------------------------------------------------------------------


def _sam_merge(glob: Any, own: Any) -> Any:
    """SAM's Globals rule: maps merged key by key (own wins), lists concatenated, else own."""
    if isinstance(glob, dict) and isinstance(own, dict):
        out = dict(glob)
        for k, v in own.items():
            out[k] = _sam_merge(out[k], v) if k in out else v
        return out
    if isinstance(glob, list) and isinstance(own, list):
        return glob + own
    return own


def _value(merged: tuple[Any, Path] | None) -> Any:
    return None if merged is None else merged[0]


def _param_str(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(_param_str(v) for v in value)
    return str(value)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


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
        ) if not _truthy(spec.get(exclude, False))
    ) + (" " if _truthy(spec.get("IncludeSpace", False)) else "")
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


def _throughput(value: Mapping[str, Any]) -> dict[str, int]:
    return {
        "ReadCapacityUnits": int(value.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(value.get("WriteCapacityUnits", 5)),
    }


def _index(ix: Mapping[str, Any], billing: str, gsi: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "IndexName": ix["IndexName"],
        "KeySchema": ix["KeySchema"],
        "Projection": ix.get("Projection") or {"ProjectionType": "ALL"},
    }
    if gsi and billing == "PROVISIONED":
        out["ProvisionedThroughput"] = _throughput(ix.get("ProvisionedThroughput") or {})
    return out

"""Reading templates: files, parameters, conditions, Globals, and the names `Ref` and
`Fn::GetAtt` resolve to. The resource kinds are read by `functions`, `apigw` and `tables`;
`load_application` (in the package) puts them together.

Several templates can be given: later ones (overlays) add parameters and resources and may
refer to resources of earlier ones; a logical id defined twice is an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from ..intrinsics import NO_VALUE, Resolver, TemplateError
from ..model import Function
from .names import (
    API_TYPES,
    FUNCTION_TYPES,
    IMPLICIT_HTTP_API,
    LAYER_TYPES,
    SECRET_TYPE,
    SILENT_PREFIXES,
    TABLE_TYPES,
    api_id_for,
    execute_api_host,
    function_arn,
    layer_arn,
    secret_arn,
)

log = logging.getLogger("apigw_local.template")


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    template: Path
    condition: str | None = None

    def where(self, prop: str | None = None) -> str:
        base = f"{self.template}: Resources.{self.logical_id}"
        return f"{base}.Properties.{prop}" if prop else base


@dataclass
class GlobalValue:
    value: Any
    template: Path


class Stack:
    """The templates read into resources, with the resolver that evaluates their properties."""

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
        self.resources: dict[str, Resource] = {}
        self.parameter_defs: dict[str, tuple[dict[str, Any], Path]] = {}
        self.condition_defs: dict[str, Any] = {}
        self.mappings: dict[str, Any] = {}
        self.globals: dict[str, GlobalValue] = {}
        self.http_api_globals: dict[str, Any] = {}  # Globals.HttpApi
        self.by_physical: dict[str, str] = {}  # synthetic ids of V2 children → logical id
        self._api_hosts: dict[str, str] = {}  # "{id}.execute-api.{region}.amazonaws.com" → local
        self._fn_names: dict[str, str] = {}

    # -- reading ------------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        """Read every template and prepare the resolver; returns the parameters' values."""
        for path in self.paths:
            self._read(path)
        self._add_implicit_http_api()
        self.by_physical = {api_id_for(lid): lid for lid in self.resources}
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
        return parameters

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
                value = sam_merge(self.globals[key].value, value)
            self.globals[key] = GlobalValue(value, path)
        self.http_api_globals.update((doc.get("Globals") or {}).get("HttpApi") or {})
        for lid, definition in (doc.get("Resources") or {}).items():
            if lid in self.resources:
                raise TemplateError(
                    f"{path}: Resources.{lid}: already defined in {self.resources[lid].template}"
                )
            if not isinstance(definition, dict) or "Type" not in definition:
                raise TemplateError(f"{path}: Resources.{lid}: a resource needs a Type")
            self.resources[lid] = Resource(
                logical_id=lid,
                type=definition["Type"],
                properties=definition.get("Properties") or {},
                template=path,
                condition=definition.get("Condition"),
            )

    def _add_implicit_http_api(self) -> None:
        """SAM creates `ServerlessHttpApi` for `HttpApi` events that name no ApiId."""
        if IMPLICIT_HTTP_API in self.resources:
            return
        for r in self.resources.values():
            if r.type != "AWS::Serverless::Function":
                continue
            for event in (r.properties.get("Events") or {}).values():
                if isinstance(event, dict) and event.get("Type") == "HttpApi" and not (
                    event.get("Properties") or {}
                ).get("ApiId"):
                    self.resources[IMPLICIT_HTTP_API] = Resource(
                        IMPLICIT_HTTP_API, "AWS::Serverless::HttpApi", {}, r.template
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
            value = param_str(value)
            ptype = str(definition.get("Type", "String"))
            allowed = definition.get("AllowedValues")
            if allowed is not None and value not in [param_str(a) for a in allowed]:
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
            if r.type not in API_TYPES:
                continue
            host = execute_api_host(api_id_for(r.logical_id), self.region)
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

    def resource(self, lid: str) -> Resource:
        return self.resources[lid]  # KeyError: reported by the resolver with its location

    def _ref(self, lid: str) -> Any:
        r = self.resource(lid)
        if r.type in FUNCTION_TYPES:
            return self.function_name(r)
        if r.type in TABLE_TYPES:
            return self.table_name(r)
        if r.type in LAYER_TYPES:
            return self.layer_arn_of(lid)
        if r.type == "AWS::ApiGatewayV2::Stage":
            return self.prop(r, "StageName")
        if r.type == SECRET_TYPE:
            return self.secret_arn_of(r)
        if r.type.startswith("AWS::ApiGatewayV2::") or r.type.startswith("AWS::Serverless::"):
            physical = api_id_for(lid)
            self.by_physical[physical] = lid
            return physical
        return lid

    def _get_att(self, lid: str, attribute: str) -> Any:
        r = self.resource(lid)
        if r.type in FUNCTION_TYPES and attribute == "Arn":
            return self.function_arn_of(self.function_name(r))
        if r.type in TABLE_TYPES:
            arn = f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{self.table_name(r)}"
            if attribute == "Arn":
                return arn
            if attribute == "StreamArn":
                return f"{arn}/stream/1970-01-01T00:00:00.000"
        if r.type in API_TYPES:
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
        if r.type in LAYER_TYPES and attribute == "Arn":
            return self.layer_arn_of(lid)
        if r.type == SECRET_TYPE and attribute == "Id":
            return self.secret_arn_of(r)
        if r.type.startswith("AWS::IAM::") and attribute == "Arn":
            return f"arn:aws:iam::{self.account_id}:{r.type.split('::')[-1].lower()}/{lid}"
        if r.type in FUNCTION_TYPES | TABLE_TYPES | API_TYPES | LAYER_TYPES | {SECRET_TYPE}:
            raise TemplateError(f"attribute {attribute!r} of {r.type} is not supported")
        if not r.type.startswith(SILENT_PREFIXES):
            log.warning("Fn::GetAtt %s.%s: %s is not emulated; using a placeholder",
                        lid, attribute, r.type)
        return f"arn:aws:local:{self.region}:{self.account_id}:{lid}/{attribute}"

    def function_name(self, r: Resource) -> str:
        if r.logical_id not in self._fn_names:
            name = self.prop(r, "FunctionName", r.logical_id)
            self._fn_names[r.logical_id] = str(name)
        return self._fn_names[r.logical_id]

    def function_arn_of(self, name: str) -> str:
        return function_arn(self.region, self.account_id, name)

    def table_name(self, r: Resource) -> str:
        return str(self.prop(r, "TableName", f"{self.stack_name}-{r.logical_id}"))

    def secret_name(self, r: Resource) -> str:
        return str(self.prop(r, "Name", f"{self.stack_name}-{r.logical_id}"))

    def secret_arn_of(self, r: Resource) -> str:
        return secret_arn(self.region, self.account_id, self.secret_name(r))

    def layer_arn_of(self, lid: str) -> str:
        return layer_arn(self.region, self.account_id, lid)

    def prop(self, r: Resource, name: str, default: Any = None) -> Any:
        if name not in r.properties:
            return default
        value = self.resolver.resolve(r.properties[name], r.where(name))
        return default if value is NO_VALUE else value

    def str_prop(self, r: Resource, name: str) -> str:
        value = self.prop(r, name)
        if not isinstance(value, str):
            raise TemplateError(f"{r.where(name)}: expected a string")
        return value

    def only(self, r: Resource, name: str, supported: str) -> None:
        """`name` must be `supported`, the one value the emulator implements."""
        value = self.prop(r, name)
        if value != supported:
            raise TemplateError(f"{r.where(name)}: {value!r} is not supported ({supported} only)")

    def function_by_arn(self, text: str, where: str, functions: Mapping[str, Function]) -> str:
        """The logical id of the function whose ARN `text` (an integration URI) contains."""
        for fn in functions.values():
            arn = self.function_arn_of(fn.name)
            if text == arn or arn + "/" in text or text.endswith(arn) or arn + ":" in text:
                return fn.logical_id
        raise TemplateError(f"{where}: {text!r} names no function of the template")

    def merged(self, r: Resource, name: str) -> tuple[Any, Path] | None:
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
        return sam_merge(g, self.resolver.resolve(own, where)), r.template

    def children(self, api: Resource, rtype: str) -> list[Resource]:
        api_id = api_id_for(api.logical_id)
        self.by_physical[api_id] = api.logical_id
        out = []
        for r in self.resources.values():
            if r.type == rtype and self.prop(r, "ApiId") == api_id:
                out.append(r)
        return out

    def physical_to(self, value: Any, rtype: str, where: str) -> Resource:
        lid = self.by_physical.get(str(value))
        if lid is None or lid not in self.resources or self.resources[lid].type != rtype:
            raise TemplateError(f"{where}: {value!r} does not name a {rtype} of the templates")
        return self.resources[lid]


# -- helpers ----------------------------------------------------------------------------------


def sam_merge(glob: Any, own: Any) -> Any:
    """SAM's Globals rule: maps merged key by key (own wins), lists concatenated, else own."""
    if isinstance(glob, dict) and isinstance(own, dict):
        out = dict(glob)
        for k, v in own.items():
            out[k] = sam_merge(out[k], v) if k in out else v
        return out
    if isinstance(glob, list) and isinstance(own, list):
        return glob + own
    return own


def merged_value(merged: tuple[Any, Path] | None) -> Any:
    return None if merged is None else merged[0]


def param_str(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(param_str(v) for v in value)
    return str(value)


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")

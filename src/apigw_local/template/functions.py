"""Functions and layers: `AWS::Serverless::Function` (CodeUri, Handler, Runtime, Timeout,
MemorySize, Environment, Layers, `HttpApi` events), `AWS::Lambda::Function` whose `Code` is a
local directory, and `AWS::Serverless::LayerVersion` (ContentUri; its `python/` subdirectory
goes first on `sys.path`, as Lambda puts `/opt/python` first).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..intrinsics import TemplateError
from ..model import Function, HttpRoute
from .names import IMPLICIT_HTTP_API, LAYER_TYPES
from .reader import Resource, Stack, merged_value, param_str

log = logging.getLogger("apigw_local.template")


def read_function(stack: Stack, r: Resource) -> tuple[Function, list[HttpRoute]]:
    serverless = r.type == "AWS::Serverless::Function"
    if stack.prop(r, "PackageType", "Zip") != "Zip":
        raise TemplateError(f"{r.where('PackageType')}: only Zip functions can run locally")
    runtime = merged_value(stack.merged(r, "Runtime"))
    if not isinstance(runtime, str):
        raise TemplateError(f"{r.where('Runtime')}: a function needs a Runtime")
    if not runtime.startswith("python"):
        raise TemplateError(
            f"{r.where('Runtime')}: runtime {runtime!r} is not supported (python only)"
        )
    handler = merged_value(stack.merged(r, "Handler"))
    if not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{r.where('Handler')}: expected 'module.function', "
                            f"got {handler!r}")
    code_uri = _code_dir(stack, r, "CodeUri" if serverless else "Code")
    timeout = merged_value(stack.merged(r, "Timeout"))
    memory = merged_value(stack.merged(r, "MemorySize"))
    env = merged_value(stack.merged(r, "Environment")) or {}
    variables = env.get("Variables") or {} if isinstance(env, dict) else None
    if not isinstance(variables, dict):
        raise TemplateError(f"{r.where('Environment')}: expected {{Variables: {{...}}}}")
    try:
        fn = Function(
            logical_id=r.logical_id,
            name=stack.function_name(r),
            code_uri=code_uri,
            handler=handler,
            runtime=runtime,
            timeout=float(timeout) if timeout is not None else 3.0,
            memory_size=int(memory) if memory is not None else 128,
            environment={k: param_str(v) for k, v in variables.items()},
            layers=_layers(stack, r),
        )
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"{r.where()}: {exc}") from None
    routes = _http_events(stack, r) if serverless else []
    return fn, routes


def _code_dir(stack: Stack, r: Resource, prop: str) -> Path:
    merged = stack.merged(r, prop)
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


def _layers(stack: Stack, r: Resource) -> tuple[Path, ...]:
    merged = stack.merged(r, "Layers")
    if merged is None:
        return ()
    arns, _ = merged
    if not isinstance(arns, list):
        raise TemplateError(f"{r.where('Layers')}: expected a list")
    dirs: list[Path] = []
    prefix = f"arn:aws:lambda:{stack.region}:{stack.account_id}:layer:"
    for arn in arns:
        if isinstance(arn, str) and arn.startswith(prefix):
            lid = arn[len(prefix):].rsplit(":", 1)[0]
            if lid in stack.resources and stack.resources[lid].type in LAYER_TYPES:
                dirs.extend(_layer_dirs(stack, stack.resources[lid]))
                continue
        log.warning("%s: layer %s is not part of the templates; skipped",
                    r.where("Layers"), arn)
    return tuple(dict.fromkeys(dirs))  # a layer named twice (Globals + function) once


def _layer_dirs(stack: Stack, layer: Resource) -> list[Path]:
    prop = "ContentUri" if layer.type == "AWS::Serverless::LayerVersion" else "Content"
    value = stack.prop(layer, prop)
    if not isinstance(value, str):
        raise TemplateError(f"{layer.where(prop)}: only a local directory is supported, "
                            f"got {value!r}")
    path = (layer.template.parent / value).resolve()
    if not path.is_dir():
        raise TemplateError(f"{layer.where(prop)}: directory {path} does not exist")
    # Lambda extracts a layer to /opt and puts /opt/python on sys.path (before /opt's
    # other paths); `sam build` places the sources there.
    return [p for p in (path / "python", path) if p.is_dir()]


def _http_events(stack: Stack, r: Resource) -> list[HttpRoute]:
    routes = []
    events = r.properties.get("Events") or {}
    for name, event in events.items():
        where = f"{r.where('Events')}.{name}"
        if not isinstance(event, dict):
            raise TemplateError(f"{where}: an event must be a mapping")
        if event.get("Type") != "HttpApi":
            log.warning("%s: event type %s is not emulated", where, event.get("Type"))
            continue
        props = stack.resolver.resolve(event.get("Properties") or {}, f"{where}.Properties")
        api_id = props.get("ApiId")
        if api_id is None:
            api = IMPLICIT_HTTP_API
        else:
            api = stack.by_physical.get(str(api_id))
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

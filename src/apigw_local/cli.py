"""`apigw-local`: the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

import click

from . import __version__, redact
from .chaos import Chaos, ChaosError
from .emulator import Config, Emulator, load_env_vars
from .server.listener import PortInUse


def _parse_overrides(values: tuple[str, ...], hint: str = "--parameter-overrides"
                     ) -> dict[str, str]:
    """`K=V` pairs; also SAM's `ParameterKey=K,ParameterValue=V` form."""
    out: dict[str, str] = {}
    for value in values:
        for item in value.split() if " " in value and "ParameterKey=" not in value else [value]:
            if item.startswith("ParameterKey="):
                parts = dict(p.split("=", 1) for p in item.split(",") if "=" in p)
                out[parts["ParameterKey"]] = parts.get("ParameterValue", "")
                continue
            if "=" not in item:
                # The item itself is not echoed: it may be a secret missing its key.
                raise click.BadParameter(
                    f"expected KEY=VALUE, got an item without '=' ({len(item)} characters)",
                    param_hint=hint)
            k, v = item.split("=", 1)
            out[k] = v
    return out


# --- parameter values without argv: a file and the environment -----------------------------
PARAMETER_ENV_PREFIX = "APIGW_LOCAL_PARAMETER_"


def _parameters_file(path: Path) -> dict[str, str]:
    """`K=V` lines (`#` comments), a JSON object, or CloudFormation's JSON list of
    `{"ParameterKey": …, "ParameterValue": …}` (as `aws cloudformation … --parameters file://`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise click.BadParameter(str(err), param_hint="--parameter-overrides-file") from err
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise click.BadParameter(f"{path}: not valid JSON: {err}",
                                     param_hint="--parameter-overrides-file") from err
        if isinstance(data, list):
            data = {p.get("ParameterKey"): p.get("ParameterValue", "") for p in data
                    if isinstance(p, dict)}
        if not isinstance(data, dict) or None in data:
            raise click.BadParameter(f"{path}: expected an object of parameter values",
                                     param_hint="--parameter-overrides-file")
        return {str(k): "" if v is None else str(v) for k, v in data.items()}
    lines = [ln.strip() for ln in text.splitlines()]
    return _parse_overrides(tuple(ln for ln in lines if ln and not ln.startswith("#")),
                            hint="--parameter-overrides-file")


def _parameters_from_env() -> dict[str, str]:
    """`APIGW_LOCAL_PARAMETER_<Name>` variables, removed once read so workers never inherit
    them."""
    names = [k for k in os.environ if k.startswith(PARAMETER_ENV_PREFIX)]
    return {k[len(PARAMETER_ENV_PREFIX):]: os.environ.pop(k) for k in names}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="apigw-local")
def main() -> None:
    """Run a SAM template's WebSocket and HTTP APIs locally, as API Gateway serves them.

    Lambda functions run in warm local worker processes; DynamoDB tables are created on an
    embedded moto server (or on --dynamodb-endpoint).
    """


def _backend_options(command):  # type: ignore[no-untyped-def]
    """The backend's options, kept together (see backend.py)."""
    options = [
        click.option("--dynamodb-endpoint", metavar="URL",
                     help="Use this DynamoDB (DynamoDB Local, LocalStack, AWS) instead of the "
                          "embedded moto server; missing tables are created there."),
        click.option("--localstack", is_flag=True,
                     help="Use LocalStack for every AWS call of the functions: its edge URL "
                          "from localstack-client (AWS_ENDPOINT_URL, LOCALSTACK_HOST, "
                          "EDGE_PORT); missing tables are created there."),
        click.option("--dynamodb-port", type=int, default=0,
                     help="Port of the embedded moto server (default: any free port)."),
        click.option("--persist", type=click.Path(file_okay=False, path_type=Path),
                     metavar="DIR",
                     help="Keep the embedded DynamoDB's tables and items in DIR across "
                          "restarts (journaled before each write is answered)."),
        click.option("--edge-port", type=int, default=None, metavar="PORT",
                     help="Also answer as LocalStack's edge on PORT (4566 by convention): "
                          "/_localstack/health, @connections in LocalStack's URL forms, and "
                          "every other AWS call forwarded to the backend, for awslocal and "
                          "localstack_client."),
        click.option("--seed", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="JSON file of items to put in the tables at start (only into "
                          "tables that were just created)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.option("-t", "--template", "templates", multiple=True, default=["template.yaml"],
              show_default=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="SAM/CloudFormation template. Repeat to add overlays: later templates add "
                   "parameters and resources (e.g. local-only routes).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address both ports bind to.")
@click.option("-p", "--port", default=3000, show_default=True, type=int,
              help="Port of the HTTP API and the web client (0: any free port).")
@click.option("--ws-port", default=3001, show_default=True, type=int,
              help="Port of the WebSocket API and its @connections Management API, plain and "
                   "TLS on the same port (0: any free port).")
@click.option("--stage", default=None,
              help="Stage name of the WebSocket API(s) (default: the template's StageName).")
@click.option("--parameter-overrides", "parameter_overrides", multiple=True, metavar="K=V",
              help="Template parameter values, KEY=VALUE (repeatable; several may be given "
                   "space-separated in one argument). Visible to every local user in `ps`: "
                   "pass secrets with --parameter-overrides-file or "
                   f"{PARAMETER_ENV_PREFIX}<Name> environment variables instead.")
@click.option("--parameter-overrides-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Template parameter values from a file: KEY=VALUE lines, a JSON object, or "
                   "CloudFormation's JSON list. Environment variables "
                   f"{PARAMETER_ENV_PREFIX}<Name> override it; --parameter-overrides wins.")
@click.option("--env-vars", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSON file of environment overrides, as for `sam local`: '
                   '{"Parameters": {...}, "FunctionLogicalId": {...}}.')
@_backend_options
@click.option("--static", "static_dir", type=click.Path(exists=True, file_okay=False,
                                                        path_type=Path),
              help="Directory served as the web client on the HTTP port (default: web/ next "
                   "to the first template, if present).")
@click.option("--no-static", is_flag=True, help="Serve no web client.")
@click.option("--endpoints-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the served endpoints (websocket, http, connections, web) as JSON.")
@click.option("--idle-timeout", type=float, default=600, show_default=True,
              help="Seconds without traffic before a WebSocket closes with 1001 (AWS: 600).")
@click.option("--max-connection-duration", type=float, default=7200, show_default=True,
              help="Seconds before any WebSocket closes with 1001 (AWS: 7200).")
@click.option("--worker-idle-timeout", type=click.FloatRange(min=0, min_open=True),
              default=300, show_default=True,
              help="Seconds an idle worker stays warm before it is stopped, as Lambda reclaims "
                   "idle execution environments.")
@click.option("--max-concurrency", type=click.IntRange(min=1), default=None,
              help="Worker processes per function (further invocations queue). "
                   "Default: twice the CPUs, at most 10.")
@click.option("--region", default="us-east-1", show_default=True, help="AWS::Region.")
@click.option("--stack-name", default="apigw-local", show_default=True,
              help="AWS::StackName (default table names derive from it).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the local CA lives (default: .local/apigw-local).")
@click.option("--prewarm", is_flag=True, help="Start one worker per function at start.")
@click.option("--management-transport", type=click.Choice(["direct", "http"]), default="direct",
              show_default=True, envvar="APIGW_LOCAL_MANAGEMENT_TRANSPORT",
              help="How the functions' boto3 reaches this emulator's @connections: 'direct' "
                   "(botocore validates and parses as usual; the request skips HTTP/TLS) or "
                   "'http' (a real HTTPS request, as in AWS).")
@click.option("--reload/--no-reload", default=False, show_default=True,
              help="Watch the functions' code, their layers and the template(s): a change "
                   "takes effect on the next invocation (docs/devloop.md).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="Invocation logs: Lambda's START/END/REPORT lines (coloured on a terminal) "
                   "or one JSON object a line.")
@click.option("--chaos", "chaos_spec", metavar="SPEC",
              help="Inject faults, e.g. gone=0.2,throttle=0.1,latency=20-80,dynamodb=0.05,"
                   "drop=0.01,timeout=0.02 (docs/chaos.md).")
@click.option("--chaos-seed", type=int, help="Seed of --chaos (default: a random one, printed).")
@click.option("--inspector/--no-inspector", default=True, show_default=True,
              help="Serve the inspector page at /_apigw-local/ on the HTTP port (loopback).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def start(templates: tuple[Path, ...], host: str, port: int, ws_port: int, stage: str | None,
          parameter_overrides: tuple[str, ...], parameter_overrides_file: Path | None,
          env_vars: Path | None,
          dynamodb_endpoint: str | None, localstack: bool, dynamodb_port: int,
          persist: Path | None, edge_port: int | None, seed: Path | None, static_dir: Path | None,
          no_static: bool, endpoints_file: Path | None, idle_timeout: float,
          max_connection_duration: float, worker_idle_timeout: float, max_concurrency: int | None,
          region: str,
          stack_name: str, state_dir: Path | None, prewarm: bool, management_transport: str,
          reload: bool, log_format: str, chaos_spec: str | None, chaos_seed: int | None,
          inspector: bool, verbose: bool) -> None:
    """Serve the template's APIs until Ctrl-C."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr,
    )
    redact.install()
    parameters = _parameters_file(parameter_overrides_file) if parameter_overrides_file else {}
    parameters |= _parameters_from_env()
    parameters |= _parse_overrides(parameter_overrides)
    try:
        env = load_env_vars(env_vars) if env_vars else {}
    except (ValueError, OSError) as err:
        raise click.BadParameter(str(err), param_hint="--env-vars") from err
    chaos = None
    if chaos_spec:
        try:
            chaos = Chaos.parse(chaos_spec, seed=chaos_seed)
        except ChaosError as err:
            raise click.BadParameter(str(err), param_hint="--chaos") from err
    elif chaos_seed is not None:
        raise click.BadParameter("give --chaos too", param_hint="--chaos-seed")
    config = Config(
        reload=reload, log_format=log_format, chaos=chaos, inspector=inspector,
        templates=list(templates), host=host, port=port, ws_port=ws_port, stage=stage,
        parameter_overrides=parameters, env_vars=env,
        dynamodb_endpoint=dynamodb_endpoint, localstack=localstack,
        dynamodb_port=dynamodb_port, persist=persist, edge_port=edge_port, seed=seed,
        static_dir=static_dir,
        serve_static=not no_static, endpoints_file=endpoints_file, idle_timeout=idle_timeout,
        max_connection_duration=max_connection_duration, max_concurrency=max_concurrency,
        worker_idle_timeout=worker_idle_timeout,
        region=region, stack_name=stack_name, state_dir=state_dir, prewarm=prewarm,
        management_transport=management_transport,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(config), loop_factory=_loop_factory())


def _port_option(port: int, config: Config) -> str:
    """The option that chose a port that is in use."""
    if port == config.ws_port:
        return "--ws-port"
    return "--edge-port" if port == config.edge_port else "--port"


def _loop_factory():  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _run(config: Config) -> None:
    from .backend import BackendError
    from .intrinsics import TemplateError

    emulator = Emulator(config)
    try:
        endpoints = await emulator.start()
    except TemplateError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except BackendError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    except PortInUse as err:
        click.echo(f"error: cannot listen on {err.host}:{err.port}: the port is in use "
                   f"({err.reason}); choose another with "
                   f"{_port_option(err.port, config)}", err=True)
        sys.exit(1)
    click.echo("apigw-local is serving:")
    click.echo(f"  WebSocket API   {endpoints.websocket}")
    for lid, url in endpoints.websockets.items():
        if url != endpoints.websocket:
            click.echo(f"                  {url}  ({lid})")
    click.echo(f"  @connections    {endpoints.connections}  (also https:// on the same port)")
    click.echo(f"  HTTP API        {endpoints.http}")
    if endpoints.web:
        click.echo(f"  web client      {endpoints.web}")
    if endpoints.dynamodb:
        click.echo(f"  DynamoDB        {endpoints.dynamodb}")
    if emulator.edge_url:
        click.echo(f"  LocalStack edge {emulator.edge_url}  (awslocal, localstack_client)")
    click.echo(f"  local CA bundle {endpoints.ca_bundle}")
    for line in emulator.devloop.banner(endpoints):
        click.echo(line)
    click.echo("Ctrl-C stops.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # Ctrl-C, or a backend that cannot be kept alive (backend.py says why).
    waiters = [asyncio.ensure_future(stop.wait()),
               asyncio.ensure_future(emulator.backend.failed.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        click.echo("stopping…", err=True)
        await emulator.stop()
    if emulator.backend.failed.is_set():
        click.echo(f"error: {emulator.backend.failure}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Deploy template.yaml to a running LocalStack: `make deploy-localstack`.

    python -m scripts.localstack_deploy [--stack realtime-app-local] [--check]

Checks first that LocalStack answers at its edge (`/_localstack/health`, found as
`localstack-client` finds it: AWS_ENDPOINT_URL, LOCALSTACK_HOST, EDGE_PORT) and that
LOCALSTACK_AUTH_TOKEN is set — the template's WebSocket API needs a LocalStack plan with
API Gateway v2 — and stops with one line naming what is missing. Then `samlocal build` and
`samlocal deploy`, then the stack's outputs and web/config.json (scripts.web_config).

The AuthSecret reaches samlocal through a samconfig file under .local/ (mode 600), never
through process arguments: `sam deploy --parameter-overrides` reads only argv and samconfig.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from apigw_local.backend import BackendError, localstack_endpoint
from scripts import web_config

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
SECRET_FILE = LOCAL / "auth-secret"
SAMCONFIG = LOCAL / "samconfig-localstack.toml"
STACK = "realtime-app-local"
REGION = "us-east-1"


class NotReady(Exception):
    """Something the deploy needs before it starts; the message is the one line shown."""


def health(edge: str) -> dict:
    """LocalStack's health document, or NotReady saying that nothing answers there."""
    try:
        with urllib.request.urlopen(f"{edge}/_localstack/health", timeout=3) as answer:
            return json.loads(answer.read() or b"{}")
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise NotReady(f"no LocalStack answers at {edge} ({reason}): start it "
                       "(localstack start -d) or set AWS_ENDPOINT_URL / LOCALSTACK_HOST") from None


def check() -> str:
    """The edge URL, once LocalStack answers there and an auth token is set."""
    try:
        edge = localstack_endpoint()
    except BackendError as error:
        raise NotReady(str(error)) from None
    if not os.environ.get("LOCALSTACK_AUTH_TOKEN"):
        raise NotReady("LOCALSTACK_AUTH_TOKEN is not set: the template's WebSocket API needs "
                       "a LocalStack plan with API Gateway v2 (see README, LocalStack plans)")
    health(edge)
    return edge


def write_samconfig(stack: str, secret: str, path: Path = SAMCONFIG) -> Path:
    """samlocal's deploy options with the AuthSecret, readable by this user alone."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    quoted = json.dumps(f"AuthSecret={secret}")  # a TOML basic string is a JSON string
    text = (
        "version = 0.1\n\n[default.deploy.parameters]\n"
        f'stack_name = "{stack}"\nregion = "{REGION}"\ncapabilities = "CAPABILITY_IAM"\n'
        "resolve_s3 = true\nconfirm_changeset = false\nfail_on_empty_changeset = false\n"
        f"parameter_overrides = {quoted}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def point_at(edge: str) -> None:
    """samlocal and boto3 (this process's and its children's) sent to the edge, with
    LocalStack's dummy credentials unless the user has their own."""
    os.environ.update(AWS_ENDPOINT_URL=edge, AWS_DEFAULT_REGION=REGION)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.localstack_deploy")
    parser.add_argument("--stack", default=STACK)
    parser.add_argument("--samlocal", default=str(ROOT / ".venv-sam" / "bin" / "samlocal"))
    parser.add_argument("--check", action="store_true", help="only check LocalStack is usable")
    args = parser.parse_args(argv)
    try:
        edge = check()
    except NotReady as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        print(f"LocalStack answers at {edge}")
        return 0
    point_at(edge)
    config = write_samconfig(args.stack, SECRET_FILE.read_text().strip())
    print(f"==> samlocal deploy to {edge} (stack {args.stack})", flush=True)
    if subprocess.run([args.samlocal, "deploy", "--config-file", str(config)],
                      cwd=ROOT).returncode:
        return 1
    return web_config.main(["--stack", args.stack, "--region", REGION,
                            "--output", str(ROOT / "web" / "config.json")])


if __name__ == "__main__":
    sys.exit(main())

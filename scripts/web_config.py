"""Print a deployed stack's outputs and write the web client's config from them.

    python -m scripts.web_config [--stack NAME] [--region REGION] [--output web/config.json]

prints every output of the stack (CloudFormation DescribeStacks, with the usual AWS
credentials) and writes `{"websocketUrl": …, "httpApiUrl": …}` from its `WebSocketUrl` and
`HttpApiUrl` outputs. The stack name and region default to those `sam deploy` uses, from
samconfig.toml (`make outputs`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

SAMCONFIG = Path(__file__).resolve().parent.parent / "samconfig.toml"


def config_from_outputs(outputs: list[dict[str, Any]]) -> dict[str, str]:
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    missing = [k for k in ("WebSocketUrl", "HttpApiUrl") if k not in values]
    if missing:
        raise KeyError(f"the stack has no output {', '.join(missing)}")
    return {"websocketUrl": values["WebSocketUrl"], "httpApiUrl": values["HttpApiUrl"]}


def samconfig_defaults(path: Path = SAMCONFIG) -> dict[str, str]:
    """`stack_name` and `region` as `sam deploy` reads them from samconfig.toml's default
    environment (deploy's own parameters win over the global ones)."""
    try:
        config = tomllib.loads(path.read_text()).get("default", {})
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    merged = {**config.get("global", {}).get("parameters", {}),
              **config.get("deploy", {}).get("parameters", {})}
    return {k: str(merged[k]) for k in ("stack_name", "region") if k in merged}


def explain(error: Exception) -> str:
    """What to do about an AWS call that failed before reaching AWS, or AWS's own answer."""
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found (configure a profile or export AWS_PROFILE)"
    if isinstance(error, NoRegionError):
        return "no AWS region (pass --region, export AWS_DEFAULT_REGION, or deploy: make deploy)"
    return str(error)


def main(argv: list[str] | None = None, cloudformation: Any | None = None,
         samconfig: Path = SAMCONFIG) -> int:
    defaults = samconfig_defaults(samconfig)
    parser = argparse.ArgumentParser(prog="python -m scripts.web_config")
    parser.add_argument("--stack", default=defaults.get("stack_name"))
    parser.add_argument("--output", default="web/config.json", type=Path)
    parser.add_argument("--region", default=defaults.get("region"))
    args = parser.parse_args(argv)
    if not args.stack:
        print("error: no stack name (pass --stack, or deploy first: make deploy)",
              file=sys.stderr)
        return 2
    try:
        client = cloudformation or boto3.client("cloudformation", region_name=args.region)
        stacks = client.describe_stacks(StackName=args.stack)["Stacks"]
        outputs = stacks[0].get("Outputs", [])
        config = config_from_outputs(outputs)
    except (ClientError, BotoCoreError, KeyError, IndexError) as error:
        print(f"error: cannot read stack {args.stack!r}: {explain(error)}", file=sys.stderr)
        return 2
    width = max(len(o["OutputKey"]) for o in outputs)
    for output in sorted(outputs, key=lambda o: o["OutputKey"]):
        print(f"{output['OutputKey']:<{width}}  {output['OutputValue']}")
    args.output.write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the web client's config from a deployed stack's outputs.

    python -m scripts.web_config --stack realtime-app --output web/config.json

writes `{"websocketUrl": …, "httpApiUrl": …}` read from the stack's `WebSocketUrl` and
`HttpApiUrl` outputs (CloudFormation DescribeStacks, with the usual AWS credentials).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError


def config_from_outputs(outputs: list[dict[str, Any]]) -> dict[str, str]:
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    missing = [k for k in ("WebSocketUrl", "HttpApiUrl") if k not in values]
    if missing:
        raise KeyError(f"the stack has no output {', '.join(missing)}")
    return {"websocketUrl": values["WebSocketUrl"], "httpApiUrl": values["HttpApiUrl"]}


def main(argv: list[str] | None = None, cloudformation: Any | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.web_config")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--output", default="web/config.json", type=Path)
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    try:
        client = cloudformation or boto3.client("cloudformation", region_name=args.region)
        stacks = client.describe_stacks(StackName=args.stack)["Stacks"]
        config = config_from_outputs(stacks[0].get("Outputs", []))
    except NoCredentialsError:
        print(
            "error: no AWS credentials found (configure a profile or export AWS_PROFILE)",
            file=sys.stderr,
        )
        return 2
    except (ClientError, BotoCoreError, KeyError, IndexError) as error:
        print(f"error: cannot read stack {args.stack!r}: {error}", file=sys.stderr)
        return 2
    args.output.write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {args.output}: {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Publish the web client to a deployed stack: `make deploy` runs it after `sam deploy`.

    python -m scripts.web_publish [--stack NAME] [--region REGION] [--web web]
    python -m scripts.web_publish --empty      (make delete: a bucket must be empty to go)

uploads the web client's files (those apigw-local serves: no package.json, from
node_modules only what the pages load) and a `config.json` made from the stack's outputs to
its `WebBucketName` bucket, removes what is no longer there, invalidates its CloudFront
distribution (`WebDistributionId`) and prints the URL to open (`WebUrl`).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from apigw_local.server.static import StaticSite
from scripts.web_config import config_from_outputs, explain, samconfig_defaults

WEB = Path(__file__).resolve().parent.parent / "web"
# CloudFront keeps an object at most its cache policy's minimum TTL (1 s for
# Managed-CachingOptimized) when the origin says no-cache; each publish also invalidates.
CACHE_CONTROL = "no-cache"


def web_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(key, path) of every file of the web client under `root`, in a stable order."""
    site = StaticSite(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).parts
        if site.allowed(rel) and rel != ("config.json",):
            yield "/".join(rel), path


def content_type(key: str) -> str:
    ctype = mimetypes.guess_type(key)[0] or "application/octet-stream"
    textual = ctype.startswith("text/") or ctype in ("application/javascript",
                                                     "application/json")
    return f"{ctype}; charset=utf-8" if textual else ctype


def publish(outputs: dict[str, str], root: Path, s3: Any, cloudfront: Any) -> list[str]:
    """Upload, prune, invalidate; the keys uploaded."""
    bucket = outputs["WebBucketName"]
    config = config_from_outputs([{"OutputKey": k, "OutputValue": v}
                                  for k, v in outputs.items()])
    uploaded = []
    for key, path in web_files(root):
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(),
                      ContentType=content_type(key), CacheControl=CACHE_CONTROL)
        uploaded.append(key)
    s3.put_object(Bucket=bucket, Key="config.json", Body=json.dumps(config).encode(),
                  ContentType=content_type("config.json"), CacheControl=CACHE_CONTROL)
    uploaded.append("config.json")
    stale = [key for key in bucket_keys(s3, bucket) if key not in set(uploaded)]
    delete_keys(s3, bucket, stale)
    cloudfront.create_invalidation(
        DistributionId=outputs["WebDistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]},
                           "CallerReference": str(time.time_ns())},
    )
    return uploaded


def bucket_keys(s3: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        batch = [{"Key": k} for k in keys[start:start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def main(argv: list[str] | None = None, clients: dict[str, Any] | None = None) -> int:
    defaults = samconfig_defaults()
    parser = argparse.ArgumentParser(prog="python -m scripts.web_publish")
    parser.add_argument("--stack", default=defaults.get("stack_name"))
    parser.add_argument("--region", default=defaults.get("region"))
    parser.add_argument("--web", type=Path, default=WEB)
    parser.add_argument("--empty", action="store_true", help="only empty the bucket")
    args = parser.parse_args(argv)
    if not args.stack:
        print("error: no stack name (pass --stack, or deploy first: make deploy)",
              file=sys.stderr)
        return 2
    clients = clients or {name: boto3.client(name, region_name=args.region)
                          for name in ("cloudformation", "s3", "cloudfront")}
    try:
        stack = clients["cloudformation"].describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        missing = [k for k in ("WebBucketName", "WebDistributionId", "WebUrl")
                   if k not in outputs]
        if missing:
            print(f"error: stack {args.stack!r} has no output {', '.join(missing)} "
                  "(deployed from an older template? make deploy)", file=sys.stderr)
            return 2
        if args.empty:
            keys = bucket_keys(clients["s3"], outputs["WebBucketName"])
            delete_keys(clients["s3"], outputs["WebBucketName"], keys)
            print(f"emptied {outputs['WebBucketName']} ({len(keys)} objects)")
            return 0
        uploaded = publish(outputs, args.web, clients["s3"], clients["cloudfront"])
    except (ClientError, BotoCoreError, KeyError, IndexError) as error:
        print(f"error: cannot publish the web client of stack {args.stack!r}: "
              f"{explain(error)}", file=sys.stderr)
        return 2
    print(f"uploaded {len(uploaded)} files to {outputs['WebBucketName']}")
    print(f"web client: {outputs['WebUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print a signed token for the app: `python -m scripts.token --user alice --role admin`.

The secret comes from the environment (`AUTH_SECRET`): `make token` passes the local one,
for a deployed stack pass the AuthSecret you deployed with.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

# The token format lives in the Lambda layer; use that very code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "layers" / "shared"))

from realtime import auth  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.token", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--user", required=True, help="user id and display name ([A-Za-z0-9_-]{1,64})"
    )
    parser.add_argument("--role", default="user", choices=auth.ROLES)
    parser.add_argument("--hours", type=float, default=12, help="validity (default 12)")
    args = parser.parse_args(argv)
    secret = os.environ.get("AUTH_SECRET")
    if not secret:
        print(
            "error: AUTH_SECRET is not set (use `make token`, or export the stack's AuthSecret)",
            file=sys.stderr,
        )
        return 2
    try:
        print(auth.issue(secret, args.user, args.role, ttl=timedelta(hours=args.hours)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Give a deployed stack a new token key: `make rotate-secret STACK=realtime-app`.

Secrets Manager makes the key (GetRandomPassword, 64 letters and digits) and this script
stores it as the current version of the stack's secret (PutSecretValue on its AuthSecretArn
output): the key passes through this process's memory only, never a command's arguments, a
file or the terminal. Functions pick it up within the layer's cache time (5 minutes); tokens
signed with the old key stop working then. `make token STACK=…` signs with the new one.

The stack's `AuthSecret` parameter still holds the first key. CloudFormation writes that value
back into the secret only when a deploy updates the `AuthTokenSecret` resource itself (a change
to its properties in the template); docs/deploy.md says what to do then.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from scripts.token import STACK_ERRORS, stack_clients, stack_secret_arn
from scripts.web_config import explain, samconfig_defaults

KEY_LENGTH = 64  # letters and digits: about 380 bits, well over HS256's 256


def rotate(stack: str, cloudformation: Any, secretsmanager: Any) -> str:
    """Store a new key, made by Secrets Manager, in `stack`'s token secret; its ARN."""
    arn = stack_secret_arn(stack, cloudformation)
    key = secretsmanager.get_random_password(
        PasswordLength=KEY_LENGTH, ExcludePunctuation=True)["RandomPassword"]
    secretsmanager.put_secret_value(SecretId=arn, SecretString=key)
    return arn


def main(argv: list[str] | None = None, clients: tuple[Any, Any] | None = None) -> int:
    defaults = samconfig_defaults()
    parser = argparse.ArgumentParser(prog="python -m scripts.rotate_secret",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default=defaults.get("stack_name"),
                        help="the deployed stack (default: samconfig.toml's stack_name)")
    parser.add_argument("--region", default=defaults.get("region"))
    args = parser.parse_args(argv)
    if not args.stack:
        print("error: which stack? pass --stack (or deploy once: make deploy)", file=sys.stderr)
        return 2
    try:
        arn = rotate(args.stack, *stack_clients(args.region, clients))
    except STACK_ERRORS as error:
        print(f"error: cannot rotate the key of stack {args.stack!r}: {explain(error)}",
              file=sys.stderr)
        return 2
    print(f"stack {args.stack}: a new token key is stored in {arn}; functions use it within "
          "5 minutes, and tokens signed with the old key stop working then")
    return 0


if __name__ == "__main__":
    sys.exit(main())

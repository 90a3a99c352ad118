"""Signed tokens: HS256 JWTs with `sub` (user id and display name), `role`, `iat`, `exp`.

The key is the stack's `AuthSecret` parameter, kept in Secrets Manager: functions get the
secret's ARN (`AUTH_SECRET_ARN`), never the key itself, and read it with Powertools
Parameters, cached for `SECRET_MAX_AGE` seconds per execution environment.

Verification is strict: the algorithm is pinned, and `sub`, `role`, `iat` and `exp` are all
required, so a token signed for something else does not pass as one of ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from aws_lambda_powertools.utilities import parameters

from realtime import clock
from realtime.models import NAME_PATTERN, is_name

ALGORITHM = "HS256"
DEFAULT_TTL = timedelta(hours=12)
ROLES = ("user", "admin")
# A new AuthSecret reaches warm functions within this many seconds of a deploy.
SECRET_MAX_AGE = 300


class AuthError(Exception):
    """The token is missing, malformed, badly signed, expired or carries invalid claims."""


@dataclass(frozen=True)
class Identity:
    user: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def secret() -> str:
    """The token key, from the Secrets Manager secret that `AUTH_SECRET_ARN` names."""
    arn = os.environ.get("AUTH_SECRET_ARN", "")
    if not arn:
        raise RuntimeError("AUTH_SECRET_ARN is not set: the function cannot check tokens")
    return parameters.get_secret(arn, max_age=SECRET_MAX_AGE)


def issue(
    secret: str, user: str, role: str, *, ttl: timedelta = DEFAULT_TTL, now: datetime | None = None
) -> str:
    if not is_name(user):
        raise ValueError(f"user must match {NAME_PATTERN}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    issued = now or clock.now()
    claims = {
        "sub": user,
        "role": role,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str | None) -> Identity:
    if not token:
        raise AuthError("missing token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "role", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as error:
        raise AuthError(f"invalid token: {error}") from None
    user, role = claims["sub"], claims["role"]
    if not is_name(user) or role not in ROLES:
        raise AuthError("invalid token claims")
    return Identity(user=user, role=role)


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None

"""Signed tokens: HS256 JWTs with `sub` (user id and display name), `role`, `iat`, `exp`.

The secret is the stack's `AuthSecret` parameter, handed to functions as `AUTH_SECRET`.
Verification is strict: the algorithm is pinned, and `sub`, `role`, `iat` and `exp` are all
required, so a token signed for something else does not pass as one of ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from realtime import clock
from realtime.models import NAME_PATTERN, is_name

ALGORITHM = "HS256"
DEFAULT_TTL = timedelta(hours=12)
ROLES = ("user", "admin")


class AuthError(Exception):
    """The token is missing, malformed, badly signed, expired or carries invalid claims."""


@dataclass(frozen=True)
class Identity:
    user: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def secret_from_env() -> str:
    secret = os.environ.get("AUTH_SECRET", "")
    if not secret:
        raise RuntimeError("AUTH_SECRET is not set: the function cannot check tokens")
    return secret


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

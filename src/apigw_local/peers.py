"""Which local user a loopback connection comes from, so apigw-local serves only its own user.

Anything listening on 127.0.0.1 is reachable by every account on the machine, and a process
of another account is not a browser: it sends whatever `Origin` it likes. The kernel knows
who owns the other end of a loopback connection, though: both sockets are on this host.

On Linux the socket-diagnostics netlink interface looks one TCP socket up by its four-tuple
and answers its owner's uid (sock_diag(7): `SOCK_DIAG_BY_FAMILY` with an exact
`inet_diag_sockid`, the lookup `ss` does; it needs no privilege and costs a hash lookup,
where reading /proc/net/tcp walks the whole connection table: `python -m bench.owner_lookup`).
The client's socket is the one whose source is our peer and whose destination is our own
address.

Elsewhere (macOS, Windows) there is no such lookup without privileges: `owner_check()` says
so once, and every peer is served as before.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct

log = logging.getLogger("apigw_local.peers")

_NETLINK_SOCK_DIAG = 4  # linux/netlink.h
_SOCK_DIAG_BY_FAMILY = 20  # linux/sock_diag.h
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: match by address alone
_ALL_STATES = 0xFFFFFFFF
# struct nlmsghdr (16 bytes), then struct inet_diag_msg: family, state, timer, retrans (4),
# inet_diag_sockid (48), expires, rqueue, wqueue (12), uid, inode.
_UID_OFFSET = 16 + 4 + 48 + 12


class PeerLookupUnavailable(OSError):
    """This system offers no unprivileged way to find a socket's owner."""


def _sockid(family: int, src: str, sport: int, dst: str, dport: int) -> bytes:
    def addr(ip: str) -> bytes:
        return socket.inet_pton(family, ip).ljust(16, b"\0")

    return (struct.pack("!HH", sport, dport) + addr(src) + addr(dst)
            + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE))


def _lookup(family: int, src: str, sport: int, dst: str, dport: int) -> int | None:
    request = (struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES)
               + _sockid(family, src, sport, dst, dport))
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    netlink = getattr(socket, "AF_NETLINK", None)
    if netlink is None:
        raise PeerLookupUnavailable("no netlink sockets on this system")
    with socket.socket(netlink, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.send(header + request)
        answer = nl.recv(8192)
    _length, kind = struct.unpack_from("=IH", answer)
    if kind == _NLMSG_ERROR:
        return None  # ENOENT: no such socket here (the peer is gone, or not on this host)
    return struct.unpack_from("=I", answer, _UID_OFFSET)[0]


def peer_uid(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The uid owning the other end of the TCP connection from `peer` to our `local` address;
    None when `peer` is not a loopback address or its socket is not found.
    Raises PeerLookupUnavailable where the system cannot tell."""
    try:
        ip = ipaddress.ip_address(peer[0].split("%", 1)[0])
        ours = ipaddress.ip_address(local[0].split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)):
        return None
    candidates = []
    if mapped is not None:  # our dual-stack socket saw an IPv4 client: either family
        ours4 = getattr(ours, "ipv4_mapped", None) or ours
        candidates.append((socket.AF_INET, str(mapped), str(ours4)))
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    candidates.append((family, str(ip), str(ours)))
    for fam, src, dst in candidates:
        try:
            uid = _lookup(fam, src, peer[1], dst, local[1])
        except PeerLookupUnavailable:
            raise
        except OSError as err:
            raise PeerLookupUnavailable(str(err)) from err
        if uid is not None:
            return uid
    return None


class OwnerCheck:
    """Lets in loopback peers owned by `uid` (this process's user), and peers that are not on
    loopback (a host bound on purpose to another interface, where uids mean nothing)."""

    def __init__(self, uid: int | None = None, announce: bool = True) -> None:
        """`announce`: say (once, here) when owners cannot be looked up on this system."""
        self.uid = os.getuid() if uid is None else uid
        self.available = _probe(announce)

    def stranger(self, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
        """The uid of a peer that belongs to another local user; None: let it in."""
        if not self.available:
            return None
        try:
            uid = peer_uid(peer, local)
        except PeerLookupUnavailable:
            return None
        return uid if uid is not None and uid != self.uid else None

    def explain(self, uid: int) -> str:
        return (f"Forbidden: this apigw-local serves only the local user who started it "
                f"(uid {self.uid}); this connection belongs to uid {uid}")


def _probe(announce: bool) -> bool:
    """Whether owners can be looked up here; with `announce`, a warning when they cannot."""
    try:
        _lookup(socket.AF_INET, "127.0.0.1", 0, "127.0.0.1", 0)
    except (PeerLookupUnavailable, OSError) as err:
        if announce:
            log.warning("other local users can reach apigw-local's ports: this system cannot "
                        "tell which user a loopback connection belongs to (%s)", err)
        return False
    return True

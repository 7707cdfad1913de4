"""Every process of the local stack listens on loopback only (no port reachable from another machine)."""

from __future__ import annotations

import ipaddress
import socket

import psutil
import pytest

from headwater.stack import supervisor

pytestmark = pytest.mark.integration


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _listening(proc: psutil.Process) -> list[tuple[str, int, str]]:
    """(ip, port, kind) of every TCP socket listening and every UDP socket bound, by ``proc`` and its children."""
    out = []
    for p in [proc, *proc.children(recursive=True)]:
        for conn in p.net_connections(kind="inet"):
            if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
                out.append((conn.laddr.ip, conn.laddr.port, "tcp"))
            elif conn.type == socket.SOCK_DGRAM and conn.laddr and not conn.raddr:
                out.append((conn.laddr.ip, conn.laddr.port, "udp"))
    return out


def test_every_stack_process_listens_on_loopback_only(stack) -> None:  # type: ignore[no-untyped-def]
    exposed, seen = [], {}
    for svc in stack.services:
        proc = supervisor.find(stack.config.root, svc.name)
        assert proc is not None, f"{svc.name} is not running"
        sockets = _listening(proc)
        seen[svc.name] = sockets
        exposed += [
            f"{svc.name} (pid {proc.pid}) {kind} {ip}:{port}" for ip, port, kind in sockets if not _is_loopback(ip)
        ]
        # Not vacuous: the service's own ports are among the sockets looked at.
        missing = set(svc.ports) - {port for _, port, kind in sockets if kind == "tcp"}
        assert not missing, f"{svc.name}: ports {sorted(missing)} not found listening: {sockets}"
    assert not exposed, "listening beyond loopback:\n" + "\n".join(exposed)
    print({name: sorted(f"{ip}:{port}/{kind}" for ip, port, kind in s) for name, s in seen.items()})


def test_the_check_sees_a_wildcard_socket() -> None:
    assert not _is_loopback("::") and not _is_loopback("0.0.0.0") and not _is_loopback("192.0.2.2")
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("::ffff:127.0.0.1")


def test_a_local_spark_driver_listens_on_loopback_only(spark) -> None:  # type: ignore[no-untyped-def]
    """The stages' Spark drivers (local master) keep their RPC and block-manager ports on loopback."""
    assert spark.range(3).count() == 3
    sockets = [s for s in _listening(psutil.Process()) if s[2] == "tcp"]
    assert sockets, "the driver JVM should listen somewhere"
    assert not [s for s in sockets if not _is_loopback(s[0])], sockets

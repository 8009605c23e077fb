"""A real network blackhole between test processes and PostgreSQL.

A network namespace of its own, joined to this one by a veth pair, and a TCP forwarder on the
host end of the pair to PostgreSQL (which listens on loopback only). Processes started with
``popen`` run inside the namespace and reach PostgreSQL at ``url``. ``cut()`` takes the link
down: packets are dropped both ways and nobody's socket is closed, as when a network
partitions. Needs root (CAP_NET_ADMIN); ``available()`` says whether this machine allows it.
Only this test's namespace, pair and subnet are touched; ``close()`` removes them.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
from urllib.parse import urlsplit, urlunsplit


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def available() -> str | None:
    """None when a namespace can be made here; otherwise why not."""
    name = f"vbh-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", name)
        _ip("netns", "del", name)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"needs `ip netns` as root (CAP_NET_ADMIN): {exc}"
    return None


class Blackhole:
    def __init__(self, target_url: str):
        tag = secrets.token_hex(3)
        self.netns = f"vbh-{tag}"
        self.host_if, self.ns_if = f"vbh{tag}h", f"vbh{tag}n"
        third, fourth = secrets.randbelow(256), 4 * secrets.randbelow(64)
        self.host_ip = f"10.{240 + secrets.randbelow(16)}.{third}.{fourth + 1}"
        self.ns_ip = f"10.{self.host_ip.split('.')[1]}.{third}.{fourth + 2}"
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._parts = parts
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self.url = ""

    def __enter__(self) -> Blackhole:
        try:
            self._link()
            self._listener = socket.create_server((self.host_ip, 0))
            port = self._listener.getsockname()[1]
            user = f"{self._parts.username}@" if self._parts.username else ""
            self.url = urlunsplit(self._parts._replace(netloc=f"{user}{self.host_ip}:{port}"))
            threading.Thread(target=self._accept, daemon=True).start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _link(self) -> None:
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.netns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        inside = ["netns", "exec", self.netns, "ip"]
        _ip(*inside, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        _ip(*inside, "link", "set", self.ns_if, "up")
        _ip(*inside, "link", "set", "lo", "up")

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside the namespace."""
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], **kwargs)

    def cut(self) -> None:
        """Drop every packet on the link from now on, both ways; sockets stay open on both
        sides. (The link goes down, so a new connection fails at once as unreachable rather
        than waiting for its ``connect_timeout``: established ones are what is tested.)"""
        _ip("netns", "exec", self.netns, "ip", "link", "set", self.ns_if, "down")
        _ip("link", "set", self.host_if, "down")

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        for args in (("link", "del", self.host_if), ("netns", "del", self.netns)):
            try:
                _ip(*args)
            except (OSError, subprocess.SubprocessError):
                pass

    # -- the forwarder -------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for sock in (src, dst):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

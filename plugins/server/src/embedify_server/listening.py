"""The server's listening socket, bound before the model loads, so a taken port fails at once.

uvicorn binds only after the application started (the model loaded), and then reports a taken
port as a log line and exit status 1 or 3. Binding here first turns that into one error that
names the port, the process holding it when this machine can tell, and ``--port``.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path


class PortInUseError(OSError):
    """Another socket listens on the port; the message names it and the fix."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (the first address ``host`` resolves to), as uvicorn
    would bind it; errors say which address failed and what to pass instead."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise OSError(
            f"cannot listen on {host!r}: {error.strerror}; pass an address of this machine "
            "with --host, e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    listener = socket.socket(family, kind, protocol)
    if os.name == "posix":  # as uvicorn and asyncio do: a restart reuses a port in TIME_WAIT
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            owner = port_owner(port)
            held = f" by {owner}" if owner else ""
            raise PortInUseError(
                f"port {port} on {host} is already in use{held}: stop that process, or serve "
                f"on another port with --port, e.g. --port {port + 1}"
            ) from None
        raise OSError(
            f"cannot listen on {host}:{port}: {error.strerror}; pick another --host or --port"
        ) from None
    listener.set_inheritable(True)
    return listener


def port_owner(port: int) -> str | None:
    """``"pid 1234 (python3)"`` for the process listening on TCP ``port``, read from /proc
    (Linux, processes this user may inspect); ``None`` where that cannot be told."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                sockets.add(f"socket:[{inode}]")
    if not sockets:
        return None
    for descriptors in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in sockets for fd in descriptors.iterdir()):
                name = (descriptors.parent / "comm").read_text().strip()
                return f"pid {descriptors.parent.name} ({name})"
        except OSError:  # another user's process, or one that just ended
            continue
    return None

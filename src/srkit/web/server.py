"""Running the web app: on a loopback address unless asked otherwise, in the foreground or in a thread."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from srkit.errors import SrkitError
from srkit.web.app import Limits, create_app

log = logging.getLogger(__name__)


def check_host(host: str, public: bool = False) -> None:
    """Refuse an address that other machines can reach, unless `public` says that is meant."""
    if not public and not is_loopback(host):
        raise SrkitError(
            f"{host} is not a loopback address: anyone who can reach it could use this machine; "
            "add --public to serve there"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), so that a taken port is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise SrkitError(f"cannot listen on {host}:{port} ({reason})") from None


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(host: str = "127.0.0.1", port: int = 8000, *, public: bool = False, limits: Limits | None = None) -> None:
    """Serve the page until Ctrl-C (or, under `srkit serve`, SIGTERM), then return: a normal stop, not an error."""
    check_host(host, public)
    sock = listen(host, port)
    server = uvicorn.Server(uvicorn.Config(create_app(limits), log_level="info"))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down, then raises the signal it caught again
        log.info("srkit: the page is at %s (Ctrl-C stops the server)", url(sock))
        server.run(sockets=[sock])


@contextlib.contextmanager
def background(limits: Limits | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a thread while the block runs, and give the page's URL (for tests and scripts)."""
    check_host(host)
    sock = listen(host, port)
    server = uvicorn.Server(uvicorn.Config(create_app(limits), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise SrkitError("the web server stopped while starting")
            time.sleep(0.01)
        yield url(sock)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()

"""Serving the rating page: uvicorn in a background thread, bound to localhost by default.

`WebHost` is what a command hands its `human:web` seats (`AgentContext.web`): one desk, one
server, one invitation link, started on first use and stopped by the command. A host binds
its socket itself (port 0 picks a free one), so the link it prints is the port it serves.
"""
from __future__ import annotations

import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from arena.types import ArenaError
from arena.web.desk import RatingDesk


@dataclass
class WebConfig:
    """Where and how the rating page is served."""

    host: str = "127.0.0.1"
    """Address the page is served on (localhost: only this machine; 0.0.0.0: the network too)."""
    port: int = 8765
    """Port of the page (0: any free port)."""
    max_body: int = 65536
    """Largest answer accepted, in bytes (a larger post is refused with one log line)."""


def missing_web_packages() -> str | None:
    """Why the page cannot be served here (None: it can)."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        return f"serving the rating page needs the web extra (pip install -e '.[web]'): {e}"
    return None


class WebHost:
    """One desk served at one link; `start()` is idempotent, `stop()` ends the server."""

    def __init__(self, config: WebConfig | None = None, *, desk: RatingDesk | None = None,
                 token: str | None = None, say: Callable[[str], None] = print, heading: str = "alignment arena"):
        self.config = config or WebConfig()
        self.desk = desk or RatingDesk()
        self.token = token or secrets.token_urlsafe(16)
        self.say, self.heading = say, heading
        self._server = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    @property
    def link(self) -> str:
        """The invitation link (its token lets a rater post); give it only to invited raters."""
        shown = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{shown}:{self.port}/?token={self.token}"

    def start(self) -> "WebHost":
        if self._server is not None:
            return self
        why = missing_web_packages()
        if why:
            raise ArenaError(why)
        import uvicorn

        from arena.web.app import build_app

        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as e:
            sock.close()
            raise ArenaError(f"cannot serve the rating page on {self.config.host}:{self.config.port}: "
                             f"{e.strerror} (another study running? pick another --web-port)") from None
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        app = build_app(self.desk, self.token, self.say, max_body=self.config.max_body, heading=self.heading)
        # log_config=None: uvicorn leaves the process's logging alone; no access log (refusals log themselves)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", proxy_headers=False,
                                server_header=False, timeout_graceful_shutdown=1, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="arena-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ArenaError(f"the rating page did not start on {self.config.host}:{self.port}")
            time.sleep(0.02)
        self.say(f"rating page for invited raters: {self.link}")
        return self

    @property
    def started(self) -> bool:
        return self._server is not None

    def stop(self, linger_s: float = 0.0) -> None:
        """Close the desk (pages show "done"), give the pages `linger_s` to see it, stop the server."""
        self.desk.close()
        if self._server is not None:
            time.sleep(linger_s)
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._server = None

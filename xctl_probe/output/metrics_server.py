"""--metrics served over HTTP: prometheus-client's WSGI application (which
speaks OpenMetrics to a scraper that asks for it) on a server of the
standard library's, on a thread of its own; a scrape reads the registry
(metrics.py), never the stream.

The server answers one request at a time, and gives up on a client silent
for CLIENT_TIMEOUT_S: a scrape takes milliseconds, and a client that
connects and says nothing then holds no thread and no memory for long
(prometheus-client's start_http_server starts a thread per connection with
no timeout). It looks no name up when it binds (the standard library's
HTTPServer asks the resolver for the host's name, which on a node whose DNS
does not answer waits out the resolver's timeout), and writes nothing to
stderr, not even a failed request's traceback: xctl never reads the
probe's stderr, and a pipe full of it would block the probe.

A port that is taken, or an address the node does not have, must not stop
the stream that xctl reads: serve() raises MetricsUnserved with the one line
to say, and the stream runs on without metrics (the CLI exits with its own
code at the stop, so a supervisor notices).
"""

import errno
import signal
import socket
import socketserver
import threading
from typing import Callable, Dict, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

from ..errors import EXIT_METRICS_UNSERVED
from ..kernel.loader import RING_MAP
from ..kernel.ring_fill import RingFill
from .metrics import StreamMetrics
from .stop import STOP_SIGNALS


class MetricsUnserved(Exception):
    """The metrics cannot be served: ``str()`` is the line to say."""


def serve(registry: CollectorRegistry, host: str, port: int) -> Tuple[object, str]:
    """Serves ``registry`` on ``host`` (an IP address; "": every one) and
    ``port`` from now on; (the server, its URL)."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # The threads made here and by the server inherit this mask: stop signals
    # stay the main thread's.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        server = _started(registry, host, port)
    except OSError as exc:
        what = exc.strerror or str(exc)
        hint = ("another process has the port: free it, or give --metrics another port"
                if exc.errno == errno.EADDRINUSE else "give --metrics an address and port "
                "this node can listen on")
        raise MetricsUnserved(f"metrics: not served on {shown}: {what}; the stream goes on "
                              f"without them and exits {EXIT_METRICS_UNSERVED} at the stop; "
                              f"{hint}") from None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return server, f"http://{shown}/metrics"


CLIENT_TIMEOUT_S = 5.0


class _QuietHandler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S

    def log_message(self, format, *args) -> None:
        pass


class _Server(WSGIServer):
    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port
        self.setup_environ()

    def handle_error(self, request, client_address) -> None:
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


def _started(registry: CollectorRegistry, host: str, port: int) -> _Server:
    if host:
        return _listening(registry, host, port)
    # Every address: IPv6's, which takes IPv4's too (bindv6only 0, Linux's
    # default), else IPv4's on a node without IPv6.
    try:
        return _listening(registry, "::", port)
    except OSError as exc:
        if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            raise
    return _listening(registry, "0.0.0.0", port)


def _listening(registry: CollectorRegistry, host: str, port: int) -> _Server:
    server_class = _Server6 if ":" in host else _Server
    server = server_class((host, port), _QuietHandler)
    server.set_app(make_wsgi_app(registry))
    threading.Thread(target=server.serve_forever, name="xctl-probe-metrics",
                     daemon=True).start()
    return server


def stop_serving(server: _Server) -> None:
    server.shutdown()
    server.server_close()


class ProbeMetrics:
    """--metrics for one stream: the registry and its tap, then, once the
    stream exists, the server; stopped on leaving the ``with``."""

    def __init__(self, probe, ring_bytes: int, info: Dict[str, str]):
        """``probe``: the LoadedProbe whose ring is read when scraped."""
        self.metrics = StreamMetrics(info)
        self._ring = RingFill(probe.map_fd(RING_MAP), ring_bytes)
        self.metrics.read_ring(self._ring)
        self._server = None

    @property
    def served(self) -> bool:
        return self._server is not None

    def serve(self, host: str, port: int, lost: Callable[[], int]) -> str:
        """Serves from now on, ``lost()`` read as the records lost; what the
        start-up line says of it. MetricsUnserved when it cannot."""
        self.metrics.read_lost(lost)
        self._server, url = serve(self.metrics.registry, host, port)
        return f"metrics on {url}"

    def __enter__(self) -> "ProbeMetrics":
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            stop_serving(self._server)
        self._ring.close()

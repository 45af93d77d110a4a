"""--metrics served over HTTP by prometheus-client's own server, on threads
of its own; a scrape reads the registry (metrics.py), never the stream.

A port that is taken, or an address the node does not have, must not stop
the stream that xctl reads: serve() raises MetricsUnserved with the one line
to say, and the stream runs on without metrics (the CLI exits with its own
code at the stop, so a supervisor notices).
"""

import errno
import signal
from typing import Callable, Dict, Tuple

from prometheus_client import CollectorRegistry, start_http_server

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
        server, _ = _started(registry, host, port)
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


def _started(registry: CollectorRegistry, host: str, port: int):
    if host:
        return start_http_server(port, host, registry)
    # Every address: IPv6's, which takes IPv4's too (bindv6only 0, Linux's
    # default), else IPv4's on a node without IPv6.
    try:
        return start_http_server(port, "::", registry)
    except OSError as exc:
        if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            raise
    return start_http_server(port, "0.0.0.0", registry)


def stop_serving(server) -> None:
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

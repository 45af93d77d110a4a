"""--metrics ADDR:PORT: where the metrics are served, checked before anything
is loaded (a bad value is a usage error, exit 2)."""

import ipaddress
from typing import NamedTuple


class ListenAddress(NamedTuple):
    host: str  # an IP address; "" for all of them
    port: int


def listen_address(text: str) -> ListenAddress:
    """``127.0.0.1:9977``, ``[::1]:9977`` or ``:9977`` (every address);
    ValueError, saying what is wrong, for anything else."""
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"{text!r} is not ADDR:PORT (e.g. 127.0.0.1:9977, [::1]:9977, :9977)")
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"{port!r} is not a port (1 to 65535)")
    bracketed = host.startswith("[") and host.endswith("]")
    literal = host[1:-1] if bracketed else host
    if bracketed and not literal:
        raise ValueError("[] names no address (none at all, :9977, is every address)")
    if literal:
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (an IPv6 one in brackets: "
                             "[::1]:9977; none, :9977, for every address)") from None
        if (address.version == 6) != bracketed:
            raise ValueError(f"{host!r}: an IPv6 address goes in brackets ([::1]:9977), "
                             "an IPv4 one without")
    return ListenAddress(literal, int(port))

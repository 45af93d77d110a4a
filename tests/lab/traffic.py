"""Bulk TCP for the tests, run inside a test's network namespace.

Either one process that serves and sends (--role both: the default), or a
separate server and client (--role server / client), so that each side has a
pid and a name of its own (--name-hex sets the comm with prctl, any bytes).
With --duplex both sides send; with --pingpong (one process) the client sends
small requests that the server echoes, one at a time, so a lost request is a
lost tail. A client with --wait-go connects, then waits for a line on stdin
before it sends: its socket exists before the probe does. A client with
--fork shares its socket with a child after connecting: the child sends,
the parent only holds the descriptor until the child is done.

Each process prints JSON lines: {"pid", "port"} once it is connected or
listening, and {"sent", "received"} at the end. It closes cleanly and reads
until EOF, so every retransmission has happened by the time it exits.
"""

import argparse
import ctypes
import json
import os
import socket
import sys
import threading
import time

PR_SET_NAME = 15
CHUNK = b"x" * 65536


def set_comm(name: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def pump(conn: socket.socket, seconds: float, duplex: bool) -> dict:
    """Sends for ``seconds`` (if it sends at all), reads until EOF meanwhile."""
    received = []

    def read() -> None:
        total = 0
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
        received.append(total)

    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    if duplex or seconds:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            conn.sendall(CHUNK)
            sent += len(CHUNK)
    conn.shutdown(socket.SHUT_WR)
    reader.join(timeout=300)
    conn.close()
    return {"sent": sent, "received": received[0] if received else None}


def pingpong(conn: socket.socket, seconds: float, echo: bool) -> dict:
    """Client (echo=False): 64-byte requests, each awaiting its echo. Server: echoes."""
    exchanged = 0
    if echo:
        while True:
            request = conn.recv(64)
            if not request:
                break
            conn.sendall(request)
            exchanged += 1
    else:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            conn.sendall(b"q" * 64)
            reply = b""
            while len(reply) < 64:
                reply += conn.recv(64 - len(reply))
            exchanged += 1
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(64):
            pass
    conn.close()
    return {"exchanged": exchanged}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("both", "server", "client"), default="both")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    # m: IPv6 sockets carrying IPv4 (IPv4-mapped addresses), as a dual-stack server sees them.
    parser.add_argument("--family", choices=("4", "6", "m"), default="4")
    parser.add_argument("--duplex", action="store_true")
    parser.add_argument("--pingpong", action="store_true")
    parser.add_argument("--wait-go", action="store_true")
    parser.add_argument("--fork", action="store_true")
    parser.add_argument("--name-hex")
    args = parser.parse_args()
    if args.name_hex:
        set_comm(bytes.fromhex(args.name_hex))

    family, host = {"4": (socket.AF_INET, "127.0.0.1"), "6": (socket.AF_INET6, "::1"),
                    "m": (socket.AF_INET6, "::ffff:127.0.0.1")}[args.family]
    server = None
    if args.role in ("both", "server"):
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("::" if args.family == "m" else host, args.port))
        server.listen()
    if args.role == "server":
        say(pid=os.getpid(), port=args.port)
        conn, _ = server.accept()
        # Listening on until the end, as servers do: a SYN-ACK retransmission
        # belongs to the listener's process.
        say(**pump(conn, args.seconds if args.duplex else 0, args.duplex))
        server.close()
        return

    served = []
    if server is not None:
        def serve() -> None:
            conn, _ = server.accept()
            if args.pingpong:
                served.append(pingpong(conn, 0, echo=True))
            else:
                served.append(pump(conn, args.seconds if args.duplex else 0, args.duplex))

        acceptor = threading.Thread(target=serve)
        acceptor.start()
    client = socket.create_connection((host, args.port), timeout=120)
    say(pid=os.getpid(), port=client.getsockname()[1])
    if args.wait_go:
        sys.stdin.readline()
    if args.fork:
        child = os.fork()
        if child:
            say(child=child)
            os.waitpid(child, 0)
            client.close()
            return
    if args.pingpong:
        result = pingpong(client, args.seconds, echo=False)
    else:
        result = pump(client, args.seconds, args.duplex)
    if server is not None:
        acceptor.join(timeout=300)
        server.close()
    say(**result)


if __name__ == "__main__":
    main()

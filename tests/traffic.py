"""Bulk TCP for the tests, run inside a test's network namespace.

One process serves and sends: the server accepts and reads until EOF; the
client connects to it and sends as fast as it can for --seconds, then closes
and waits until the server has read everything, so every retransmission has
happened (and every socket is closed) by the time this exits. Prints one
JSON line: the pid, the client's local port and the bytes sent.
"""

import argparse
import json
import os
import socket
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--family", choices=("4", "6"), default="4")
    args = parser.parse_args()

    family, host = (socket.AF_INET, "127.0.0.1") if args.family == "4" else (socket.AF_INET6, "::1")
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, args.port))
    server.listen()
    received = []

    def serve() -> None:
        conn, _ = server.accept()
        total = 0
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            total += len(chunk)
        conn.close()
        received.append(total)

    reader = threading.Thread(target=serve)
    reader.start()
    client = socket.create_connection((host, args.port), timeout=60)
    local_port = client.getsockname()[1]
    payload = b"x" * 65536
    sent = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        client.sendall(payload)
        sent += len(payload)
    client.close()
    reader.join(timeout=120)
    server.close()
    print(json.dumps({"pid": os.getpid(), "port": local_port, "sent": sent,
                      "received": received[0] if received else None}), flush=True)


if __name__ == "__main__":
    main()

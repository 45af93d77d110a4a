"""Short-lived TCP connections for the owner tests, run inside a test's
network namespace: the traffic whose sockets lose their file before their
last retransmission.

--role sink: listens, reads every connection to EOF and closes it.
--role client: --count times: connects, sends --kib KiB, closes at once
(the data still in flight is retransmitted after close()), and goes on.
--role once: the same for one connection, then exits without waiting.

--name-hex sets the comm. Each process prints {"pid", "port"} as JSON: the
sink once it listens, a client for every connection it makes (its local port).
"""

import argparse
import json
import os
import socket
import threading

from traffic import set_comm


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def sink(server: socket.socket) -> None:
    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(1 << 20):
                pass

    while True:
        conn, _ = server.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def send_and_close(port: int, kib: int) -> None:
    conn = socket.create_connection(("127.0.0.1", port), timeout=120)
    say(pid=os.getpid(), port=conn.getsockname()[1])
    conn.sendall(b"x" * (kib * 1024))
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("sink", "client", "once"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--kib", type=int, default=300)
    parser.add_argument("--name-hex")
    args = parser.parse_args()
    if args.name_hex:
        set_comm(bytes.fromhex(args.name_hex))
    if args.role == "sink":
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", args.port))
        server.listen(128)
        say(pid=os.getpid(), port=args.port)
        sink(server)
    for _ in range(args.count):
        send_and_close(args.port, args.kib)
    if args.role == "once":
        os._exit(0)  # no interpreter teardown: gone while its data is in flight


if __name__ == "__main__":
    main()

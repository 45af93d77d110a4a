"""Short-lived TCP connections for the owner tests, run inside a test's
network namespace: the traffic whose sockets lose their file before their
last retransmission.

--role sink: listens, reads every connection to EOF and closes it.
--role client: --count times: connects, sends --kib KiB, closes at once
(the data still in flight is retransmitted after close()), and goes on.
--role once: the same for one connection, then exits without waiting.
--role answer: a server answering short requests: for each connection it
accepts (a thread each), reads a request of --request-kib KiB, sends --kib
KiB and closes the connection itself.
--role ask: --clients threads, each for --seconds: connects, sends a request
of --request-kib KiB, reads the answer to EOF, closes, and connects again.

--name-hex sets the comm. Each process prints {"pid", "port"} as JSON: the
sink and the answering server once they listen, a client for every connection
it makes (its local port); the asking process once, and {"answers"} (the
answers it read in full) at its end.
"""

import argparse
import json
import os
import socket
import threading
import time

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


def answer(server: socket.socket, request_kib: int, kib: int) -> None:
    def serve(conn: socket.socket) -> None:
        with conn:
            left = request_kib * 1024
            while left:
                chunk = conn.recv(left)
                if not chunk:
                    return
                left -= len(chunk)
            conn.sendall(b"x" * (kib * 1024))

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def ask(port: int, clients: int, seconds: float, request_kib: int, kib: int) -> None:
    deadline = time.monotonic() + seconds
    answers = []

    def client() -> None:
        while time.monotonic() < deadline:
            with socket.create_connection(("127.0.0.1", port), timeout=120) as conn:
                conn.sendall(b"q" * (request_kib * 1024))
                received = 0
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    received += len(chunk)
            answers.append(received == kib * 1024)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    say(answers=sum(answers), short=len(answers) - sum(answers))


def listen(port: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)
    say(pid=os.getpid(), port=port)
    return server


def send_and_close(port: int, kib: int) -> None:
    conn = socket.create_connection(("127.0.0.1", port), timeout=120)
    say(pid=os.getpid(), port=conn.getsockname()[1])
    conn.sendall(b"x" * (kib * 1024))
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("sink", "client", "once", "answer", "ask"),
                        required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--kib", type=int, default=300)
    parser.add_argument("--request-kib", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--name-hex")
    args = parser.parse_args()
    if args.name_hex:
        set_comm(bytes.fromhex(args.name_hex))
    if args.role == "sink":
        sink(listen(args.port))
    if args.role == "answer":
        answer(listen(args.port), args.request_kib, args.kib)
    if args.role == "ask":
        say(pid=os.getpid())
        ask(args.port, args.clients, args.seconds, args.request_kib, args.kib)
        return
    for _ in range(args.count):
        send_and_close(args.port, args.kib)
    if args.role == "once":
        os._exit(0)  # no interpreter teardown: gone while its data is in flight


if __name__ == "__main__":
    main()

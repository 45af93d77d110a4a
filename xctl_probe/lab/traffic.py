"""The storm lab's traffic, run by path inside its namespace with nothing but
the standard library (the namespace's process need not import the package):

- tcp PORT SECONDS CONNECTIONS: a server and CONNECTIONS clients over
  loopback, each client sending in bulk for SECONDS, then closing cleanly and
  reading until EOF, so every retransmission is over when it exits;
- udp PORT COUNT: COUNT datagrams to PORT, where nothing listens;
- syn PORT SECONDS: TCP SYNs to PORT from ever other source ports, as fast
  as one process can send them through a raw socket, for SECONDS; prints
  how many it sent.
"""

import socket
import struct
import sys
import threading
import time

CHUNK = b"x" * 65536


def receive(conn: socket.socket) -> None:
    while conn.recv(1 << 20):
        pass
    conn.close()


def send(client: socket.socket, deadline: float) -> None:
    while time.monotonic() < deadline:
        client.sendall(CHUNK)
    client.shutdown(socket.SHUT_WR)
    while client.recv(65536):
        pass
    client.close()


def bulk_tcp(port: int, seconds: float, count: int) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(count)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    threads = [threading.Thread(target=receive, args=(server.accept()[0],))
               for _ in range(count)]
    deadline = time.monotonic() + seconds
    threads += [threading.Thread(target=send, args=(client, deadline)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def udp_to_closed_port(port: int, count: int) -> None:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(count):
        sender.sendto(b"x", ("127.0.0.1", port))


def syn_flood(port: int, seconds: float) -> int:
    # The kernel writes the IP header; the TCP checksum is left 0, as the
    # flood is dropped before anything checks it.
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    syns = [struct.pack("!HHIIBBHHH", 1024 + i, port, i, 0, 5 << 4, 0x02, 65535, 0, 0)
            for i in range(1024)]
    send, to, sent = sender.sendto, ("127.0.0.1", 0), 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for syn in syns:
            send(syn, to)
        sent += len(syns)
    return sent


def main(argv: list) -> None:
    if argv[0] == "tcp":
        bulk_tcp(int(argv[1]), float(argv[2]), int(argv[3]))
    elif argv[0] == "syn":
        print(syn_flood(int(argv[1]), float(argv[2])))
    else:
        udp_to_closed_port(int(argv[1]), int(argv[2]))


if __name__ == "__main__":
    main(sys.argv[1:])

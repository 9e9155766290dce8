"""Misbehaving clients for tests/blackbox/bad_clients.sh.

    badclient.py PORT garbage N           N connections sending random bytes, then plaintext HTTP
    badclient.py PORT halfopen N          N TCP connections that send nothing; prints "ready N"
                                          and holds them until stdin closes
    badclient.py PORT partial N           N connections sending half a ClientHello, held the same way
    badclient.py PORT stalled N           N connections sending a whole ClientHello, reading the
                                          server's answer and then saying nothing, held the same way
    badclient.py PORT closed-by-server TIMEOUT
                                          a half ClientHello, then waits: prints how many seconds
                                          until the server closed the connection
    badclient.py PORT oversized           a TLS request with a 20 KiB header; prints the status
                                          line, or "closed" if the server closed without one
    badclient.py PORT slowloris TIMEOUT   a TLS request trickled one byte every 0.5 s; prints the
                                          seconds until the server closed the connection
"""
import os
import resource
import socket
import ssl
import sys
import time


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64 if hard == resource.RLIM_INFINITY else min(hard, n + 64)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_hello():
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context().wrap_bio(incoming, outgoing, server_hostname="a.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def hold(socks):
    print(f"ready {len(socks)}", flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()


def many(port, n, first_bytes, read_answer=False):
    n = min(n, raise_fd_limit(n) - 64)
    socks = []
    for _ in range(n):
        s = connect(port)
        if first_bytes:
            s.sendall(first_bytes)
        if read_answer:
            s.recv(65536)
        socks.append(s)
    hold(socks)


def until_closed(s, limit):
    start = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(65536):
            pass
    except (socket.timeout, TimeoutError):
        return "still open"
    except OSError:
        pass
    return f"{time.monotonic() - start:.1f}"


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    if what == "garbage":
        closed = 0
        for i in range(int(sys.argv[3])):
            s = connect(port)
            s.sendall(os.urandom(3000) if i % 2 == 0 else b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            closed += until_closed(s, 10) != "still open"
            s.close()
        print(f"closed by server: {closed}")
    elif what == "halfopen":
        many(port, int(sys.argv[3]), b"")
    elif what == "partial":
        hello = client_hello()
        many(port, int(sys.argv[3]), hello[: len(hello) // 2])
    elif what == "stalled":
        many(port, int(sys.argv[3]), client_hello(), read_answer=True)
    elif what == "closed-by-server":
        hello = client_hello()
        s = connect(port)
        s.sendall(hello[: len(hello) // 2])
        print(until_closed(s, float(sys.argv[3])))
    elif what == "oversized":
        s = client_context().wrap_socket(connect(port), server_hostname="a.test")
        request = b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Pad: " + b"a" * 20480 + b"\r\n\r\n"
        try:
            s.sendall(request)
        except OSError:
            pass
        answer = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except OSError:
            pass
        print(answer.split(b"\r\n", 1)[0].decode() if answer else "closed")
    elif what == "slowloris":
        s = client_context().wrap_socket(connect(port), server_hostname="a.test")
        start = time.monotonic()
        limit = float(sys.argv[3])
        try:
            for b in b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: " + b"a" * 1000:
                s.send(bytes([b]))
                time.sleep(0.5)
                if time.monotonic() - start > limit:
                    print("still open")
                    return
        except OSError:
            pass
        print(f"{time.monotonic() - start:.1f}")
    else:
        sys.exit(f"unknown mode {what}")


if __name__ == "__main__":
    main()

"""Two clients offer the same single-use session to two servers at the same moment.

usage: single_use_race.py PORT1 PORT2 ROUNDS TLS(1.2|1.3) REDIS_PORT

Each round: a full handshake on server 1 leaves a session (stored in server 1's local tier and,
by its background writer, in Redis: the round waits until Redis holds one more key); then two
threads, each with its TCP connection already open, hand-shake at once offering that session,
one to server 1 (which holds it locally) and one to server 2 (which fetches it from Redis).
Prints one line per outcome count (`resumed=K rounds=N`: N rounds where K of the two resumed)
and exits 1 if any round resumed the session twice.
"""

import socket
import ssl
import subprocess
import sys
import threading
import time


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def handshake(ctx, sock, session):
    """Handshake (offering `session`), one request; the session and whether it was reused."""
    with ctx.wrap_socket(sock, server_hostname="a.test", session=session) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        while s.recv(4096):
            pass
        return s.session, s.session_reused


def dbsize(redis_port):
    out = subprocess.run(["redis-cli", "-p", str(redis_port), "dbsize"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def main():
    p1, p2, rounds, tls, redis_port = (int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]),
                                       sys.argv[4], int(sys.argv[5]))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    version = ssl.TLSVersion.TLSv1_3 if tls == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = version
    counts = {0: 0, 1: 0, 2: 0}
    stored = 0
    for _ in range(rounds):
        before = dbsize(redis_port)
        session, _ = handshake(ctx, connect(p1), None)
        for _ in range(400):
            if dbsize(redis_port) > before:
                stored += 1
                break
            time.sleep(0.005)
        socks = [connect(p1), connect(p2)]
        barrier = threading.Barrier(2)
        reused = [False, False]

        def race(i):
            barrier.wait()
            try:
                reused[i] = handshake(ctx, socks[i], session)[1]
            except (OSError, ssl.SSLError) as e:
                print(f"handshake failed: {e}", file=sys.stderr)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        counts[sum(reused)] += 1
    print(f"stored={stored} rounds={rounds}")
    for k in (0, 1, 2):
        print(f"resumed={k} rounds={counts[k]}")
    return 1 if counts[2] else 0


if __name__ == "__main__":
    sys.exit(main())

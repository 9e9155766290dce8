"""Sessions a server keeps: N clients each make one full TLS 1.3 handshake (keeping the
session the server gave it), then each offers its session once, newest first; prints how many
resumed.

Usage: capacity.py PORT N [PROCS]   (127.0.0.1, SNI a.test, certificates not checked)
Run by scripts/bench-nginx-capacity.sh against stock nginx and the module, same zone size.
"""

import multiprocessing
import socket
import ssl
import sys


def ctx():
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.minimum_version = ssl.TLSVersion.TLSv1_3
    return c


def get(port, c, session=None):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with c.wrap_socket(raw, server_hostname="a.test", session=session) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass
            return s.session, s.session_reused


def worker(port, n, barrier, out):
    c = ctx()
    sessions = [get(port, c)[0] for _ in range(n)]
    barrier.wait()  # every session made before any is offered
    # Newest first: each resumption stores a session too, evicting the oldest, which are
    # offered last; oldest first, every miss would evict the next one offered.
    out.put(sum(get(port, c, s)[1] for s in reversed(sessions)))


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    procs = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    barrier = multiprocessing.Barrier(procs)
    out = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(port, n // procs + (i < n % procs), barrier, out))
          for i in range(procs)]
    for p in ps:
        p.start()
    total = sum(out.get() for _ in ps)
    for p in ps:
        p.join()
    print(total)


if __name__ == "__main__":
    main()

"""Load for fleet-resumption tests: N client processes, each making TLS connections (GET /,
SNI a.test) one after another for DURATION seconds, alternating between the given ports and
offering the session of its previous connection, so every resumption is cross-server (and,
with the servers' tickets off under TLS 1.3, every resumption makes a new stateful session).

Usage: alternate.py OUT STOPFILE CLIENTS PORT [PORT...]
Runs until STOPFILE exists (60 s at most). OUT.<client> gets one line per connection as it
ends, `<unix time> <port> ok|fail resumed|full`; OUT all of them once every client stopped.
"""
import multiprocessing
import os
import socket
import ssl
import sys
import time


def client(out, stop, ports, idx):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    session = None
    n = idx
    lines = open(f"{out}.{idx}", "w", buffering=1)
    until = time.time() + 60
    while time.time() < until and not os.path.exists(stop):
        port = ports[n % len(ports)]
        n += 1
        t = time.time()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                    body = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        body += chunk
                    if b"vhost=a.test" not in body:
                        raise RuntimeError("no response")
                    lines.write(f"{t:.4f} {port} ok {'resumed' if s.session_reused else 'full'}\n")
                    session = s.session
        except Exception as e:  # a failed connection: counted, the next one starts anew
            lines.write(f"{t:.4f} {port} fail {type(e).__name__}\n")
            session = None
    lines.close()


def main():
    out, stop, clients = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ports = [int(p) for p in sys.argv[4:]]
    procs = [multiprocessing.Process(target=client, args=(out, stop, ports, i)) for i in range(clients)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    with open(out, "w") as f:
        for i in range(clients):
            with open(f"{out}.{i}") as part:
                f.write(part.read())


if __name__ == "__main__":
    main()

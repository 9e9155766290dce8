"""The OpenSSL client of the client matrix (tests/blackbox/clients.sh): Python's ssl module.
COUNT sequential HTTPS connections to 127.0.0.1:PORT with SNI NAME, each offering the newest
session the previous connections were given (SSLSocket.session after the response was read, so
TLS 1.3 tickets have arrived). Resumed: SSLSocket.session_reused. Certificates are not verified.

    python3 py_client.py PORT NAME COUNT

One line per connection: conn=I resumed=0|1 proto=TLSv1.x body=FIRST_BODY_LINE
"""
import socket
import ssl
import sys

from http_get import http_get

port, name, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
session = None
for i in range(1, count + 1):
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname=name, session=session) as s:
            # A close without close_notify: http_get keeps what was read.
            resp = http_get(s.sendall, lambda: s.recv(8192), name)
            body = resp.partition(b"\r\n\r\n")[2].decode(errors="replace").strip().splitlines()
            print(f"conn={i} resumed={int(s.session_reused)} proto={s.version()} "
                  f"body={body[0] if body else '-'}", flush=True)
            if s.session is not None:
                session = s.session
    except (ssl.SSLError, OSError) as e:
        print(f"conn={i} resumed=0 proto=- body=failed:{e}", flush=True)

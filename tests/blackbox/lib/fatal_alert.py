"""A fatal alert from a black-box client, for tests/blackbox/nginx.sh.

    fatal_alert.py PORT NAME TLS      TLS is 1.2 or 1.3

1. a full handshake under SNI NAME, keeping the session;
2. a connection resuming it, which then sends a forged application-data record: the server
   cannot authenticate it and answers with a fatal bad_record_mac alert;
3. a connection offering the same session again.

Prints "first=New|Reused second=... third=... alert=yes|no".
"""
import os
import socket
import ssl
import sys

from http_get import http_get


def context(tls):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    version = ssl.TLSVersion.TLSv1_2 if tls == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = version
    ctx.maximum_version = version
    return ctx


def request(s, name):
    return http_get(s.sendall, lambda: s.recv(65536), name)


def main():
    port, name, tls = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = context(tls)

    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=name)
    request(s, name)  # TLS 1.3 sessions arrive after the handshake: read the whole answer
    session = s.session
    first = "Reused" if s.session_reused else "New"
    s.close()

    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=name,
                        session=session)
    second = "Reused" if s.session_reused else "New"
    # A record the server cannot authenticate, written under the TLS layer.
    os.write(s.fileno(), b"\x17\x03\x03\x00\x40" + os.urandom(64))
    alert = "no"
    try:
        while s.recv(65536):
            pass
    except ssl.SSLError as e:
        alert = "yes" if "ALERT" in str(e).upper() else f"no ({e})"
    except OSError as e:
        alert = f"no ({e})"
    s.close()

    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=name,
                        session=session)
    third = "Reused" if s.session_reused else "New"
    request(s, name)
    s.close()
    print(f"first={first} second={second} third={third} alert={alert}")


if __name__ == "__main__":
    main()

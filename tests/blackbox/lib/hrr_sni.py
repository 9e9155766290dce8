"""A TLS 1.3 client (tlslite-ng) that changes its server_name across a HelloRetryRequest.

    hrr_sni.py PORT FIRST SECOND [ISSUER]

FIRST and SECOND are the SNI of the first and second ClientHello ("-": none); ISSUER is the
SNI the session is made under (default `a.test`). The script
1. makes a session with a full handshake under SNI ISSUER (GET / read, so its ticket arrives);
2. connects again offering that session's PSK, with the first ClientHello's SNI FIRST and no
   key share (so the server answers with a HelloRetryRequest), and a second ClientHello whose
   SNI is SECOND (PSK binders recomputed over it, as a real client's would be);
3. on success sends GET / and prints the answer.

Prints one line: "alert=N" (the fatal alert the server sent, or "none"), "resumed=0|1",
"served=<GET / answer line or ->".
"""
import socket
import sys

from http_get import http_get

from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.constants import ExtensionType
from tlslite.errors import TLSRemoteAlert
from tlslite.extensions import SNIExtension
from tlslite.handshakehelpers import HandshakeHelpers

PORT = int(sys.argv[1])
FIRST = None if sys.argv[2] == "-" else sys.argv[2]
SECOND = None if sys.argv[3] == "-" else sys.argv[3]
ISSUER = sys.argv[4] if len(sys.argv) > 4 else "a.test"

_update_binders = HandshakeHelpers.update_binders
calls = {"n": 0}


def set_sni(hello, name):
    hello.extensions = [e for e in hello.extensions if e.extType != ExtensionType.server_name]
    if name is not None:
        # server_name goes first; pre_shared_key stays last.
        hello.extensions.insert(0, SNIExtension().create(bytearray(name, "ascii")))


def update_binders(client_hello, *args, **kwargs):
    """Called once for each ClientHello that offers a PSK; the second call is the ClientHello
    after the HelloRetryRequest: rewrite its SNI before its binders are computed."""
    calls["n"] += 1
    if calls["n"] == 2:
        set_sni(client_hello, SECOND)
    return _update_binders(client_hello, *args, **kwargs)


HandshakeHelpers.update_binders = staticmethod(update_binders)


def settings(hrr):
    s = HandshakeSettings()
    s.minVersion = (3, 4)
    s.maxVersion = (3, 4)
    s.eccCurves = ["x25519", "secp256r1"]
    # No key share at all: any server answers with a HelloRetryRequest naming its group.
    s.keyShares = [] if hrr else ["x25519"]
    return s


def get(conn, name):
    # Any error: the server closing after the response.
    data = http_get(conn.write, conn.read, name, errors=(Exception,))
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("vhost="):
            return " ".join(line.split()[:4])
    return "-"


def connect(sni, hrr, session=None):
    sock = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    conn = TLSConnection(sock)
    calls["n"] = 0
    conn.handshakeClientCert(settings=settings(hrr), serverName=sni, session=session)
    return conn


first = connect(ISSUER, hrr=False)
get(first, ISSUER)
session = first.session
first.close()
assert session.tickets, "the server sent no ticket"
# The client's own check that a session is offered only under its name, bypassed as an
# attacker's client would.
session.serverName = FIRST

alert, resumed, served = "none", 0, "-"
try:
    conn = connect(FIRST, hrr=True, session=session)
    resumed = int(bool(conn.resumed))
    served = get(conn, SECOND or ISSUER)
    conn.close()
except TLSRemoteAlert as e:
    alert = str(e.description)
print(f"alert={alert} resumed={resumed} served={served} hellos_with_psk={calls['n']}")

"""A one-connection TLS-record-aware TCP proxy on 127.0.0.1 that corrupts one record, so a real
client (openssl s_client -sess_in ...) and a real server end a connection with a fatal alert.

    corrupt_proxy.py TARGET_PORT MODE N

Prints the port it listens on, relays one connection to 127.0.0.1:TARGET_PORT, then exits.
MODE:
  server-alert    flip the last byte (the tag) of the client's Nth application-data record: the
                  server cannot authenticate it and sends a fatal bad_record_mac alert
                  (N = 1 in TLS 1.2, where the client's Finished is a handshake record; 2 in
                  TLS 1.3, where the Finished is the first application-data record);
  client-alert    once the client's Nth application-data record (its request) went through,
                  flip the tag of the server's next application-data record: the client sends
                  the alert, while the server waits for the next request (keep-alive);
  finished-alert  flip the tag of the server's first encrypted record (TLS 1.3: the first
                  application-data record; TLS 1.2: the record after its ChangeCipherSpec): in
                  a resumption that breaks the server's Finished, and the client sends an alert
                  in place of its own Finished.
Prints "corrupted=yes|no" on exit.
"""
import select
import socket
import sys
import time

CCS, HANDSHAKE, APPDATA = 20, 22, 23


def main():
    target, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print(ls.getsockname()[1], flush=True)
    ls.settimeout(30)
    client, _ = ls.accept()
    server = socket.create_connection(("127.0.0.1", target), timeout=10)
    bufs = {client: b"", server: b""}
    peer = {client: server, server: client}
    state = {"client_appdata": 0, "server_ccs": False, "done": False}

    def corrupt(side, rtype):
        if state["done"]:
            return False
        if side is client:
            if rtype == APPDATA:
                state["client_appdata"] += 1
                return mode == "server-alert" and state["client_appdata"] == n
            return False
        if mode == "client-alert":
            return rtype == APPDATA and state["client_appdata"] >= n
        if mode == "finished-alert":
            if rtype == CCS:
                state["server_ccs"] = True
                return False
            return rtype == APPDATA or (rtype == HANDSHAKE and state["server_ccs"])
        return False

    open_sides = {client, server}
    deadline = time.monotonic() + 30
    while open_sides and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_sides), [], [], 1)
        for side in ready:
            try:
                data = side.recv(65536)
            except OSError:
                data = b""
            if not data:
                open_sides.discard(side)
                try:
                    peer[side].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            bufs[side] += data
            out = b""
            while len(bufs[side]) >= 5:
                length = int.from_bytes(bufs[side][3:5], "big")
                if len(bufs[side]) < 5 + length:
                    break
                record = bytearray(bufs[side][: 5 + length])
                bufs[side] = bufs[side][5 + length:]
                if corrupt(side, record[0]):
                    record[-1] ^= 0x5A
                    state["done"] = True
                out += bytes(record)
            if out:
                try:
                    peer[side].sendall(out)
                except OSError:
                    open_sides.discard(side)
    client.close()
    server.close()
    print("corrupted=" + ("yes" if state["done"] else "no"), flush=True)


if __name__ == "__main__":
    main()

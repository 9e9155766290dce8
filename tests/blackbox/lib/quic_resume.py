"""HTTP/3 over QUIC with aioquic, keeping session tickets, for tests/blackbox/nginx_quic.sh.

    quic_resume.py PORT FIRST_SNI SECOND_SNI [--early-data]

1. a connection with SNI FIRST_SNI (a full handshake) that keeps the ticket the server sends;
2. a connection with SNI SECOND_SNI offering that ticket (with --early-data, the GET is sent as
   0-RTT early data);
3. with --early-data, the same ticket and early data once more (a replay).
Each connection sends GET / (Host: its SNI) over HTTP/3 and reads the answer. Prints one line
per connection: "first resumed=0|1 early=accepted|rejected|none body=...".
"""
import asyncio
import dataclasses
import ssl
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.done = asyncio.get_event_loop().create_future()
        self.body = b""

    def quic_event_received(self, event: QuicEvent):
        for e in self.h3.handle_event(event):
            if isinstance(e, DataReceived):
                self.body += e.data
                if e.stream_ended and not self.done.done():
                    self.done.set_result(True)
            elif isinstance(e, HeadersReceived) and e.stream_ended and not self.done.done():
                self.done.set_result(True)

    def get(self, host):
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                   (b":authority", host.encode()), (b":path", b"/")], end_stream=True)
        self.transmit()


async def one(port, sni, ticket, early):
    tickets = []
    cfg = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=sni,
                            verify_mode=ssl.CERT_NONE, session_ticket=ticket)
    async with connect("127.0.0.1", port, configuration=cfg, create_protocol=Client,
                       session_ticket_handler=tickets.append, wait_connected=not early) as c:
        c.get(sni)
        if early:
            await c.wait_connected()
        await asyncio.wait_for(c.done, 10)
        # tickets arrive after the handshake; give them a moment at most
        for _ in range(50):
            if tickets:
                break
            await asyncio.sleep(0.02)
        tls = c._quic.tls
        resumed = int(bool(tls.session_resumed))
        ed = "none"
        if early:
            ed = "accepted" if tls.early_data_accepted else "rejected"
        return resumed, ed, c.body.decode(errors="replace").strip(), (tickets[-1] if tickets else None)


async def main():
    port, first, second = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    early = "--early-data" in sys.argv
    r, ed, body, ticket = await one(port, first, None, False)
    print(f"first resumed={r} early={ed} body={body}")
    if ticket is None:
        print("second no-ticket")
        return
    if second != first:
        # aioquic offers a ticket only under the name it was made for: rewrite that name on the
        # client side, so the server is offered another name's ticket (what it must refuse).
        ticket = dataclasses.replace(ticket, server_name=second)
    r, ed, body, _ = await one(port, second, ticket, early)
    print(f"second resumed={r} early={ed} body={body}")
    if early:
        # the same ticket again: a replay of its early data
        r, ed, body, _ = await one(port, second, ticket, early)
        print(f"third resumed={r} early={ed} body={body}")


asyncio.run(main())

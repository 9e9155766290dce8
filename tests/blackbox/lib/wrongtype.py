"""Replaces every session key written to Redis by a hash, as soon as it is written (keyspace
notifications), until killed: lookups of those sessions get WRONGTYPE error replies.
Usage: wrongtype.py REDIS_PORT"""
import socket
import sys

port = int(sys.argv[1])


def command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        if line[:1] == b"*":
            return [self.reply() for _ in range(int(line[1:]))]
        if line[:1] == b"$":
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            body, self.buf = self.buf[:n], self.buf[n + 2:]
            return body
        return line


sub = socket.create_connection(("127.0.0.1", port))
cmd = socket.create_connection(("127.0.0.1", port))
cmds = Reader(cmd)
cmd.sendall(command("CONFIG", "SET", "notify-keyspace-events", "E$"))
cmds.reply()
sub.sendall(command("SUBSCRIBE", "__keyevent@0__:set"))
subs = Reader(sub)
subs.reply()
print("ready", flush=True)
while True:
    msg = subs.reply()
    key = msg[2]
    if key.startswith(b"snicache:"):
        cmd.sendall(command("DEL", key) + command("HSET", key, "f", "v"))
        cmds.reply()
        cmds.reply()

"""Garbage in a running server's shared-memory store, under load.

Usage: shm_scribble.py PORT PID MODE SECONDS
  PORT     the server's TLS port on 127.0.0.1 (names a.test and b.test, self-signed)
  PID      a process that maps the store (a demo worker): its /proc/PID/mem is written, and
           the mapping being MAP_SHARED, every process sees the garbage
  MODE     locks: random words into every shard's lock word (garbage owners, live pids, 0)
           whole: random bytes all over the mapping, and now and then all of it one value
  SECONDS  how long the garbage goes on

Client threads reconnect all the time with TLS 1.2 session ids (each keeps offering its last
session, and takes the new one after a full handshake). Phases: 2 s clean, SECONDS of garbage,
4 s clean. Prints one JSON object: connections and resumption per phase, resumption in each
200 ms window after the garbage stopped, and failed connections.
"""

import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time

MAGIC = b"SNCSHM\r\n"


def align64(n):
    return (n + 63) & ~63


def find_mapping(pid):
    """(start, length) of the mapping whose first bytes are the store's magic."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb") as mem:
        for line in maps:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if "s" not in fields[1] or "r" not in fields[1]:
                continue
            mem.seek(lo)
            try:
                if mem.read(8) == MAGIC:
                    return lo, hi - lo
            except OSError:
                continue
    raise SystemExit(f"no store mapping in process {pid}")


def geometry(pid, base):
    """The shards' lock word offsets, from the header (layout of src/store/shm.rs)."""
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(base)
        words = struct.unpack("<9Q", mem.read(72))
    shards, slots, slot = words[4], words[5] >> 32, words[5] & 0xFFFFFFFF
    vhosts, extra = words[6], words[7]
    shards_off = align64(128 + 8 * (2 * vhosts + 5 + extra))
    fixed = align64(128 + 16 * vhosts)
    buckets = 1 << (slots.bit_length() - 1)
    slots_off = align64(fixed + 4 * buckets)
    stride = align64(slots_off + slots * slot)
    return [shards_off + s * stride for s in range(shards)]


def scribble(pid, mode, seconds):
    base, length = find_mapping(pid)
    locks = geometry(pid, base)
    rng = random.Random(12345)
    end = time.monotonic() + seconds
    writes = 0
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
        while time.monotonic() < end:
            if mode == "locks":
                for off in locks:
                    word = rng.choice([
                        rng.getrandbits(64),                      # no such thread
                        (1 << 32) | rng.getrandbits(32),          # init: alive, never unlocks
                        (os.getpid() << 32) | 7,                  # this scribbler: alive
                        0,                                        # "unlocked" under a holder
                    ])
                    mem.seek(base + off)
                    mem.write(struct.pack("<Q", word))
                    writes += 1
            else:
                if rng.random() < 0.05:
                    mem.seek(base)
                    mem.write(bytes([rng.getrandbits(8)]) * length)
                else:
                    for _ in range(256):
                        mem.seek(base + rng.randrange(length))
                        mem.write(bytes([rng.getrandbits(8)]))
                writes += 1
            time.sleep(0.002)
    return writes


def main():
    port, pid, mode, seconds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    results = []  # (time, resumed, failed)
    lock = threading.Lock()
    stop = threading.Event()

    def client(name):
        session = None
        while not stop.is_set():
            t = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname=name, session=session) as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        while s.recv(4096):
                            pass
                        resumed = s.session_reused
                        if not resumed:
                            session = s.session
                with lock:
                    results.append((t, resumed, False))
            except (OSError, ssl.SSLError):
                with lock:
                    results.append((t, False, True))

    threads = [threading.Thread(target=client, args=(n,)) for n in ("a.test", "b.test") * 3]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    time.sleep(2)
    g0 = time.monotonic()
    writes = scribble(pid, mode, seconds)
    g1 = time.monotonic()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join()

    def phase(lo, hi):
        r = [x for x in results if lo <= x[0] < hi]
        return {"connections": len(r), "resumed": sum(x[1] for x in r),
                "failed": sum(x[2] for x in r),
                "rate": round(sum(x[1] for x in r) / len(r), 3) if r else None}

    windows = [phase(g1 + i * 0.2, g1 + (i + 1) * 0.2)["rate"] for i in range(20)]
    print(json.dumps({
        "mode": mode, "writes": writes,
        "before": phase(t0, g0), "during": phase(g0, g1),
        "after_1s": phase(g1 + 1, g1 + 4), "after_windows": windows,
        "failed": sum(x[2] for x in results),
    }))


main()

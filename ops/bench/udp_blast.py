#!/usr/bin/env python3
"""Sends N JSON events as UDP datagrams to HOST:PORT (loopback only), as fast as one core can.
Bounded by count and by --seconds. Prints datagrams sent and the send rate."""
import argparse, socket, time

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--count", type=int, default=500_000)
p.add_argument("--seconds", type=float, default=30)
p.add_argument("--prefix", default="udp")
a = p.parse_args()
assert a.host in ("127.0.0.1", "localhost", "::1"), "loopback only"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payloads = [('{"session_id":"%s-%d","key":"api_latency_ms","component":"api","value":%d}' % (a.prefix, i % 5000, i)).encode() for i in range(5000)]
start = time.time()
sent = 0
deadline = start + a.seconds
while sent < a.count and time.time() < deadline:
    for i in range(1000):
        s.sendto(payloads[(sent + i) % 5000], (a.host, a.port))
    sent += 1000
el = time.time() - start
print(f"sent {sent} datagrams in {el:.2f}s = {sent/el:.0f}/s")

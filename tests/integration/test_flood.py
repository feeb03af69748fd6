"""Flood: a client that completes TLS without a certificate (nothing has been checked
yet: anyone can do this on the public port), sends NOOP in a loop and never reads its
replies. The front-end must stop reading from it while its replies wait (backpressure),
so the flood fills the client's own socket buffers, not the front-end's memory; other
clients must still be served; and the flooder, which reads nothing, must be cut off by
the idle timer (input that only queues more output must not keep it alive) within the
command and data timeouts (10 s each here) and some slack. A front-end may also end
the flooder's connection at once: that passes too.

Bound: the proportional resident memory (PSS, so that pages a forked child shares with
its parent are not counted twice) summed over every process of the front-end's session
may grow by at most FLOOD_BOUND_KIB while the flood runs: 1 MiB for amtpd (it holds at
most a few KiB of replies and one read buffer per connection), 16 MiB for a front-end
whose MTA forks or spawns per connection. Without backpressure the growth is about
twice what the flooder sends (64 MiB here).

In a sanitizer build (AMTP_SANITIZED=1) resident size says nothing (ASan's quarantine),
so only the service and the cut-off are judged there.
Run: python3 tests/integration/test_flood.py --frontend standalone --build build
"""

import os
import socket
import ssl
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amtp_world import close_world, data_prefix, mail_line, main, open_world, session_kib  # noqa: E402

WORLD = None
COMMAND_TIMEOUT = 10          # seconds; the flooder must be gone within both plus slack
DATA_TIMEOUT = 10             # (a front-end may count its idle time as their sum)
FLOOD_BYTES = 64 * 1024 * 1024
FLOOD_SECONDS = 60.0          # the flood ends after this, or once the sender is blocked
STALLED_SECONDS = 5.0         # this long unable to send: the front-end stopped reading
FLOOD_BOUND_KIB = {"standalone": 1024}
DEFAULT_BOUND_KIB = 16 * 1024


def setUpModule():
    global WORLD
    WORLD = open_world(limits="command-timeout = %ds\ndata-timeout = %ds\n" % (COMMAND_TIMEOUT, DATA_TIMEOUT))


def tearDownModule():
    close_world(WORLD)


def tcp_established(sock):
    """True while the kernel still holds the connection as established (TCP_INFO's
    first byte is the state; 1 is ESTABLISHED). Asked without reading, since reading
    would let the front-end go on."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return struct.unpack("B", info[:1])[0] == 1


def deliver_one(tag):
    s = WORLD.session()
    try:
        s.cmd("EHLO mx.a.test")
        s.cmd(mail_line())
        s.cmd("RCPT TO:<after-flood@b.test>")
        s.cmd("DATA")
        reply = s.cmd("%sSubject: %s\r\n\r\n%s\r\n." % (data_prefix(), tag, tag))
        s.cmd("QUIT")
    finally:
        s.close()
    return reply


class Flood(unittest.TestCase):
    def test_a_noop_flood_that_reads_nothing_is_held_back_and_cut_off(self):
        sid = WORLD.frontend_proc.pid
        # Warm-up: one good session, so that caches and pools the front-end fills for
        # any session are not counted as the flood's.
        self.assertTrue(deliver_one("before").startswith("250"))
        time.sleep(1.0)
        before = sum(session_kib(sid, proportional=True).values())

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the flooder cares for nothing; it has no certificate
        raw = socket.create_connection(("127.0.0.3", WORLD.public_port), timeout=20, source_address=("127.0.0.2", 0))
        flood = ctx.wrap_socket(raw, server_hostname="mx.b.test")
        self.addCleanup(flood.close)
        flood.settimeout(1.0)
        chunk = b"NOOP\r\n" * 1024
        sent = 0
        peak = before
        stalled_since = None
        ended = "sent %d bytes" % FLOOD_BYTES
        start = time.time()
        next_sample = 0
        while sent < FLOOD_BYTES:
            if time.time() - start > FLOOD_SECONDS:
                ended = "time limit"
                break
            try:
                n = flood.send(chunk)
                sent += n
                stalled_since = None
                if n < len(chunk):
                    chunk = chunk[n:] + chunk[:n]  # keep whole commands in order
            except (socket.timeout, ssl.SSLWantWriteError):
                now = time.time()
                stalled_since = stalled_since or now
                if now - stalled_since > STALLED_SECONDS:
                    ended = "blocked: the front-end stopped reading"
                    break
            except (ConnectionError, ssl.SSLError, OSError) as e:
                ended = "connection ended by the front-end: %s" % e
                break
            if sent >= next_sample:
                peak = max(peak, sum(session_kib(sid, proportional=True).values()))
                next_sample = sent + 4 * 1024 * 1024
        peak = max(peak, sum(session_kib(sid, proportional=True).values()))
        growth = peak - before
        print("flood %s: %d MiB sent in %.1f s (%s); memory of the front-end's processes %d -> peak %d KiB (%+d KiB)"
              % (WORLD.frontend, sent // (1024 * 1024), time.time() - start, ended, before, peak, growth),
              file=sys.stderr)

        # Others are served while the flooder holds its connection.
        self.assertTrue(deliver_one("after").startswith("250"))
        found = WORLD.wait_delivered("after-flood", 2, seconds=60.0)
        self.assertEqual(sorted(m.split("\r\n\r\n", 1)[1].strip() for m in found), ["after", "before"])

        if os.environ.get("AMTP_SANITIZED") == "1":
            print("flood: sanitizer build, resident memory not judged", file=sys.stderr)
        else:
            bound = FLOOD_BOUND_KIB.get(WORLD.frontend, DEFAULT_BOUND_KIB)
            self.assertLess(growth, bound, "memory grew by %d KiB while the flooder sent %d MiB (bound %d KiB)"
                            % (growth, sent // (1024 * 1024), bound))

        # The flooder reads nothing: it must not be kept alive by what it sends.
        limit = COMMAND_TIMEOUT + DATA_TIMEOUT + 30
        deadline = time.time() + limit
        while tcp_established(flood) and time.time() < deadline:
            time.sleep(0.2)
        self.assertFalse(tcp_established(flood), "the flooding connection is still open after %d s" % limit)


if __name__ == "__main__":
    main()

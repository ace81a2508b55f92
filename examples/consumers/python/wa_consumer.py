#!/usr/bin/python3
"""A reference consumer of wa-relay's streams (docs/events.md).

Reads one stream in a consumer group and handles each entry once:

  * its own pending entries first (what it read before a crash), then new
    ones, XREADGROUP ... BLOCK;
  * entries a dead consumer left pending longer than --claim-idle-ms are
    taken over with XAUTOCLAIM;
  * an entry whose event_id was handled already (Meta redelivered it after
    the dedupe window, or another consumer handled it and died before
    acknowledging) is acknowledged and skipped;
  * an entry of a format newer than this consumer knows (field v) is left
    pending for a consumer that knows it, and said so once;
  * what the handler writes to Redis, the "handled" mark of the event_id
    and the XACK go in one MULTI, under WATCH of the marks: a crash
    anywhere leaves either all of it or none, and two consumers that raced
    on one entry cannot both commit it.

A handler that acts outside Redis (a database, an HTTP call) cannot share
that transaction: make it idempotent on event_id, since the entry is
handled again if the consumer dies between the act and the commit.

    wa_consumer.py --redis 127.0.0.1:6379 --stream wa:messages \\
        --group crm --consumer crm-1

Only the Python standard library and python3-redis (Debian's package).
"""

import argparse
import json
import signal
import sys
import time

import redis

# the entry format this consumer understands (docs/events.md, Versions)
KNOWN_V = 1


class Consumer:
    def __init__(self, args, handler):
        host, _, port = args.redis.rpartition(':')
        self.r = redis.Redis(host=host or '127.0.0.1', port=int(port),
                             username=args.user, password=args.password,
                             decode_responses=True,
                             # an unparsed body is kept byte for byte
                             encoding_errors='surrogateescape')
        self.a = args
        self.handler = handler
        self.stopping = False
        self.newer_seen = set()
        self.handled = self.skipped = 0

    def mark(self, event_id):
        return '%s:done:%s' % (self.a.mark_prefix, event_id)

    def create_group(self):
        try:
            self.r.xgroup_create(self.a.stream, self.a.group, id='0',
                                 mkstream=True)
        except redis.ResponseError as e:
            if 'BUSYGROUP' not in str(e):
                raise

    def version_ok(self, eid, fields):
        try:
            v = int(fields.get('v', '0'))
        except ValueError:
            v = 0
        if 0 < v <= KNOWN_V:
            return True
        if v not in self.newer_seen:
            self.newer_seen.add(v)
            log('entry %s has v=%s; this consumer knows v<=%d: left '
                'pending for one that does' % (eid, fields.get('v'),
                                              KNOWN_V))
        return False

    def handle_batch(self, entries):
        """Handles entries [(id, fields)]; True once committed."""
        entries = [(i, f) for i, f in entries if self.version_ok(i, f)]
        if not entries:
            return True
        marks = [self.mark(f.get('event_id', i)) for i, f in entries]
        with self.r.pipeline(transaction=True) as p:
            try:
                p.watch(*marks)
                done = [p.exists(m) for m in marks]
                p.multi()
                handled = 0
                for (eid, fields), m, was in zip(entries, marks, done):
                    if was:
                        continue
                    self.handler(p, eid, fields)
                    p.set(m, self.a.consumer, ex=self.a.mark_ttl)
                    handled += 1
                p.xack(self.a.stream, self.a.group, *[i for i, _ in entries])
                p.execute()
                self.handled += handled
                self.skipped += len(entries) - handled
                return True
            except redis.WatchError:
                # another consumer marked one of them meanwhile: again,
                # and this time it is skipped
                return False

    def claim(self):
        start = '0-0'
        while not self.stopping:
            start, got, *_ = self.r.xautoclaim(
                self.a.stream, self.a.group, self.a.consumer,
                self.a.claim_idle_ms, start_id=start, count=self.a.count)
            if got:
                log('took over %d entries a dead consumer left' % len(got))
                self.commit([(i, f) for i, f in got if f is not None])
            if start == '0-0':
                break

    def commit(self, entries):
        while entries and not self.handle_batch(entries):
            pass

    def read(self, start, block):
        r = self.r.xreadgroup(self.a.group, self.a.consumer,
                              {self.a.stream: start}, count=self.a.count,
                              block=block)
        return r[0][1] if r else []

    def run(self):
        self.create_group()
        # what this consumer read before it last stopped, first
        start = '0'
        while not self.stopping:
            mine = self.read(start, None)
            if not mine:
                break
            self.commit(mine)
            start = mine[-1][0]
        next_claim = 0
        while not self.stopping:
            if time.monotonic() >= next_claim:
                self.claim()
                next_claim = time.monotonic() + self.a.claim_idle_ms / 2000
            self.commit(self.read('>', self.a.block_ms))
        log('stopped: handled %d, skipped %d' % (self.handled, self.skipped))


def log(msg):
    print('wa_consumer: ' + msg, file=sys.stderr, flush=True)


def record_handler(args):
    """The example's handler: counts each event_id in a hash (a count of 2
    would be an event handled twice), in the consumer's transaction."""
    def handle(pipe, eid, fields):
        if args.delay_ms:
            time.sleep(args.delay_ms / 1000)
        if args.record:
            pipe.hincrby(args.record, fields.get('event_id', eid), 1)
        if args.print:
            print(json.dumps({'id': eid, **fields}), flush=True)
    return handle


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--redis', default='127.0.0.1:6379')
    p.add_argument('--user')
    p.add_argument('--password')
    p.add_argument('--stream', default='wa:messages')
    p.add_argument('--group', required=True)
    p.add_argument('--consumer', required=True)
    p.add_argument('--count', type=int, default=100)
    p.add_argument('--block-ms', type=int, default=1000)
    p.add_argument('--claim-idle-ms', type=int, default=60000)
    p.add_argument('--mark-prefix', default=None,
                   help='where the handled marks go (default <group>)')
    p.add_argument('--mark-ttl', type=int, default=7 * 86400)
    p.add_argument('--record', help='hash to count each event_id in')
    p.add_argument('--print', action='store_true',
                   help='print each entry handled as a JSON line')
    p.add_argument('--delay-ms', type=int, default=0,
                   help='a slow handler, for tests')
    args = p.parse_args()
    prefix = args.stream.rsplit(':', 1)[0]
    args.mark_prefix = args.mark_prefix or '%s:consumer:%s' % (prefix,
                                                              args.group)

    c = Consumer(args, record_handler(args))

    def stop(*_):
        c.stopping = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    c.run()


if __name__ == '__main__':
    main()

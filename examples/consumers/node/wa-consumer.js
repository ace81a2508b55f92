#!/usr/bin/env node
/*
 * A reference consumer of wa-relay's streams (docs/events.md), with
 * ioredis.  The same approach as examples/consumers/python/wa_consumer.py:
 *
 *  - its own pending entries first (what it read before a crash), then new
 *    ones with XREADGROUP ... BLOCK;
 *  - entries a dead consumer left pending longer than --claim-idle-ms are
 *    taken over with XAUTOCLAIM;
 *  - an entry whose event_id was handled already is acknowledged and
 *    skipped; one of a format newer than this consumer knows (field v) is
 *    left pending for a consumer that knows it;
 *  - what the handler writes to Redis, the "handled" mark of the event_id
 *    and the XACK go in one MULTI under WATCH of the marks: all or none,
 *    and two consumers racing on one entry cannot both commit it.
 *
 * A handler that acts outside Redis cannot share that transaction: make it
 * idempotent on event_id.
 *
 *   node wa-consumer.js --redis 127.0.0.1:6379 --stream wa:messages \
 *       --group crm --consumer crm-1
 */

'use strict';

const Redis = require('ioredis');

// the entry format this consumer understands (docs/events.md, Versions)
const KNOWN_V = 1;

function options(argv) {
    const o = {
        redis: '127.0.0.1:6379', stream: 'wa:messages', count: 100,
        blockMs: 1000, claimIdleMs: 60000, markTtl: 7 * 86400,
        delayMs: 0, print: false,
    };
    const names = {
        '--redis': 'redis', '--user': 'user', '--password': 'password',
        '--stream': 'stream', '--group': 'group', '--consumer': 'consumer',
        '--count': 'count', '--block-ms': 'blockMs',
        '--claim-idle-ms': 'claimIdleMs', '--mark-prefix': 'markPrefix',
        '--mark-ttl': 'markTtl', '--record': 'record',
        '--delay-ms': 'delayMs',
    };
    for (let i = 2; i < argv.length; i++) {
        if (argv[i] === '--print') {
            o.print = true;
        } else if (names[argv[i]] && i + 1 < argv.length) {
            const k = names[argv[i]];
            o[k] = typeof o[k] === 'number' ? Number(argv[++i]) : argv[++i];
        } else {
            throw new Error(`unknown option ${argv[i]}`);
        }
    }
    if (!o.group || !o.consumer) {
        throw new Error('--group and --consumer are required');
    }
    const prefix = o.stream.slice(0, o.stream.lastIndexOf(':'));
    o.markPrefix = o.markPrefix || `${prefix}:consumer:${o.group}`;
    return o;
}

function log(msg) {
    process.stderr.write(`wa-consumer: ${msg}\n`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// [id, [f, v, ...]] as [id, {f: v}]
function entries(list) {
    return list.filter((e) => e && e[1]).map(([id, flat]) => {
        const fields = {};
        for (let i = 0; i + 1 < flat.length; i += 2) {
            fields[flat[i]] = flat[i + 1];
        }
        return [id, fields];
    });
}

class Consumer {
    constructor(o, handler) {
        const [host, port] = o.redis.split(':');
        this.o = o;
        this.handler = handler;
        this.r = new Redis({ host, port: Number(port), username: o.user,
                             password: o.password, maxRetriesPerRequest: null });
        // WATCH holds on one connection: the transactions have their own
        this.tx = this.r.duplicate();
        this.stopping = false;
        this.newerSeen = new Set();
        this.handled = 0;
        this.skipped = 0;
    }

    mark(eventId) {
        return `${this.o.markPrefix}:done:${eventId}`;
    }

    versionOk(id, f) {
        const v = Number(f.v);
        if (Number.isInteger(v) && v > 0 && v <= KNOWN_V) {
            return true;
        }
        if (!this.newerSeen.has(f.v)) {
            this.newerSeen.add(f.v);
            log(`entry ${id} has v=${f.v}; this consumer knows v<=${KNOWN_V}:`
                + ' left pending for one that does');
        }
        return false;
    }

    // true once committed; false when another consumer came first
    async handleBatch(batch) {
        batch = batch.filter(([id, f]) => this.versionOk(id, f));
        if (batch.length === 0) {
            return true;
        }
        const marks = batch.map(([id, f]) => this.mark(f.event_id || id));
        const c = this.tx;
        await c.watch(...marks);
        const done = await Promise.all(marks.map((m) => c.exists(m)));
        const tx = c.multi();
        let handled = 0;
        let skipped = 0;
        for (let i = 0; i < batch.length; i++) {
            if (done[i]) {
                skipped++;
                continue;
            }
            await this.handler(tx, batch[i][0], batch[i][1]);
            tx.set(marks[i], this.o.consumer, 'EX', this.o.markTtl);
            handled++;
        }
        tx.xack(this.o.stream, this.o.group, ...batch.map(([id]) => id));
        if ((await tx.exec()) === null) {
            return false;
        }
        this.handled += handled;
        this.skipped += skipped;
        return true;
    }

    async commit(batch) {
        while (batch.length && !(await this.handleBatch(batch))) {
            /* again: what the other consumer handled is skipped now */
        }
    }

    async read(start, block) {
        const args = ['GROUP', this.o.group, this.o.consumer,
                      'COUNT', this.o.count];
        if (block !== null) {
            args.push('BLOCK', block);
        }
        const r = await this.r.xreadgroup(...args, 'STREAMS', this.o.stream,
                                          start);
        return r ? entries(r[0][1]) : [];
    }

    async claim() {
        let start = '0-0';
        do {
            const r = await this.r.xautoclaim(this.o.stream, this.o.group,
                this.o.consumer, this.o.claimIdleMs, start,
                'COUNT', this.o.count);
            start = r[0];
            const got = entries(r[1]);
            if (got.length) {
                log(`took over ${got.length} entries a dead consumer left`);
                await this.commit(got);
            }
        } while (start !== '0-0' && !this.stopping);
    }

    async run() {
        try {
            await this.r.xgroup('CREATE', this.o.stream, this.o.group, '0',
                                'MKSTREAM');
        } catch (e) {
            if (!String(e.message).includes('BUSYGROUP')) {
                throw e;
            }
        }
        // what this consumer read before it last stopped, first
        let start = '0';
        while (!this.stopping) {
            const mine = await this.read(start, null);
            if (mine.length === 0) {
                break;
            }
            await this.commit(mine);
            start = mine[mine.length - 1][0];
        }
        let nextClaim = 0;
        while (!this.stopping) {
            if (Date.now() >= nextClaim) {
                await this.claim();
                nextClaim = Date.now() + this.o.claimIdleMs / 2;
            }
            await this.commit(await this.read('>', this.o.blockMs));
        }
        log(`stopped: handled ${this.handled}, skipped ${this.skipped}`);
        this.r.disconnect();
        this.tx.disconnect();
    }
}

// the example's handler: counts each event_id in a hash (a count of 2
// would be an event handled twice), in the consumer's transaction
function recordHandler(o) {
    return async (tx, id, f) => {
        if (o.delayMs) {
            await sleep(o.delayMs);
        }
        if (o.record) {
            tx.hincrby(o.record, f.event_id || id, 1);
        }
        if (o.print) {
            process.stdout.write(JSON.stringify({ id, ...f }) + '\n');
        }
    };
}

async function main() {
    const o = options(process.argv);
    const c = new Consumer(o, recordHandler(o));
    const stop = () => { c.stopping = true; };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    await c.run();
}

main().catch((e) => {
    log(e.stack || String(e));
    process.exit(1);
});

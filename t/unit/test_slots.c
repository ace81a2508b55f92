/*
 * wa-relay: unit tests of the slot map, read from CLUSTER SHARDS and
 * CLUSTER SLOTS (src/core/wa_slots.c).
 */

#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "unit.h"
#include "wa_slots.h"


/* a reply as Redis sends it, parsed by hiredis's own reader */
static redisReply *
parse(const char *resp)
{
    void         *r;
    redisReader  *reader;

    reader = redisReaderCreate();
    ck_assert_ptr_nonnull(reader);
    ck_assert_int_eq(redisReaderFeed(reader, resp, strlen(resp)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(reader, &r), REDIS_OK);
    ck_assert_ptr_nonnull(r);
    redisReaderFree(reader);

    return r;
}


typedef struct {
    char  seen[512];
    int   stop_after;
    int   calls;
} ranges_t;


static int
each(unsigned start, unsigned end, const char *host, size_t host_len,
    unsigned port, void *data)
{
    size_t     n;
    ranges_t  *r = data;

    n = strlen(r->seen);
    snprintf(r->seen + n, sizeof(r->seen) - n, "%u-%u %.*s:%u;", start, end,
             (int) host_len, host, port);

    return ++r->calls == r->stop_after;
}


/* a node's id: 40 characters */
#define ID  "0123456789012345678901234567890123456789"

START_TEST(ranges_and_primaries)
{
    int          n;
    ranges_t     r;
    redisReply  *rr;

    /* three primaries, the first with a replica */
    rr = parse("*3\r\n"
               "*4\r\n:0\r\n:5460\r\n"
               "*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$40\r\n" ID "\r\n"
               "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$40\r\n" ID "\r\n"
               "*3\r\n:5461\r\n:10922\r\n"
               "*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n" ID "\r\n"
               "*3\r\n:10923\r\n:16383\r\n"
               "*3\r\n$3\r\n::1\r\n:7002\r\n$40\r\n" ID "\r\n");

    memset(&r, 0, sizeof(r));
    n = wa_slots_each(rr, each, &r);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(r.seen, "0-5460 127.0.0.1:7000;5461-10922 127.0.0.1:7001;"
                             "10923-16383 ::1:7002;");

    /* the callback stops the walk: the primary of one slot found */
    memset(&r, 0, sizeof(r));
    r.stop_after = 2;
    ck_assert_int_eq(wa_slots_each(rr, each, &r), 2);
    ck_assert_int_eq(r.calls, 2);

    freeReplyObject(rr);
}
END_TEST


/* what makes no sense is skipped; the rest is read */
START_TEST(nonsense_skipped)
{
    ranges_t     r;
    redisReply  *rr;

    rr = parse("*7\r\n"
               /* end before start */
               "*3\r\n:10\r\n:5\r\n*2\r\n$1\r\na\r\n:1\r\n"
               /* past the last slot */
               "*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nb\r\n:1\r\n"
               /* no port, a port 0, an empty host */
               "*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nc\r\n"
               "*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nd\r\n:0\r\n"
               "*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:1\r\n"
               /* not a range */
               ":42\r\n"
               /* numbers as strings, as some proxies send them */
               "*3\r\n$1\r\n0\r\n$5\r\n16383\r\n"
               "*2\r\n$1\r\ne\r\n$4\r\n6379\r\n");

    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(wa_slots_each(rr, each, &r), 1);
    ck_assert_str_eq(r.seen, "0-16383 e:6379;");
    freeReplyObject(rr);

    /* an error, not an array */
    rr = parse("-CLUSTERDOWN Hash slot not served\r\n");
    ck_assert_int_eq(wa_slots_each(rr, each, &r), -1);
    freeReplyObject(rr);

    ck_assert_int_eq(wa_slots_each(NULL, each, &r), -1);
}
END_TEST


/* a RESP reply written piece by piece: arrays, bulk strings, integers */
static char    resp[4096];

static void
put_array(int n)
{
    size_t  len = strlen(resp);

    snprintf(resp + len, sizeof(resp) - len, "*%d\r\n", n);
}

static void
put_bulk(const char *s)
{
    size_t  len = strlen(resp);

    snprintf(resp + len, sizeof(resp) - len, "$%zu\r\n%s\r\n", strlen(s), s);
}

static void
put_int(long n)
{
    size_t  len = strlen(resp);

    snprintf(resp + len, sizeof(resp) - len, ":%ld\r\n", n);
}


/* a node of CLUSTER SHARDS, as Redis 7.0 describes it */
static void
put_node(const char *ip, long port, const char *role, const char *health)
{
    put_array(14);
    put_bulk("id");
    put_bulk(ID);
    put_bulk("port");
    put_int(port);
    put_bulk("ip");
    put_bulk(ip);
    put_bulk("endpoint");
    put_bulk(ip);
    put_bulk("role");
    put_bulk(role);
    put_bulk("replication-offset");
    put_int(1234);
    put_bulk("health");
    put_bulk(health);
}


/* the shards' primaries that are online, each range of theirs */
START_TEST(shards_read)
{
    ranges_t     r;
    redisReply  *rr;

    resp[0] = '\0';
    put_array(3);

    /* two ranges, a replica named before the primary */
    put_array(4);
    put_bulk("slots");
    put_array(4);
    put_int(0);
    put_int(5460);
    put_int(10923);
    put_int(16383);
    put_bulk("nodes");
    put_array(2);
    put_node("127.0.0.1", 7003, "replica", "online");
    put_node("127.0.0.1", 7000, "master", "online");

    /* its primary failed, its replica not promoted yet: no primary */
    put_array(4);
    put_bulk("slots");
    put_array(2);
    put_int(5461);
    put_int(10922);
    put_bulk("nodes");
    put_array(2);
    put_node("127.0.0.1", 7001, "master", "failed");
    put_node("127.0.0.1", 7004, "replica", "online");

    /* a shard with no slots */
    put_array(4);
    put_bulk("slots");
    put_array(0);
    put_bulk("nodes");
    put_array(1);
    put_node("::1", 7002, "master", "online");

    rr = parse(resp);

    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(wa_slots_each(rr, each, &r), 2);
    ck_assert_str_eq(r.seen, "0-5460 127.0.0.1:7000;"
                             "10923-16383 127.0.0.1:7000;");

    /* the callback stops the walk inside a shard too */
    memset(&r, 0, sizeof(r));
    r.stop_after = 1;
    ck_assert_int_eq(wa_slots_each(rr, each, &r), 1);
    ck_assert_str_eq(r.seen, "0-5460 127.0.0.1:7000;");

    freeReplyObject(rr);
}
END_TEST


Suite *
slots_suite(void)
{
    Suite  *s;
    TCase  *tc;

    s = suite_create("slots");
    tc = tcase_create("cluster slots");
    tcase_add_test(tc, ranges_and_primaries);
    tcase_add_test(tc, nonsense_skipped);
    tcase_add_test(tc, shards_read);
    suite_add_tcase(s, tc);

    return s;
}

/*
 * wa-relayd: the one way to talk to Redis.  A link is a synchronous hiredis
 * connection with its preamble (AUTH, SELECT, the state functions), its
 * reconnection with backoff, and commands sent as argument arrays: names,
 * ids and values go with their lengths, never through a format string.
 */

#ifndef WA_LINK_H
#define WA_LINK_H

#include <stdatomic.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "options.h"
#include "wa_reply.h"

#define WA_ARGS_MAX  32

/* a command being built: strings, bytes, numbers */
typedef struct {
    int          argc;
    const char  *argv[WA_ARGS_MAX];
    size_t       lens[WA_ARGS_MAX];
    char         num[WA_ARGS_MAX][24];
} wa_args_t;

typedef struct {
    const wa_options_t  *o;
    const char          *who;       /* "" or "sender: ", for log lines */
    redisContext        *c;         /* NULL while down */
    long                 backoff;   /* ms before the next attempt */
    int                  denied;    /* Redis refused the user: stopping */
    int                  slot;      /* with --cluster: the slot it serves;
                                       -1: any node */
    char                 primary[300];  /* the address in use */
} wa_link_t;

/* wa_args(a, "XACK", key, group, id, NULL): a new command of C strings */
void wa_args(wa_args_t *a, ...);
void wa_args_add(wa_args_t *a, const char *s);
void wa_args_addn(wa_args_t *a, const char *p, size_t len);
void wa_args_ll(wa_args_t *a, long long n);

/* slot: with --cluster, the hash slot whose primary it talks to; -1 any */
void wa_link_init(wa_link_t *l, const wa_options_t *o, int slot,
    const char *who);

/*
 * What every link calls, once, when Redis refuses the credentials or a
 * permission the ACL user lacks: no retry mends that.  The reply is taken
 * for a broken link (NULL), so that nothing is acknowledged or buried.
 */
void wa_link_on_denied(void (*fn)(void));

/*
 * Connected with its preamble done: 0.  Otherwise -1, after waiting the
 * backoff (cut short once *stop is set); the next call tries again.
 */
int wa_link_connect(wa_link_t *l, atomic_int *stop);

/* the connection broke (or a reply makes no sense): dropped, logged */
void wa_link_lost(wa_link_t *l);
void wa_link_close(wa_link_t *l);

/* FUNCTION LOAD REPLACE of redis/wa_state.lua; 0 or -1 */
int wa_link_load_functions(wa_link_t *l);

/* a command and its reply; NULL when the link broke (logged with what) */
redisReply *wa_link_call(wa_link_t *l, wa_args_t *a);
redisReply *wa_link_callv(wa_link_t *l, int argc, const char **argv,
    const size_t *lens);

/* pipelined: commands queued, written, then their replies in order */
int wa_link_append(wa_link_t *l, wa_args_t *a);
int wa_link_appendv(wa_link_t *l, int argc, const char **argv,
    const size_t *lens);
int wa_link_append_formatted(wa_link_t *l, const char *cmd, size_t len);
int wa_link_write(wa_link_t *l);
redisReply *wa_link_reply(wa_link_t *l);

/*
 * Waits until what Redis sent ends with the reply of a PING queued after
 * the commands whose replies matter, without parsing: 0, or -1 if the link
 * broke.  The bytes go to hiredis's reader as they come (redisReaderFeed),
 * and wa_link_reply then parses them in order.
 */
int wa_link_read_to_pong(wa_link_t *l);

/* HSET key name value ... of n counters, for operators; best effort */
void wa_link_counters(wa_link_t *l, const char *key, const char **names,
    const long long *v, int n);


/* a reply that is an error, or none: logs what and returns 1 */
int wa_link_failed(wa_link_t *l, redisReply *r, const char *what);

/* an error reply that says the state functions are gone */
int wa_link_not_loaded(const redisReply *r);

#endif /* WA_LINK_H */

/*
 * wa-relayd: the Redis connection.
 */

#ifndef WA_CONN_H
#define WA_CONN_H

#include <hiredis/hiredis.h>

#include "options.h"

/* connect, AUTH, SELECT, load the state functions; NULL on failure */
redisContext *conn_open(const options_t *o);

/* (re)load redis/wa_state.lua; 0 or -1 */
int conn_load_functions(redisContext *c);

/* a reply that is an error, or no reply: logs what and returns 1 */
int conn_failed(redisContext *c, redisReply *r, const char *what);

#endif /* WA_CONN_H */

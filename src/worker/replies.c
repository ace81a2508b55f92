/*
 * wa-relayd: the automatic replies (opt-out and opt-in confirmations, the
 * away message, mark-as-read).  The Redis function that applies an inbound
 * message appends them to the outbox in the same atomic call, so a reply is
 * never lost nor doubled; the sender then passes them through the governor
 * like any other entry.
 */

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "log.h"
#include "worker.h"


char *
wa_replies_options(const wa_options_t *o)
{
    char    *s;
    json_t  *opt;

    opt = json_object();
    if (opt == NULL) {
        return NULL;
    }

    if (o->optout_reply) {
        json_object_set_new(opt, "optout_reply",
                            json_string(o->optout_reply));
    }

    if (o->optin_reply) {
        json_object_set_new(opt, "optin_reply", json_string(o->optin_reply));
    }

    if (o->away_reply) {
        json_object_set_new(opt, "away_reply", json_string(o->away_reply));
        json_object_set_new(opt, "hours",
                            json_pack("{s:I,s:I,s:s,s:I}",
                                      "from", (json_int_t) o->hours.from,
                                      "to", (json_int_t) o->hours.to,
                                      "days", o->business_days,
                                      "utc_offset",
                                      (json_int_t) o->utc_offset));
    }

    if (o->mark_read) {
        json_object_set_new(opt, "mark_read", json_true());
    }

    s = json_dumps(opt, JSON_COMPACT);
    json_decref(opt);

    return s;
}

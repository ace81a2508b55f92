/*
 * wa-relay: the stream names (see wa_streams.h).
 */

#include "wa_streams.h"


const char *wa_stream_names[WA_STREAM_COUNT] = {
    "messages", "statuses", "account"
};

/*
 * wa-relay: partitions of the key layout.  The slot is Redis Cluster's:
 * CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key, or of
 * the part between the first "{" and the next "}" when that part is not
 * empty, modulo 16384 (the Redis Cluster specification).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wa_partition.h"


static uint16_t
wa_crc16(const char *s, size_t len)
{
    size_t    i;
    int       b;
    uint16_t  crc = 0;

    for (i = 0; i < len; i++) {
        crc ^= (uint16_t) ((unsigned char) s[i] << 8);

        for (b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc;
}


unsigned
wa_key_slot(const char *key, size_t len)
{
    const char  *open, *close;

    open = memchr(key, '{', len);

    if (open != NULL) {
        close = memchr(open + 1, '}', len - (open + 1 - key));

        if (close != NULL && close > open + 1) {
            key = open + 1;
            len = close - key;
        }
    }

    return wa_crc16(key, len) & (WA_SLOTS - 1);
}


size_t
wa_partition_tag(unsigned p, unsigned n, char *tag)
{
    int           len;
    unsigned      k, slot, lo, hi;

    lo = (unsigned) ((unsigned long) p * WA_SLOTS / n);
    hi = (unsigned) ((unsigned long) (p + 1) * WA_SLOTS / n);

    /* a range holds 16 slots at least: some k falls in it soon enough */
    for (k = 0; ; k++) {
        len = snprintf(tag, WA_TAG_LEN, "%u.%u", p, k);
        slot = wa_key_slot(tag, (size_t) len);

        if (slot >= lo && slot < hi) {
            return (size_t) len;
        }
    }
}


/* FNV-1a: numbers spread over the partitions, whatever their digits */
unsigned
wa_partition_of(const char *id, size_t len, unsigned n)
{
    size_t    i;
    uint32_t  h = 2166136261u;

    if (n <= 1) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) id[i];
        h *= 16777619u;
    }

    return h % n;
}


size_t
wa_partition_prefix(const char *prefix, size_t len, unsigned p, unsigned n,
    char *buf, size_t size)
{
    int   r;
    char  tag[WA_TAG_LEN];

    if (n <= 1) {
        r = snprintf(buf, size, "%.*s", (int) len, prefix);

    } else {
        wa_partition_tag(p, n, tag);
        r = snprintf(buf, size, "%.*s:{%s}", (int) len, prefix, tag);
    }

    return (r < 0 || (size_t) r >= size) ? 0 : (size_t) r;
}

/*
 * wa-relay: opt-out / opt-in keywords.
 *
 * A keyword matches the whole text of an inbound message once both are
 * folded: white space trimmed, letters upper-cased, Latin accents removed
 * ("  Pará " matches "PARA").
 */

#ifndef WA_KEYWORD_H
#define WA_KEYWORD_H

#include <stddef.h>

#define WA_KEYWORD_MAX  64          /* longer texts are never keywords */

typedef struct {
    char    **words;                /* folded */
    size_t    n;
} wa_keywords_t;

/* fold text into out (WA_KEYWORD_MAX + 1 bytes); -1 if too long */
int wa_keyword_fold(const char *text, size_t len, char *out);

/* parse a comma-separated list; 0 or -1 (out of memory or a word too long) */
int wa_keywords_parse(wa_keywords_t *kw, const char *list);
void wa_keywords_free(wa_keywords_t *kw);

int wa_keywords_match(const wa_keywords_t *kw, const char *text, size_t len);

#endif /* WA_KEYWORD_H */

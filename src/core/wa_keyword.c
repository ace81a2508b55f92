/*
 * wa-relay: opt-out / opt-in keywords, matched case- and accent-insensitively
 * on the whole trimmed text.
 */

#include <stdlib.h>
#include <string.h>

#include "wa_keyword.h"


/*
 * The base letter of U+00C0..U+017F (Latin-1 Supplement and Latin
 * Extended-A), upper case; 0 where the character is not a letter with one.
 */
static const char  wa_latin[] =
    /* C0 */ "AAAAAAACEEEEIIII" "DNOOOOO\0OUUUUYTS"
    /* E0 */ "AAAAAAACEEEEIIII" "DNOOOOO\0OUUUUYTY"
    /* 100 */ "AAAAAACCCCCCCCDD" "DDEEEEEEEEEEGGGG"
    /* 120 */ "GGGGHHHHIIIIIIII" "IIJJJJKKKLLLLLLL"
    /* 140 */ "LLLNNNNNNNNNOOOO" "OOOORRRRRRSSSSSS"
    /* 160 */ "SSTTTTTTUUUUUUUU" "UUUUWWYYYZZZZZZS";


static int
wa_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
           || c == '\v';
}


int
wa_keyword_fold(const char *text, size_t len, char *out)
{
    size_t          n;
    unsigned int    cp;
    unsigned char   c;
    const unsigned char  *p, *end;

    p = (const unsigned char *) text;
    end = p + len;

    while (p < end && wa_is_space(*p)) {
        p++;
    }

    while (end > p && wa_is_space(end[-1])) {
        end--;
    }

    n = 0;

    while (p < end) {
        c = *p;

        if (c < 0x80) {
            out[n] = (c >= 'a' && c <= 'z') ? (char) (c - 32) : (char) c;
            p++;

        } else if ((c & 0xe0) == 0xc0 && p + 1 < end
                   && (p[1] & 0xc0) == 0x80)
        {
            cp = ((c & 0x1fu) << 6) | (p[1] & 0x3fu);

            if (cp >= 0xc0 && cp <= 0x17f && wa_latin[cp - 0xc0]) {
                out[n] = wa_latin[cp - 0xc0];
                p += 2;

            } else {
                /* keep other characters as they are */
                if (n + 2 > WA_KEYWORD_MAX) {
                    return -1;
                }

                out[n++] = (char) p[0];
                out[n] = (char) p[1];
                p += 2;
            }

        } else {
            out[n] = (char) c;
            p++;
        }

        if (++n > WA_KEYWORD_MAX) {
            return -1;
        }
    }

    out[n] = '\0';

    return 0;
}


int
wa_keywords_parse(wa_keywords_t *kw, const char *list)
{
    char        folded[WA_KEYWORD_MAX + 1], **words;
    size_t      len;
    const char  *p, *comma;

    kw->words = NULL;
    kw->n = 0;

    for (p = list; p && *p; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        len = comma ? (size_t) (comma - p) : strlen(p);

        if (wa_keyword_fold(p, len, folded) != 0) {
            wa_keywords_free(kw);
            return -1;
        }

        if (folded[0] == '\0') {
            continue;
        }

        words = realloc(kw->words, (kw->n + 1) * sizeof(char *));
        if (words == NULL) {
            wa_keywords_free(kw);
            return -1;
        }

        kw->words = words;
        kw->words[kw->n] = strdup(folded);

        if (kw->words[kw->n] == NULL) {
            wa_keywords_free(kw);
            return -1;
        }

        kw->n++;
    }

    return 0;
}


void
wa_keywords_free(wa_keywords_t *kw)
{
    size_t  i;

    for (i = 0; i < kw->n; i++) {
        free(kw->words[i]);
    }

    free(kw->words);
    kw->words = NULL;
    kw->n = 0;
}


int
wa_keywords_match(const wa_keywords_t *kw, const char *text, size_t len)
{
    char    folded[WA_KEYWORD_MAX + 1];
    size_t  i;

    if (len > 4 * WA_KEYWORD_MAX
        || wa_keyword_fold(text, len, folded) != 0)
    {
        return 0;
    }

    for (i = 0; i < kw->n; i++) {
        if (strcmp(kw->words[i], folded) == 0) {
            return 1;
        }
    }

    return 0;
}

/* suggest.c — "did you mean": the closest known word to a typo, one rule for every message
 * (config fields, YAML keys, plugin names). */
#include <string.h>
#include "peft/util.h"

/* optimal-string-alignment distance (Levenshtein plus adjacent transpositions, "lrean" ->
 * "learn" is 1), capped: words longer than 64 bytes are never suggested */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *peft_did_you_mean(const char *s, const char *const *cand, size_t n)
{
    const char *best = NULL;
    int bd = 4;
    for (size_t i = 0; i < n; i++) {
        if (!cand[i]) continue;
        int d = edit_distance(s, cand[i]);
        if (d < bd) bd = d, best = cand[i];
    }
    return best && bd <= (strlen(s) <= 3 ? 1 : 3) ? best : NULL;
}

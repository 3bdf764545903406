/* grammar.c — lines of the embedded default's synthetic language (see grammar.h). */
#include <string.h>
#include "grammar.h"

static const char *const TAGS[GRAMMAR_N_OPS] = {"cap", "nxt", "prv", "mir"};

const char *grammar_tag(int op) { return op >= 0 && op < GRAMMAR_N_OPS ? TAGS[op] : "?"; }

static char apply(int op, char x)
{
    int i = x - 'a';
    switch (op) {
    case GRAMMAR_CAP: return (char)('A' + i);
    case GRAMMAR_NXT: return (char)('a' + (i + 1) % 26);
    case GRAMMAR_PRV: return (char)('a' + (i + 25) % 26);
    default: return (char)('z' - i);
    }
}

int grammar_line(peft_rng *r, int op, int with_tag, char *line, unsigned char *answer)
{
    int n = 0, pairs = 3 + (int)(peft_rng_uniform(r) * 4); /* 3..6 */
    memset(answer, 0, GRAMMAR_MAX_LINE);
    if (with_tag) {
        memcpy(line, TAGS[op], 3);
        line[3] = ':';
        n = 4;
    }
    for (int p = 0; p < pairs; p++) {
        char x = (char)('a' + (int)(peft_rng_uniform(r) * 26));
        if (n) line[n++] = ' ';
        line[n++] = x;
        line[n++] = '>';
        answer[n] = 1;
        line[n++] = apply(op, x);
    }
    line[n++] = '\n';
    line[n] = 0;
    return n;
}

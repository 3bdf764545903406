/* make_task_data.c — the recipe of the embedded default's downstream data set
 * (examples/data/mirror-{train,eval}.jsonl): lines of one operation of the grammar (grammar.h)
 * WITHOUT their tag, e.g. "q>j f>u z>a" for the mirror operation. Each JSONL line holds the
 * byte ids of the line ("input_ids"), "labels" that keep only the answer letters (-100
 * elsewhere: the loss and the exact-match metric are on the answers), and the line as text
 * ("line", for people; the runner ignores it). The train and eval splits come from different
 * seeds. `make task-data` runs it; the same seeds give the same bytes.
 *
 * usage: make_task_data --out-train FILE --out-eval FILE [--op mir] [--train 400] [--eval 200]
 *        [--seed 0]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "grammar.h"

static int write_split(const char *path, int op, int n, uint64_t seed)
{
    FILE *f = fopen(path, "w");
    if (!f) return fprintf(stderr, "make_task_data: %s: cannot create\n", path), -1;
    peft_rng r;
    peft_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        char line[GRAMMAR_MAX_LINE];
        unsigned char ans[GRAMMAR_MAX_LINE];
        int k = grammar_line(&r, op, 0, line, ans);
        fputs("{\"input_ids\": [", f);
        for (int t = 0; t < k; t++) fprintf(f, "%s%d", t ? ", " : "", (unsigned char)line[t]);
        fputs("], \"labels\": [", f);
        for (int t = 0; t < k; t++) fprintf(f, "%s%d", t ? ", " : "", ans[t] ? (unsigned char)line[t] : -100);
        line[k - 1] = 0; /* the newline */
        fprintf(f, "], \"line\": \"%s\\n\"}\n", line);
    }
    if (fclose(f) != 0) return fprintf(stderr, "make_task_data: %s: write failed\n", path), -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *train = NULL, *eval = NULL, *opname = "mir";
    int ntrain = 400, neval = 200;
    unsigned long long seed = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--out-train")) train = argv[i + 1];
        else if (!strcmp(argv[i], "--out-eval")) eval = argv[i + 1];
        else if (!strcmp(argv[i], "--op")) opname = argv[i + 1];
        else if (!strcmp(argv[i], "--train")) ntrain = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--eval")) neval = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else train = NULL, i = argc;
    }
    int op = -1;
    for (int k = 0; k < GRAMMAR_N_OPS; k++)
        if (!strcmp(opname, grammar_tag(k))) op = k;
    if (!train || !eval || op < 0 || ntrain < 1 || neval < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: make_task_data --out-train FILE --out-eval FILE [--op cap|nxt|prv|mir] "
                        "[--train N] [--eval N] [--seed S]\n");
        return 2;
    }
    /* seeds far from the base model's pretraining and held-out seeds */
    if (write_split(train, op, ntrain, seed + 7001) || write_split(eval, op, neval, seed + 9001)) return 1;
    printf("wrote %d training lines to %s and %d evaluation lines to %s (operation %s, untagged)\n", ntrain,
           train, neval, eval, opname);
    return 0;
}

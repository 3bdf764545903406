/* world.c — scratch worlds for the `peft run` suites (world.h). */
#include "world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peft/util.h"
#include "testutil.h"

void tu_copy_file(const char *from, const char *to)
{
    size_t n;
    char *d = tu_read_file(from, &n);
    ck_assert_msg(d, "cannot read %s", from);
    ck_assert_msg(tu_write_file(to, d, n) == 0, "cannot write %s", to);
    free(d);
}

void tu_world_llama(const char *dir)
{
    char p[4200], q[4200];
    snprintf(p, sizeof p, "%s/model", dir);
    ck_assert(peft_mkdirs(tu_ctx(), p) == 0);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(q, sizeof q, "hf-peft/_models/llama/%s", files[i]);
        snprintf(p, sizeof p, "%s/model/%s", dir, files[i]);
        tu_copy_file(tu_fixture(q), p);
    }
}

void tu_world_counting_data(const char *dir)
{
    char p[4200];
    for (int split = 0; split < 2; split++) {
        snprintf(p, sizeof p, "%s/%s.jsonl", dir, split ? "eval" : "train");
        FILE *f = fopen(p, "w");
        ck_assert_msg(f, "cannot write %s", p);
        for (int i = 0; i < (split ? 12 : 40); i++) {
            int start = (i * 7 + split * 3) % 60, step = 1 + i % 3, len = 8 + i % 5;
            fputs("{\"input_ids\": [", f);
            for (int t = 0; t < len; t++) fprintf(f, "%s%d", t ? ", " : "", start + step * t);
            fputs("], \"labels\": [", f);
            for (int t = 0; t < len; t++) fprintf(f, "%s%d", t ? ", " : "", t < len / 2 ? -100 : start + step * t);
            fputs("]}\n", f);
        }
        fclose(f);
    }
}

char *tu_world_write(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    ck_assert(p);
    snprintf(p, n, "%s/%s", dir, name);
    ck_assert_msg(tu_write_file(p, text, strlen(text)) == 0, "cannot write %s", p);
    return p;
}

void tu_same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    ck_assert_msg(x && y, "missing %s or %s", a, b);
    ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

char *tu_summary_sans_timings(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/summary.md", dir);
    char *md = tu_read_file(p, NULL);
    ck_assert_msg(md, "%s missing", p);
    char *out = calloc(strlen(md) + 1, 1);
    ck_assert(out);
    size_t o = 0;
    for (char *line = md; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
        int bars = 0;
        for (size_t i = 0; i < len; i++) bars += line[i] == '|';
        for (size_t i = 0, col = 0; i < len; i++) {
            if (line[i] == '|') col++;
            if (bars == 13 && (col == 10 || col == 11) && line[i] != '|') continue; /* the run table */
            out[o++] = line[i];
        }
        line += len;
    }
    free(md);
    return out;
}

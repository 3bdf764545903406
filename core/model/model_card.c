/* model_card.c — PEFT's create_or_update_model_card: README.md beside a saved adapter with the
 * Hugging Face card metadata (library_name: peft, base_model) and a "Framework versions"
 * line, keeping everything a user already wrote there. Written atomically. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/util/fs.h"
#include "core/peft/internal.h"
#include "peft/util.h"

#define PEFT_FORMAT_VERSION "0.13.2" /* the PEFT release whose formats libpeft writes */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, r;
    char *b = malloc(cap);
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = cap < (16u << 20) ? realloc(b, cap *= 2) : NULL;
            if (!nb) { free(b); b = NULL; }
            else b = nb;
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    return b;
}

/* appends s to the growing buffer */
typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;
static void put(sbuf *b, const char *s, size_t len)
{
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}
static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

static int key_is(const char *line, const char *key)
{
    size_t k = strlen(key);
    return !strncmp(line, key, k) && line[k] == ':';
}

static const char *TEMPLATE_BODY =
    "\n# Model Card for Model ID\n\n"
    "<!-- A parameter-efficient adapter. Describe what it was trained for, on which data, and how\n"
    "to use it: load it with PEFT's PeftModel.from_pretrained(base_model, this_dir) or with\n"
    "libpeft's peft_from_pretrained(). -->\n\n"
    "## Training Details\n\n[More Information Needed]\n\n"
    "## Evaluation\n\n[More Information Needed]\n";

int peft_create_or_update_model_card(peft_model *m, const char *dir)
{
    char path[4096];
    if (!dir || strlen(dir) > 3000)
        return peft_set_error(m->ctx, PEFT_EINVAL, "model card: the directory path is empty or too long");
    snprintf(path, sizeof path, "%s/README.md", dir);
    char *old = read_all(path);
    const char *base = m->base->dir;
    sbuf b = {0};
    const char *body = old ? old : TEMPLATE_BODY;
    /* front matter: keep the user's keys, set library_name and base_model */
    puts_(&b, "---\n");
    int have_lib = 0, have_base = 0;
    if (old && !strncmp(old, "---\n", 4)) {
        const char *end = strstr(old + 4, "\n---");
        if (end) {
            const char *line = old + 4;
            while (line <= end) {
                const char *nl = strchr(line, '\n');
                size_t len = (size_t)((nl ? nl : end + 1) - line);
                if (key_is(line, "library_name")) { have_lib = 1; puts_(&b, "library_name: peft\n"); }
                else if (key_is(line, "base_model") && len < 4096) {
                    have_base = 1;
                    put(&b, line, len);
                    puts_(&b, "\n");
                } else if (len) {
                    put(&b, line, len);
                    puts_(&b, "\n");
                }
                if (!nl || nl >= end) break;
                line = nl + 1;
            }
            body = end + 4; /* after "\n---" */
            if (*body == '\n') body++;
        }
    }
    if (!have_base && base) {
        puts_(&b, "base_model: ");
        puts_(&b, base);
        puts_(&b, "\n");
    }
    if (!have_lib) puts_(&b, "library_name: peft\n");
    puts_(&b, "---\n");
    puts_(&b, body);
    const char *line = "- PEFT " PEFT_FORMAT_VERSION " (written by libpeft " PEFT_VERSION ")";
    if (!strstr(body, line)) {
        if (!strstr(body, "### Framework versions")) puts_(&b, "\n### Framework versions\n\n");
        else puts_(&b, "\n");
        puts_(&b, line);
        puts_(&b, "\n");
    }
    free(old);
    if (b.oom) {
        free(b.p);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "model card: out of memory");
    }
    char err[1024];
    int rc = peft_write_file_atomic_buf(path, b.p, b.n, err, sizeof err);
    free(b.p);
    if (rc) return peft_set_error(m->ctx, rc, "%s", err);
    return PEFT_OK;
}

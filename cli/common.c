/* common.c — option helpers, IN.json batches and model + adapter setup for the CLI (a mixed
 * model's directory, with its peft_mixed.json, loads as the mixed model it was). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cli.h"

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("peft: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name)
{
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) {
        cli_fail("%s needs a value", name);
        exit(2);
    }
    return argv[++*i];
}

char *cli_read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *b = cap < (64u << 20) ? realloc(buf, cap *= 2) : NULL;
            if (!b) { free(buf); buf = NULL; }
            else buf = b;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        cli_fail("%s: cannot read (or larger than 64 MB)", path);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* "DIR[:NAME]"; returns 1 when a NAME was given */
static int split_adapter(const char *spec, char *dir, size_t len, char *name, size_t nlen, int idx)
{
    const char *colon = strrchr(spec, ':');
    if (colon && colon[1] && !strchr(colon, '/')) {
        snprintf(dir, len, "%.*s", (int)(colon - spec), spec);
        snprintf(name, nlen, "%s", colon + 1);
        return 1;
    }
    snprintf(dir, len, "%s", spec);
    if (idx == 0) snprintf(name, nlen, "default");
    else snprintf(name, nlen, "adapter%d", idx);
    return 0;
}

/* the first adapter (or a mixed model's directory, manifest and all) into a new model */
static int open_first(peft_ctx *ctx, peft_base_model *base, const char *dir, const char *name,
                      int named, int trainable, int mixed, peft_model **m)
{
    if (peft_is_mixed_dir(dir)) {
        if (named)
            return peft_set_error(ctx, PEFT_EINVAL, "%s holds a mixed model (peft_mixed.json): its "
                                  "adapter names come from the manifest; drop ':%s'", dir, name);
        return peft_mixed_from_pretrained(ctx, base, dir, NULL, trainable, m);
    }
    return mixed ? peft_mixed_from_pretrained(ctx, base, dir, name, trainable, m)
                 : peft_from_pretrained(ctx, base, dir, name, trainable, m);
}

/* --dtype / --quant of the command line: how cli_open_model loads the base */
static const char *load_dtype, *load_quant;
static int load_random;

int cli_load_opt(int argc, char **argv, int *i)
{
    const char *v;
    if ((v = cli_opt(argc, argv, i, "--dtype"))) load_dtype = v;
    else if ((v = cli_opt(argc, argv, i, "--quant"))) load_quant = v;
    else if (!strcmp(argv[*i], "--random-weights")) load_random = 2;
    else return 0;
    return 1;
}

int cli_load_base(peft_ctx *ctx, const char *model_dir, peft_base_model **out)
{
    peft_load_options o = {.struct_size = sizeof o, .torch_dtype = load_dtype, .quant = load_quant,
                           .random_init = load_random};
    if (peft_load_base_model_ex(ctx, model_dir, &o, out))
        return cli_fail("%s%s", peft_errmsg(ctx), load_dtype || load_quant ? " (--dtype / --quant)" : "");
    return 0;
}

int cli_open_model_mixed(peft_ctx *ctx, const char *model_dir, char **adapters, int n_adapters,
                         int trainable, int mixed, peft_base_model **pbase, peft_model **pm)
{
    *pm = NULL;
    *pbase = NULL;
    peft_base_model *base;
    if (cli_load_base(ctx, model_dir, &base)) return 1;
    if (n_adapters == 0) {
        *pbase = base;
        return 0;
    }
    char dir[4096], name[256];
    const char *names[2 * CLI_MAX_ADAPTERS];
    char name_store[CLI_MAX_ADAPTERS][256];
    int n_active = 0;
    peft_model *m = NULL;
    for (int i = 0; i < n_adapters; i++) {
        int named = split_adapter(adapters[i], dir, sizeof dir, name, sizeof name, i);
        snprintf(name_store[i], sizeof name_store[i], "%s", name);
        int rc;
        if (i == 0) {
            rc = open_first(ctx, base, dir, name, named, trainable, mixed, &m);
            /* a mixed directory brings its own active set; the other adapters join it */
            for (int k = 0; !rc && peft_is_mixed_dir(dir) && k < peft_adapter_count(m); k++)
                if (peft_adapter_active(m, k) && n_active < CLI_MAX_ADAPTERS)
                    names[n_active++] = peft_adapter_name(m, k);
            if (!rc && !peft_is_mixed_dir(dir)) names[n_active++] = name_store[i];
        } else if (peft_is_mixed_dir(dir)) {
            rc = peft_set_error(ctx, PEFT_EINVAL, "%s holds a mixed model (peft_mixed.json): give it "
                                "as the first --adapter", dir);
        } else {
            rc = peft_load_adapter(m, dir, name_store[i], trainable);
            if (!rc) names[n_active++] = name_store[i];
        }
        if (rc) {
            int hint = !mixed && strstr(peft_errmsg(ctx), "need a mixed model") != NULL;
            if (i == 0) peft_base_model_free(base);
            peft_model_free(m);
            return cli_fail("%s%s", peft_errmsg(ctx), hint ? " (pass --mixed)" : "");
        }
    }
    if (peft_set_adapters(m, names, n_active)) {
        peft_model_free(m);
        return cli_fail("%s", peft_errmsg(ctx));
    }
    *pm = m;
    return 0;
}

int cli_open_model(peft_ctx *ctx, const char *model_dir, char **adapters, int n_adapters,
                   int trainable, peft_base_model **pbase, peft_model **pm)
{
    return cli_open_model_mixed(ctx, model_dir, adapters, n_adapters, trainable, 0, pbase, pm);
}

int cli_load_inputs(const char *path, peft_inputs *in)
{
    peft_ctx *ctx = peft_ctx_new(0);
    if (!ctx) return cli_fail("out of memory");
    int rc = peft_inputs_load_json(ctx, path, in) ? cli_fail("%s", peft_errmsg(ctx)) : 0;
    peft_ctx_free(ctx);
    return rc;
}

int cli_split_names(char *buf, const char **names, int max)
{
    int n = 0;
    for (char *s = strtok(buf, ","); s && n < max; s = strtok(NULL, ",")) names[n++] = s;
    return n;
}

int cli_row_adapters(const char *spec, char *buf, size_t len, const char **names, int max, int64_t B,
                     int have_model)
{
    snprintf(buf, len, "%s", spec);
    int n = cli_split_names(buf, names, max);
    if (!have_model || n != B)
        return cli_fail("--row-adapters: %d names for a batch of %lld rows%s", n, (long long)B,
                        have_model ? "" : " (and no adapters loaded)");
    return 0;
}

/* cmd_combine.c — `peft combine`: PEFT's add_weighted_adapter from the command line. Loads the
 * base model and the source adapters, combines them into a new adapter (core/peft_combine.h) and
 * writes it in PEFT's format (adapter_config.json + adapter_model.safetensors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/tokenizer.h"
#include "cli.h"
#include "peft/combine.h"

static const char *HELP =
    "usage: peft combine --model DIR --adapter DIR[:NAME]... --weights W,W,...\n"
    "                    --combination-type TYPE --output DIR [--name NAME]\n"
    "                    [--density D] [--svd-rank R] [--svd-clamp Q] [--svd-reduced]\n"
    "                    [--majority-sign-method total|frequency] [--seed S]\n\n"
    "Combines the adapters (one weight each, in order) into a new adapter with PEFT's\n"
    "add_weighted_adapter and saves it to OUTPUT (as save_pretrained: the adapter named\n"
    "\"default\", the default --name, goes to OUTPUT itself, another name to OUTPUT/NAME).\n"
    "TYPE: linear, cat, svd, ties, ties_svd, dare_linear, dare_ties, dare_linear_svd,\n"
    "dare_ties_svd, magnitude_prune, magnitude_prune_svd. --density is needed by ties, dare_*\n"
    "and magnitude_prune*; --svd-rank (default: the largest source rank), --svd-clamp and\n"
    "--svd-reduced (PEFT's svd_full_matrices=False) by the *svd types; --seed drives the DARE\n"
    "masks. A source without :NAME is named source1, source2, ...\n";

/* "DIR[:NAME]" (a ':' followed by no '/' ends the directory) */
static void split_spec(const char *spec, int idx, char *dir, size_t dlen, char *name, size_t nlen)
{
    const char *colon = strrchr(spec, ':');
    if (colon && colon[1] && !strchr(colon, '/')) {
        snprintf(dir, dlen, "%.*s", (int)(colon - spec), spec);
        snprintf(name, nlen, "%s", colon + 1);
    } else {
        snprintf(dir, dlen, "%s", spec);
        snprintf(name, nlen, "source%d", idx + 1);
    }
}

/* "0.5,1,-2" -> w[]; the count, or -1 after printing why */
static int parse_weights(const char *s, double *w, int max)
{
    int n = 0;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || !isfinite(v) || (*end && *end != ',') || n == max) {
            cli_fail("--weights '%s': expected comma-separated numbers, one per --adapter", s);
            return -1;
        }
        w[n++] = v;
        s = *end ? end + 1 : end;
    }
    return n;
}

typedef struct combine_args {
    const char *model, *output, *type, *wspec, *name;
    char *specs[CLI_MAX_ADAPTERS];
    int n;
    peft_combine_opts o;
    unsigned long long seed;
} combine_args;

/* one numeric option into a: 1 it was one (*rc: -1 go on, or the exit status), 0 not one */
static int numeric_opt(int argc, char **argv, int *i, combine_args *a, int *rc)
{
    const char *v;
    char *end = NULL;
    *rc = -1;
    if ((v = cli_opt(argc, argv, i, "--density"))) {
        a->o.density = strtod(v, &end);
        if (end == v || *end) *rc = cli_fail("--density '%s': expected a number in [0, 1]", v);
    } else if ((v = cli_opt(argc, argv, i, "--svd-clamp"))) {
        a->o.svd_clamp = strtod(v, &end);
        if (end == v || *end) *rc = cli_fail("--svd-clamp '%s': expected a quantile in [0, 1]", v);
    } else if ((v = cli_opt(argc, argv, i, "--svd-rank"))) {
        long r = strtol(v, &end, 10);
        if (end == v || *end || r < 1 || r > 1000000)
            *rc = cli_fail("--svd-rank '%s': expected a positive integer", v);
        a->o.svd_rank = (int)r;
    } else if ((v = cli_opt(argc, argv, i, "--seed"))) {
        a->seed = strtoull(v, &end, 10);
        if (end == v || *end) *rc = cli_fail("--seed '%s': expected a non-negative integer", v);
    } else {
        return 0;
    }
    return 1;
}

/* the options into a: -1 go on, else the command's exit status (--help, a bad option) */
static int parse_args(int argc, char **argv, combine_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        int rc;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if ((v = cli_opt(argc, argv, &i, "--model"))) a->model = v;
        else if ((v = cli_opt(argc, argv, &i, "--output"))) a->output = v;
        else if ((v = cli_opt(argc, argv, &i, "--name"))) a->name = v;
        else if ((v = cli_opt(argc, argv, &i, "--weights"))) a->wspec = v;
        else if ((v = cli_opt(argc, argv, &i, "--combination-type"))) a->type = v;
        else if ((v = cli_opt(argc, argv, &i, "--majority-sign-method"))) a->o.majority_sign_method = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) {
            if (a->n == CLI_MAX_ADAPTERS) return cli_fail("at most %d adapters", CLI_MAX_ADAPTERS);
            a->specs[a->n++] = (char *)v;
        } else if (numeric_opt(argc, argv, &i, a, &rc)) {
            if (rc >= 0) return rc;
        } else if (!strcmp(argv[i], "--svd-reduced")) a->o.svd_full_matrices = 0;
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!a->model || !a->output || !a->type || !a->wspec || a->n == 0) {
        fputs(HELP, stderr);
        return cli_fail("--model, --adapter, --weights, --combination-type and --output are required");
    }
    a->o.combination_type = a->type;
    return -1;
}

int cmd_combine(int argc, char **argv)
{
    combine_args a = {.name = "default"};
    peft_combine_opts_init(&a.o);
    a.o.combination_type = NULL;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    const char *name = a.name;
    const int n = a.n;
    double weights[CLI_MAX_ADAPTERS];
    int nw = parse_weights(a.wspec, weights, CLI_MAX_ADAPTERS);
    if (nw < 0) return 1;
    if (nw != n) return cli_fail("--weights has %d values for %d adapters", nw, n);

    peft_ctx *ctx = peft_ctx_new(a.seed);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    if (!ctx) return cli_fail("out of memory");
    peft_base_model *base = NULL;
    peft_model *m = NULL;
    char names[CLI_MAX_ADAPTERS][256], dir[4096];
    const char *np[CLI_MAX_ADAPTERS];
    rc = 1;
    if (peft_load_base_model(ctx, a.model, &base)) { cli_fail("%s", peft_errmsg(ctx)); goto out; }
    for (int i = 0; i < n; i++) {
        split_spec(a.specs[i], i, dir, sizeof dir, names[i], sizeof names[i]);
        np[i] = names[i];
        int e = i == 0 ? peft_from_pretrained(ctx, base, dir, names[i], 0, &m)
                       : peft_load_adapter(m, dir, names[i], 0);
        if (i == 0 && !e) base = NULL; /* the model owns it now */
        if (e) { cli_fail("%s", peft_errmsg(ctx)); goto out; }
    }
    if (peft_add_weighted_adapter(m, np, weights, n, name, &a.o)) {
        cli_fail("%s", peft_errmsg(ctx));
        goto out;
    }
    peft_state_dict *sd = NULL;
    if (peft_get_peft_model_state_dict(m, name, &sd)) { cli_fail("%s", peft_errmsg(ctx)); goto out; }
    size_t n_tensors = sd->n;
    peft_state_dict_free(sd);
    if (peft_save_pretrained(m, a.output, &name, 1, 1)) { cli_fail("%s", peft_errmsg(ctx)); goto out; }
    printf("combined %d adapter%s (%s) into '%s' (%zu tensors)\n", n, n > 1 ? "s" : "",
           n > 1 ? a.type : "linear", name, n_tensors);
    if (!strcmp(name, "default"))
        printf("wrote %s/adapter_config.json and %s/adapter_model.safetensors\n", a.output, a.output);
    else
        printf("wrote %s/%s/adapter_config.json and %s/%s/adapter_model.safetensors\n", a.output,
               name, a.output, name);
    rc = 0;
out:
    peft_model_free(m);
    peft_base_model_free(base);
    peft_ctx_free(ctx);
    return rc;
}

/* cmd_forward.c — `peft forward`: logits (and loss, and adapter gradients) for a batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/tokenizer.h"
#include "cli.h"

static const char *HELP =
    "usage: peft forward --model DIR [--adapter DIR[:NAME]]... [--merge] --input IN.json\n"
    "                    --output OUT.safetensors [--grads GRADS.safetensors] [--seed N]\n"
    "                    [--active NAME[,NAME...]] [--row-adapters NAME,__base__,NAME...]\n"
    "                    [--mixed]\n\n"
    "IN.json holds input_ids (and optionally attention_mask, labels, or start_positions and\n"
    "end_positions for question answering) as nested lists. OUT gets `logits` (or\n"
    "start_logits/end_logits) and `loss` when the inputs give one. GRADS gets d(loss)/d(param)\n"
    "for every trainable adapter tensor under its PEFT state-dict key (needs a loss).\n"
    "--merge folds the adapters into the base weights (safe merge) before the forward.\n"
    "Adapters load in the order given, all active; --active picks the active set instead.\n"
    "--row-adapters gives one adapter name per batch row (__base__: none), run in one pass.\n"
    "--mixed loads the adapters into a mixed model (PeftMixedModel: several methods, e.g. LoRA,\n"
    "LoHa, IA3 and a prompt method, in the order given). An --adapter directory holding a saved\n"
    "mixed model (peft_mixed.json) loads as that model, with its order and active set.\n"
    CLI_LOAD_HELP;

/* saved key of a trainable tensor: looked up over every adapter's state dict */
static const char *saved_name_of(peft_model *m, peft_tensor *t, peft_state_dict **sds, int n)
{
    (void)m;
    for (int a = 0; a < n; a++)
        for (size_t i = 0; sds[a] && i < sds[a]->n; i++)
            if (sds[a]->tensors[i] == t) return sds[a]->names[i];
    return NULL;
}

static int write_grads(peft_model *m, const char *path)
{
    peft_ctx *ctx = peft_model_ctx(m);
    peft_state_dict *tp;
    if (peft_trainable_parameters(m, &tp)) return cli_fail("%s", peft_errmsg(ctx));
    int na = peft_adapter_count(m);
    peft_state_dict *sds[CLI_MAX_ADAPTERS] = {0};
    for (int a = 0; a < na && a < CLI_MAX_ADAPTERS; a++)
        if (peft_get_peft_model_state_dict(m, peft_adapter_name(m, a), &sds[a])) sds[a] = NULL;
    peft_st_out *outs = calloc(tp->n + 1, sizeof *outs);
    float **zeros = calloc(tp->n + 1, sizeof *zeros);
    if (!outs || !zeros) {
        free(outs);
        free(zeros);
        for (int a = 0; a < na && a < CLI_MAX_ADAPTERS; a++) peft_state_dict_free(sds[a]);
        peft_state_dict_free(tp);
        return cli_fail("out of memory");
    }
    int oom = 0;
    for (size_t i = 0; i < tp->n; i++) {
        peft_tensor *t = tp->tensors[i];
        const char *key = na == 1 ? saved_name_of(m, t, sds, na) : NULL;
        const float *g = t->grad; /* NULL: the loss does not depend on it */
        if (!g) oom |= !(g = zeros[i] = calloc((size_t)t->numel + 1, sizeof(float)));
        outs[i] = (peft_st_out){key ? key : tp->names[i], PEFT_DTYPE_F32, t->ndim, t->shape, g};
    }
    static const char *const meta[] = {"format", "pt", NULL};
    int rc = oom ? peft_set_error(peft_model_ctx(m), PEFT_ENOMEM, "out of memory")
                 : peft_st_write(peft_model_ctx(m), path, outs, tp->n, meta);
    for (size_t i = 0; i < tp->n; i++) free(zeros[i]);
    free(zeros);
    free(outs);
    for (int a = 0; a < na && a < CLI_MAX_ADAPTERS; a++) peft_state_dict_free(sds[a]);
    peft_state_dict_free(tp);
    return rc ? cli_fail("%s", peft_errmsg(peft_model_ctx(m))) : 0;
}

typedef struct fwd_opts {
    const char *model, *input, *output, *grads;
    char *adapters[CLI_MAX_ADAPTERS];
    int n_adapters, merge, mixed;
    const char *active, *row_spec;
    unsigned long long seed;
} fwd_opts;

/* the options into o: -1 go on, else the command's exit status (--help, a bad option) */
static int parse_opts(int argc, char **argv, fwd_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if (cli_load_opt(argc, argv, &i)) continue;
        else if ((v = cli_opt(argc, argv, &i, "--model"))) o->model = v;
        else if ((v = cli_opt(argc, argv, &i, "--input"))) o->input = v;
        else if ((v = cli_opt(argc, argv, &i, "--output"))) o->output = v;
        else if ((v = cli_opt(argc, argv, &i, "--grads"))) o->grads = v;
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) o->seed = strtoull(v, NULL, 10);
        else if ((v = cli_opt(argc, argv, &i, "--active"))) o->active = v;
        else if ((v = cli_opt(argc, argv, &i, "--row-adapters"))) o->row_spec = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) {
            if (o->n_adapters == CLI_MAX_ADAPTERS) return cli_fail("at most %d adapters", CLI_MAX_ADAPTERS);
            o->adapters[o->n_adapters++] = (char *)v;
        } else if (!strcmp(argv[i], "--merge")) o->merge = 1;
        else if (!strcmp(argv[i], "--mixed")) o->mixed = 1;
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!o->model || !o->input || !o->output) { fputs(HELP, stderr); return cli_fail("--model, --input and --output are required"); }
    if (o->grads && o->merge) return cli_fail("--grads and --merge cannot be combined (merged adapters have no gradient)");
    if (o->grads && o->n_adapters == 0) return cli_fail("--grads needs at least one --adapter");
    return -1;
}

/* --active, --row-adapters (row_names, their text in rows_buf) and --merge on the loaded model
 * (m NULL: none). 0 or the exit status */
static int set_adapters(const fwd_opts *o, peft_ctx *ctx, peft_model *m, int64_t B, char *rows_buf, size_t rows_len,
                        const char **row_names, int max_rows)
{
    if (o->active) {
        char active_buf[4096];
        const char *names[256];
        snprintf(active_buf, sizeof active_buf, "%s", o->active);
        int n = cli_split_names(active_buf, names, 256);
        if (!m || peft_set_adapters(m, names, n))
            return cli_fail("--active: %s", m ? peft_errmsg(ctx) : "no adapters loaded");
    }
    if (o->row_spec) {
        int rc = cli_row_adapters(o->row_spec, rows_buf, rows_len, row_names, max_rows, B, m != NULL);
        if (rc) return rc;
        if (o->merge) return cli_fail("--row-adapters and --merge cannot be combined");
    }
    if (o->merge && m && peft_merge_adapter(m, NULL, 0, 1)) return cli_fail("%s", peft_errmsg(ctx));
    return 0;
}

/* the outputs (logits, start/end logits, last hidden state, loss) into path; the loss printed */
static int write_outputs(peft_ctx *ctx, const char *path, const peft_model_outputs *mo)
{
    peft_st_out outs[5];
    size_t n = 0;
    const char *out_names[5] = {"logits", "start_logits", "end_logits", "last_hidden_state", "loss"};
    peft_tensor *ts[5] = {mo->logits, mo->start_logits, mo->end_logits, mo->last_hidden_state, mo->loss};
    for (int k = 0; k < 5; k++)
        if (ts[k]) outs[n++] = (peft_st_out){out_names[k], PEFT_DTYPE_F32, ts[k]->ndim, ts[k]->shape, ts[k]->data};
    static const char *const meta[] = {"format", "pt", NULL};
    if (peft_st_write(ctx, path, outs, n, meta)) return cli_fail("%s", peft_errmsg(ctx));
    if (mo->loss) printf("loss %.9g\n", (double)peft_f32(mo->loss)[0]);
    return 0;
}

int cmd_forward(int argc, char **argv)
{
    fwd_opts o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc >= 0) return rc;
    const char *grads = o.grads, *input = o.input;

    peft_inputs in;
    if (cli_load_inputs(input, &in)) return 1;
    if (grads && !in.labels && !(in.start_positions && in.end_positions)) {
        peft_inputs_free(&in);
        return cli_fail("--grads needs a loss: labels (or, for question answering, start_positions "
                        "and end_positions) in %s", input);
    }
    peft_ctx *ctx = peft_ctx_new(o.seed);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *base = NULL;
    peft_model *m = NULL;
    rc = cli_open_model_mixed(ctx, o.model, o.adapters, o.n_adapters, grads != NULL, o.mixed, &base, &m);
    if (rc) goto out;
    char rows_buf[8192];
    const char *row_names[1024];
    if ((rc = set_adapters(&o, ctx, m, in.B, rows_buf, sizeof rows_buf, row_names, 1024))) goto out;

    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_graph_set_recording(g, grads != NULL);
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_model_outputs mo = {0};
    if (m) {
        int frc = o.row_spec ? peft_model_forward_rows(m, g, &mi, row_names, &mo) : peft_model_forward(m, g, &mi, &mo);
        if (frc) rc = cli_fail("%s", peft_errmsg(ctx));
    } else if (peft_base_model_forward(base, g, &mi, &mo)) {
        rc = cli_fail("%s", peft_graph_error(g));
    }
    if (!rc && grads && !mo.loss) rc = cli_fail("--grads: the model computed no loss from %s", input);
    else if (!rc && grads && peft_graph_backward(g, mo.loss)) rc = cli_fail("%s", peft_graph_error(g));
    if (!rc) rc = write_outputs(ctx, o.output, &mo);
    if (!rc && grads) rc = write_grads(m, grads);
    peft_graph_free(g);
out:
    if (m) peft_model_free(m);
    else peft_base_model_free(base);
    peft_ctx_free(ctx);
    peft_inputs_free(&in);
    return rc;
}

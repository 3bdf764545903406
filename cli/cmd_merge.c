/* cmd_merge.c — `peft merge`: fold adapters into the base weights (with a progress bar) and
 * write an ordinary Hugging Face model directory, reporting how far the merged outputs are from
 * the unmerged ones on a probe batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "peft/tokenizer.h"
#include "cli.h"
#include "peft/dtype.h"
#include "peft/model_save.h"

static const char *HELP =
    "usage: peft merge --model DIR --adapter DIR[:NAME]... --output DIR\n"
    "                  [--dtype f32|bf16|f16] [--probe IN.json] [--unsafe] [--mixed]\n\n"
    "Loads the base model and the adapters (all active), merges them into the base weights\n"
    "(safe merge: NaN/Inf refused, unless --unsafe), and writes OUTPUT/config.json and\n"
    "OUTPUT/model.safetensors, loadable by transformers' from_pretrained. The largest difference\n"
    "between merged and unmerged outputs on a probe batch (IN.json, or 2 x 16 seeded random\n"
    "tokens) is printed. --dtype defaults to the dtype of the loaded weights. An --adapter\n"
    "directory holding a saved mixed model (peft_mixed.json) merges its active adapters in the\n"
    "order they were added; --mixed loads adapters of several methods into one mixed model.\n"
    "Progress goes to stderr: a bar on a terminal, else a line per 10% of the layers.\n";

/* the library's progress reports (one per merged layer) drawn on stderr: a bar redrawn in place
 * on a terminal, plain log lines at every tenth otherwise; ud points at the isatty flag */
static void show_progress(void *ud, const char *task, int64_t done, int64_t total, const char *item)
{
    if (total <= 0) return;
    if (*(const int *)ud) {
        enum { WIDTH = 30 };
        int fill = (int)(done * WIDTH / total);
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        fprintf(stderr, "\r%s [%s] %lld/%lld %-48.48s", task, bar, (long long)done, (long long)total, item);
        if (done == total) fputc('\n', stderr);
    } else if (done == total || done * 10 / total != (done - 1) * 10 / total) {
        fprintf(stderr, "%s: %lld/%lld layers (%d%%), last %s\n", task, (long long)done,
                (long long)total, (int)(done * 100 / total), item);
    }
    fflush(stderr);
}

/* the outputs of a forward as one float array (caller frees) */
static float *probe(peft_base_model *b, peft_model *m, const peft_model_inputs *in, int64_t *n, char *err, size_t len)
{
    peft_rng rng;
    peft_rng_seed(&rng, 0);
    peft_graph *g = peft_graph_new(&rng);
    peft_model_outputs o;
    int rc = m ? peft_model_forward(m, g, in, &o) : peft_base_model_forward(b, g, in, &o);
    if (rc) snprintf(err, len, "%s", m ? peft_errmsg(peft_model_ctx(m)) : peft_graph_error(g));
    float *out = NULL;
    if (!rc) {
        peft_tensor *ts[4] = {o.logits, o.start_logits, o.end_logits, o.last_hidden_state};
        int64_t total = 0;
        for (int k = 0; k < 4; k++) total += ts[k] ? ts[k]->numel : 0;
        out = malloc((size_t)(total + 1) * sizeof *out);
        float *p = out;
        for (int k = 0; out && k < 4; k++)
            if (ts[k]) {
                memcpy(p, ts[k]->data, (size_t)ts[k]->numel * sizeof *p);
                p += ts[k]->numel;
            }
        *n = total;
    }
    peft_graph_free(g);
    return out;
}

/* the probe batch when none is given: 2 x 16 seeded random tokens (and a decoder prompt for
 * seq2seq models) */
static void random_probe(const peft_base_model *base, peft_inputs *in)
{
    int64_t vocab = peft_base_model_vocab_size(base) ? peft_base_model_vocab_size(base) : 2;
    in->B = 2;
    in->T = 16;
    in->input_ids = malloc(32 * sizeof *in->input_ids);
    peft_rng r;
    peft_rng_seed(&r, 1234);
    for (int i = 0; in->input_ids && i < 32; i++) in->input_ids[i] = (int32_t)(peft_rng_next(&r) % (uint64_t)vocab);
    if (peft_base_model_is_encoder_decoder(base) && in->input_ids) { /* a decoder prompt for seq2seq models */
        in->Td = 4;
        in->decoder_input_ids = calloc(8, sizeof *in->decoder_input_ids);
    }
}

/* max |a - b| over n values (NaN wins) */
static double max_abs_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

int cmd_merge(int argc, char **argv)
{
    const char *model = NULL, *output = NULL, *probe_path = NULL, *dtype_name = NULL;
    char *adapters[CLI_MAX_ADAPTERS];
    int n_adapters = 0, safe = 1, mixed = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if ((v = cli_opt(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_opt(argc, argv, &i, "--output"))) output = v;
        else if ((v = cli_opt(argc, argv, &i, "--probe"))) probe_path = v;
        else if ((v = cli_opt(argc, argv, &i, "--dtype"))) dtype_name = v;
        else if ((v = cli_opt(argc, argv, &i, "--adapter"))) {
            if (n_adapters == CLI_MAX_ADAPTERS) return cli_fail("at most %d adapters", CLI_MAX_ADAPTERS);
            adapters[n_adapters++] = (char *)v;
        } else if (!strcmp(argv[i], "--unsafe")) safe = 0;
        else if (!strcmp(argv[i], "--mixed")) mixed = 1;
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!model || !output || n_adapters == 0) {
        fputs(HELP, stderr);
        return cli_fail("--model, --output and at least one --adapter are required");
    }
    int32_t dtype = dtype_name ? peft_dtype_from_name(dtype_name) : -1;
    if (dtype_name && dtype < 0) return cli_fail("--dtype '%s': use f32, bf16 or f16", dtype_name);

    char err[1024] = "";
    peft_inputs in = {0};
    if (probe_path && cli_load_inputs(probe_path, &in)) return 1;
    peft_ctx *ctx = peft_ctx_new(0);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    int tty = isatty(STDERR_FILENO);
    peft_set_progress_handler(ctx, show_progress, &tty);
    peft_base_model *base = NULL, *merged = NULL;
    peft_model *m = NULL;
    float *before = NULL, *after = NULL;
    int rc = cli_open_model_mixed(ctx, model, adapters, n_adapters, 0, mixed, &base, &m);
    if (rc) goto out;
    base = peft_get_base_model(m);
    if (dtype < 0) {
        const peft_tensor *p0 = peft_base_model_param(base, 0, NULL);
        dtype = p0 ? p0->dtype : PEFT_DTYPE_F32;
    }
    if (!probe_path) random_probe(base, &in);
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    mi.labels = NULL; /* outputs only */
    int64_t n1 = 0, n2 = 0;
    before = probe(NULL, m, &mi, &n1, err, sizeof err);
    if (!before) { rc = cli_fail("probe forward: %s", err); goto out; }
    int n_merged = 0;
    for (int k = 0; k < peft_adapter_count(m); k++) n_merged += peft_adapter_active(m, k);
    if (peft_merge_and_unload(m, safe, NULL, 0, &merged)) { rc = cli_fail("%s", peft_errmsg(ctx)); goto out; }
    m = NULL;
    after = probe(merged, NULL, &mi, &n2, err, sizeof err);
    if (!after || n1 != n2) { rc = cli_fail("probe forward after merging: %s", err); goto out; }
    double worst = max_abs_diff(before, after, n1);
    printf("merged %d adapter%s into %s; largest |merged - unmerged| on the probe batch: %.3g\n",
           n_merged, n_merged == 1 ? "" : "s", model, worst);
    if (peft_base_model_save(ctx, merged, output, dtype)) { rc = cli_fail("%s", peft_errmsg(ctx)); goto out; }
    printf("wrote %s/config.json and %s/model.safetensors (%s)\n", output, output,
           dtype == PEFT_DTYPE_BF16 ? "bf16" : dtype == PEFT_DTYPE_F16 ? "f16" : "f32");
out:
    free(before);
    free(after);
    if (m) peft_model_free(m);
    else if (merged) peft_base_model_free(merged);
    peft_ctx_free(ctx);
    peft_inputs_free(&in);
    return rc;
}

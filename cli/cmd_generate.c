/* cmd_generate.c — `peft generate`: greedy or sampled generation with the KV cache for causal
 * and seq2seq LMs (core/generate.h), the generated ids written as JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "peft/tokenizer.h"
#include "cli.h"
#include "cli/gen_text.h"
#include "peft/generate.h"
#include "peft/util.h"

static const char *HELP =
    "usage: peft generate --model DIR [--adapter DIR[:NAME]]... --input IN.json --output OUT.json\n"
    "       peft generate --model DIR [--adapter ...] --text \"PROMPT\"... [--tokenizer PATH] [--output OUT.json]\n"
    "                     [--max-new-tokens N] [--do-sample [--temperature T] [--top-k K]\n"
    "                     [--top-p P] [--seed S]] [--eos ID[,ID...]] [--pad ID] [--no-cache]\n"
    "                     [--row-adapters NAME,__base__,NAME...] [--task-ids ID[,ID...]]\n\n"
    "IN.json holds input_ids (and optionally attention_mask) as nested lists; decoder-only\n"
    "batches are padded on the left (positions follow the mask, as transformers). For T5 they\n"
    "are the encoder input and decoding starts from decoder_start_token_id.\n"
    "OUT.json gets, per row: \"generated_ids\" (the new tokens; rows that hit EOS early are\n"
    "padded with pad_token_id, or the EOS id when the model has none), \"sequences\" (HF's\n"
    "output: input_ids + new tokens, or T5's decoder_start_token_id + new tokens) and\n"
    "\"num_generated\" (tokens up to and including EOS).\n"
    "--max-new-tokens: default 20. Greedy unless --do-sample (defaults: temperature 1, top-k 50,\n"
    "top-p 1, seed 0; top-k 0 turns it off). EOS and pad ids come from the model directory's\n"
    "generation_config.json (else config.json); --eos / --pad override them (--eos none: never\n"
    "stop early). --no-cache runs a full forward per token (slower; same tokens).\n"
    "--row-adapters gives one adapter name per batch row (__base__: none), in one pass.\n"
    "--task-ids: each row's task for a multitask prompt tuning adapter (one id per row, or one\n"
    "for every row; PEFT's generate(task_ids=...)); IN.json's \"task_ids\" list does the same.\n"
    "--text (or --prompt), repeatable: plain text prompts, one batch row each, encoded with the\n"
    "model's tokenizer.json (or --tokenizer PATH) with its special tokens; the new tokens are\n"
    "printed decoded (special tokens skipped), one row per line. No chat template is applied.\n";

/* strict number parsing: 0, or 1 after printing what was expected */
static int parse_ll(const char *opt, const char *v, long long lo, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo)
        return cli_fail("%s: expected an integer >= %lld, got '%s'", opt, lo, v);
    *out = x;
    return 0;
}

static int parse_double(const char *opt, const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) return cli_fail("%s: expected a number, got '%s'", opt, v);
    *out = x;
    return 0;
}

/* "--task-ids 1,0,...": one task per batch row, or one for every row, into ids (B values,
 * malloc'd: the caller frees it). 0, or 1 after printing what was expected */
static int parse_task_ids(const char *v, int64_t B, int32_t **ids)
{
    *ids = NULL;
    size_t len = strlen(v);
    char *buf = malloc(len + 1);
    const char **parts = calloc(len / 2 + 2, sizeof *parts);
    int32_t *out = calloc((size_t)(B > 0 ? B : 1), sizeof *out);
    if (!buf || !parts || !out) {
        free(buf);
        free(parts);
        free(out);
        return cli_fail("out of memory");
    }
    memcpy(buf, v, len + 1);
    const int n = cli_split_names(buf, parts, (int)(len / 2 + 2));
    int rc = 0;
    if (n != 1 && n != B)
        rc = cli_fail("--task-ids: %d task ids for a batch of %lld rows (give one per row, or "
                      "one for every row)", n, (long long)B);
    for (int64_t b = 0; !rc && b < B; b++) {
        long long x = 0;
        if (parse_ll("--task-ids", parts[n == 1 ? 0 : b], 0, &x)) rc = 1;
        else if (x > INT32_MAX) rc = cli_fail("--task-ids: task id %lld is too large", x);
        else out[b] = (int32_t)x;
    }
    free(buf);
    free(parts);
    if (rc) free(out);
    else *ids = out;
    return rc;
}

/* "--eos 2,7" / "--eos none" into cfg */
static int parse_eos(const char *v, peft_gen_config *cfg)
{
    if (!strcmp(v, "none")) {
        cfg->n_eos = 0;
        return 0;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", v);
    const char *ids[PEFT_GEN_MAX_EOS + 1];
    int n = cli_split_names(buf, ids, PEFT_GEN_MAX_EOS + 1);
    if (n < 1 || n > PEFT_GEN_MAX_EOS)
        return cli_fail("--eos: expected 1 to %d token ids separated by commas, or none, got '%s'",
                        PEFT_GEN_MAX_EOS, v);
    for (int i = 0; i < n; i++) {
        long long x = 0;
        if (parse_ll("--eos", ids[i], 0, &x)) return 1;
        if (x > INT32_MAX) return cli_fail("--eos: token id %lld is too large", x);
        cfg->eos_token_id[i] = (int32_t)x;
    }
    cfg->n_eos = n;
    return 0;
}

static json_t *rows_json(const int32_t *a, int64_t B, int64_t n)
{
    json_t *rows = json_array();
    for (int64_t b = 0; rows && b < B; b++) {
        json_t *r = json_array();
        for (int64_t t = 0; r && t < n; t++) json_array_append_new(r, json_integer(a[b * n + t]));
        json_array_append_new(rows, r);
    }
    return rows;
}

/* OUT.json, written to a temporary name then renamed */
static int write_output(const char *path, const peft_inputs *in, const peft_gen_output *o,
                        int encoder_decoder)
{
    const int64_t B = o->B, n = o->n_new;
    const int64_t lead = encoder_decoder ? 1 : in->T;
    int32_t *seq = malloc((size_t)(B * (lead + n) + 1) * sizeof *seq);
    json_t *root = json_object(), *lens = json_array();
    if (!seq || !root || !lens) {
        free(seq);
        json_decref(root);
        json_decref(lens);
        return cli_fail("out of memory");
    }
    for (int64_t b = 0; b < B; b++) {
        int32_t *row = seq + b * (lead + n);
        if (encoder_decoder) row[0] = o->decoder_start_token_id;
        else memcpy(row, in->input_ids + b * in->T, (size_t)in->T * sizeof *row);
        memcpy(row + lead, o->tokens + b * n, (size_t)n * sizeof *row);
        json_array_append_new(lens, json_integer(o->lengths[b]));
    }
    json_object_set_new(root, "generated_ids", rows_json(o->tokens, B, n));
    json_object_set_new(root, "sequences", rows_json(seq, B, lead + n));
    json_object_set_new(root, "num_generated", lens);
    free(seq);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) return cli_fail("out of memory");
    peft_ctx *ctx = peft_ctx_new(0);
    int rc = ctx ? peft_write_file_atomic(ctx, path, text, strlen(text)) : PEFT_ENOMEM;
    free(text);
    if (rc) cli_fail("%s", ctx ? peft_errmsg(ctx) : "out of memory");
    peft_ctx_free(ctx);
    return rc ? 1 : 0;
}

/* the command line */
typedef struct gen_args {
    const char *model, *input, *output, *row_spec, *task_spec, *tok_path;
    char *adapters[CLI_MAX_ADAPTERS];
    int n_adapters, n_texts;
    const char *texts[GEN_TEXT_MAX];
    peft_gen_config cfg;
} gen_args;

/* reads and checks the options into a. -1: go on; else the exit status (0 after --help) */
static int parse_args(int argc, char **argv, gen_args *a)
{
    memset(a, 0, sizeof *a);
    peft_gen_config_init(&a->cfg);
    peft_gen_config *const c = &a->cfg;
    int sampling_opts = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        long long x = 0;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if ((v = cli_opt(argc, argv, &i, "--model"))) a->model = v;
        else if ((v = cli_opt(argc, argv, &i, "--input"))) a->input = v;
        else if ((v = cli_opt(argc, argv, &i, "--output"))) a->output = v;
        else if ((v = cli_opt(argc, argv, &i, "--row-adapters"))) a->row_spec = v;
        else if ((v = cli_opt(argc, argv, &i, "--task-ids"))) a->task_spec = v;
        else if ((v = cli_opt(argc, argv, &i, "--text")) || (v = cli_opt(argc, argv, &i, "--prompt"))) {
            if (a->n_texts == GEN_TEXT_MAX) return cli_fail("at most %d --text prompts", GEN_TEXT_MAX);
            a->texts[a->n_texts++] = v;
        } else if ((v = cli_opt(argc, argv, &i, "--tokenizer"))) a->tok_path = v;
        else if ((v = cli_opt(argc, argv, &i, "--max-new-tokens"))) {
            if (parse_ll("--max-new-tokens", v, 1, &x)) return 1;
            c->max_new_tokens = x;
        } else if ((v = cli_opt(argc, argv, &i, "--temperature"))) {
            if (parse_double("--temperature", v, &c->temperature)) return 1;
            sampling_opts = 1;
        } else if ((v = cli_opt(argc, argv, &i, "--top-k"))) {
            if (parse_ll("--top-k", v, 0, &x)) return 1;
            c->top_k = x;
            sampling_opts = 1;
        } else if ((v = cli_opt(argc, argv, &i, "--top-p"))) {
            if (parse_double("--top-p", v, &c->top_p)) return 1;
            sampling_opts = 1;
        } else if ((v = cli_opt(argc, argv, &i, "--seed"))) {
            if (parse_ll("--seed", v, 0, &x)) return 1;
            c->seed = (uint64_t)x;
        } else if ((v = cli_opt(argc, argv, &i, "--eos"))) {
            if (parse_eos(v, c)) return 1;
        } else if ((v = cli_opt(argc, argv, &i, "--pad"))) {
            if (parse_ll("--pad", v, 0, &x)) return 1;
            if (x > INT32_MAX) return cli_fail("--pad: token id %lld is too large", x);
            c->pad_token_id = (int32_t)x;
        } else if ((v = cli_opt(argc, argv, &i, "--adapter"))) {
            if (a->n_adapters == CLI_MAX_ADAPTERS) return cli_fail("at most %d adapters", CLI_MAX_ADAPTERS);
            a->adapters[a->n_adapters++] = (char *)v;
        } else if (!strcmp(argv[i], "--do-sample")) c->do_sample = 1;
        else if (!strcmp(argv[i], "--no-cache")) c->use_cache = 0;
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!a->model || (!a->input && !a->n_texts) || (a->input && a->n_texts) || (a->input && !a->output)) {
        fputs(HELP, stderr);
        return cli_fail("--model and either --input with --output, or --text, are required");
    }
    if (sampling_opts && !c->do_sample)
        fprintf(stderr, "peft: warning: --temperature, --top-k and --top-p only apply with "
                        "--do-sample; greedy decoding ignores them (as transformers)\n");
    return -1;
}

int cmd_generate(int argc, char **argv)
{
    gen_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    const char *model = a.model, *input = a.input, *output = a.output, *row_spec = a.row_spec,
               *task_spec = a.task_spec;
    peft_gen_config cfg = a.cfg;
    peft_inputs in;
    peft_tokenizer *tk = NULL;
    if (a.n_texts) {
        if (gen_text_inputs(a.tok_path ? a.tok_path : model, a.texts, a.n_texts, &in, &tk)) return 1;
    } else if (cli_load_inputs(input, &in)) return 1;
    peft_ctx *ctx = peft_ctx_new(cfg.seed);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *base = NULL;
    peft_model *m = NULL;
    peft_gen_output o = {0};
    int32_t *task_ids = NULL;
    rc = cli_open_model(ctx, model, a.adapters, a.n_adapters, 0, &base, &m);
    if (rc) goto out;
    char rows_buf[8192];
    const char *row_names[1024];
    if (row_spec && (rc = cli_row_adapters(row_spec, rows_buf, sizeof rows_buf, row_names, 1024, in.B,
                                           m != NULL)))
        goto out;
    if (task_spec && in.task_ids) {
        rc = cli_fail("--task-ids and the input file's \"task_ids\" both give the rows' tasks: "
                      "keep one");
        goto out;
    }
    if (task_spec && parse_task_ids(task_spec, in.B, &task_ids)) {
        rc = 1;
        goto out;
    }
    peft_model_inputs mi = {0};
    mi.B = in.B;
    mi.T = in.T;
    mi.input_ids = in.input_ids;
    mi.attention_mask = in.attention_mask;
    mi.task_ids = task_ids ? task_ids : in.task_ids;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int grc = m ? peft_generate(m, &mi, &cfg, row_spec ? row_names : NULL, &o)
                : peft_generate_base(ctx, base, &mi, &cfg, &o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (grc) { rc = cli_fail("%s", peft_errmsg(ctx)); goto out; }
    const double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    peft_base_model *b = m ? peft_get_base_model(m) : base;
    if (output && (rc = write_output(output, &in, &o, peft_base_model_is_encoder_decoder(b)))) goto out;
    if (tk && (rc = gen_text_print(tk, &o, stdout))) goto out;
    fprintf(tk ? stderr : stdout, "generated %lld new tokens for each of %lld rows in %.3f s (%.1f tokens/s%s)\n",
           (long long)o.n_new, (long long)o.B, sec,
           sec > 0 ? (double)(o.n_new * o.B) / sec : 0.0, cfg.use_cache ? ", KV cache" : ", no cache");
out:
    free(task_ids);
    peft_gen_output_free(&o);
    if (m) peft_model_free(m);
    else peft_base_model_free(base);
    peft_ctx_free(ctx);
    peft_inputs_free(&in);
    peft_tokenizer_free(tk);
    return rc;
}

/* cmd_train.c — `peft train`: fine-tune a LoRA adapter (AdamW on the adapter only) on a token
 * file and save it in PEFT's format. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "peft/tokenizer.h"
#include "cli.h"
#include "peft/optim.h"

static const char *HELP =
    "usage: peft train --model DIR --data TOKENS.txt --output ADAPTER_DIR [options]\n\n"
    "TOKENS.txt: token ids separated by white space (one document per line is customary).\n"
    "Windows of --seq tokens are drawn at random from the first 90%% of the tokens; the last\n"
    "10%% are held out for the evaluation loss.\n\n"
    "options (defaults in brackets):\n"
    "  --config FILE        adapter_config.json to use instead of the flags below\n"
    "  --r N [8]  --alpha A [16]  --dropout P [0.05]  --targets a,b,... [model default]\n"
    "  --steps N [200]  --batch B [8]  --seq T [32]  --lr LR [3e-3]  --warmup N [10]\n"
    "  --weight-decay W [0.0]  --clip NORM [1.0]  --seed S [0]  --eval-every N [50]\n"
    "  --gradient-checkpointing  prepare_model_for_kbit_training: checkpointed layers, the loss\n"
    "               over row chunks, norms f32, input embeddings require grad\n"
    CLI_LOAD_HELP;

typedef struct tokens {
    int32_t *ids;
    int64_t n;
} tokens;

static int read_tokens(const char *path, tokens *t)
{
    FILE *f = fopen(path, "r");
    if (!f) return cli_fail("%s: cannot open", path);
    int64_t cap = 4096;
    t->ids = malloc((size_t)cap * sizeof *t->ids);
    t->n = 0;
    if (!t->ids) { fclose(f); return cli_fail("out of memory"); }
    long long v;
    int c;
    while ((c = fscanf(f, "%lld", &v)) == 1) {
        if (v < 0 || v > INT32_MAX) { fclose(f); return cli_fail("%s: token %lld is out of range", path, v); }
        if (t->n == cap) {
            int32_t *p = realloc(t->ids, (size_t)(cap *= 2) * sizeof *t->ids);
            if (!p) { fclose(f); return cli_fail("%s: out of memory at %lld tokens", path, (long long)t->n); }
            t->ids = p;
        }
        t->ids[t->n++] = (int32_t)v;
    }
    int bad = !feof(f);
    fclose(f);
    if (bad) return cli_fail("%s: expected only integers (token %lld is not)", path, (long long)t->n + 1);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *make_config(double r, double alpha, double dropout, const char *targets)
{
    char buf[4096], list[2048] = "null";
    if (targets) {
        size_t o = (size_t)snprintf(list, sizeof list, "[");
        char tmp[2048];
        snprintf(tmp, sizeof tmp, "%s", targets);
        int first = 1;
        for (char *s = strtok(tmp, ","); s && o < sizeof list; s = strtok(NULL, ","), first = 0)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s\"%s\"", first ? "" : ",", s);
        if (o < sizeof list) snprintf(list + o, sizeof list - o, "]");
    }
    snprintf(buf, sizeof buf,
             "{\"peft_type\":\"LORA\",\"task_type\":\"CAUSAL_LM\",\"r\":%d,\"lora_alpha\":%g,"
             "\"lora_dropout\":%g,\"target_modules\":%s}",
             (int)r, alpha, dropout, list);
    return strdup(buf);
}

/* mean loss over eval windows (no tape) */
static double eval_loss(peft_model *m, peft_graph *g, const tokens *tk, int64_t from, int64_t to,
                        int B, int T, int32_t *ids)
{
    double sum = 0;
    int n = 0;
    peft_model_train(m, 0);
    for (int64_t off = from; off + T <= to && n < 16; off += (int64_t)B * T) {
        int b = 0;
        for (; b < B && off + (int64_t)(b + 1) * T <= to; b++)
            memcpy(ids + (size_t)b * T, tk->ids + off + (int64_t)b * T, (size_t)T * sizeof *ids);
        if (b == 0) break;
        peft_graph_reset(g);
        peft_graph_set_recording(g, 0);
        peft_model_inputs in = {.B = b, .T = T, .input_ids = ids, .labels = ids};
        peft_model_outputs out;
        if (peft_model_forward(m, g, &in, &out)) return NAN;
        sum += peft_f32(out.loss)[0];
        n++;
    }
    return n ? sum / n : NAN;
}

/* the command line (defaults in HELP) */
typedef struct train_opts {
    const char *model, *data, *output, *config, *targets;
    double r, alpha, dropout, lr, wd, clip;
    long steps, B, T, warmup, eval_every;
    unsigned long long seed;
    int grad_ckpt;
} train_opts;

/* reads and checks the options. -1: go on; else the exit status (0 after --help) */
static int parse_args(int argc, char **argv, train_opts *o)
{
    *o = (train_opts){.r = 8, .alpha = 16, .dropout = 0.05, .lr = 3e-3, .wd = 0.0, .clip = 1.0,
                      .steps = 200, .B = 8, .T = 32, .warmup = 10, .eval_every = 50};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if (cli_load_opt(argc, argv, &i)) continue;
        else if (!strcmp(argv[i], "--gradient-checkpointing")) o->grad_ckpt = 1;
        else if ((v = cli_opt(argc, argv, &i, "--model"))) o->model = v;
        else if ((v = cli_opt(argc, argv, &i, "--data"))) o->data = v;
        else if ((v = cli_opt(argc, argv, &i, "--output"))) o->output = v;
        else if ((v = cli_opt(argc, argv, &i, "--config"))) o->config = v;
        else if ((v = cli_opt(argc, argv, &i, "--targets"))) o->targets = v;
        else if ((v = cli_opt(argc, argv, &i, "--r"))) o->r = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--alpha"))) o->alpha = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--dropout"))) o->dropout = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--lr"))) o->lr = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--weight-decay"))) o->wd = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--clip"))) o->clip = atof(v);
        else if ((v = cli_opt(argc, argv, &i, "--steps"))) o->steps = atol(v);
        else if ((v = cli_opt(argc, argv, &i, "--batch"))) o->B = atol(v);
        else if ((v = cli_opt(argc, argv, &i, "--seq"))) o->T = atol(v);
        else if ((v = cli_opt(argc, argv, &i, "--warmup"))) o->warmup = atol(v);
        else if ((v = cli_opt(argc, argv, &i, "--eval-every"))) o->eval_every = atol(v);
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) o->seed = strtoull(v, NULL, 10);
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!o->model || !o->data || !o->output) { fputs(HELP, stderr); return cli_fail("--model, --data and --output are required"); }
    if (o->steps < 1 || o->B < 1 || o->B > 65536 || o->T < 2 || o->T > 65536 || o->B * o->T > (1L << 24) ||
        !(o->lr > 0) || o->eval_every < 1 || o->warmup < 0 || !(o->clip >= 0) || o->dropout < 0 ||
        o->dropout >= 1)
        return cli_fail("need --steps >= 1, 1 <= --batch <= 65536, 2 <= --seq <= 65536, batch x seq <= "
                        "16M tokens, --lr > 0, --eval-every >= 1, --warmup >= 0, --clip >= 0, "
                        "0 <= --dropout < 1");
    return -1;
}

/* the updates: random windows from the first `split` tokens, linear warm-up then decay, the
 * evaluation loss every eval_every steps and at the end; a progress bar on a terminal. 0, or 1
 * with the error printed */
static int train_loop(const train_opts *o, peft_ctx *ctx, peft_model *m, peft_adamw *opt, peft_graph *g,
                      const tokens *tk, int64_t split, int32_t *ids)
{
    const long B = o->B, T = o->T, steps = o->steps, warmup = o->warmup;
    const double lr = o->lr;
    int tty = isatty(STDERR_FILENO);
    double t0 = now_s(), last_loss = NAN;
    for (long step = 1; step <= steps; step++) {
        for (long b = 0; b < B; b++) {
            int64_t off = (int64_t)(peft_rng_uniform(peft_ctx_rng(ctx)) * (double)(split - T));
            memcpy(ids + b * T, tk->ids + off, (size_t)T * sizeof *ids);
        }
        double cur_lr = step <= warmup ? lr * step / (double)warmup
                                       : lr * (double)(steps - step + 1) / (double)(steps - warmup + 1);
        peft_model_train(m, 1);
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        peft_model_inputs in = {.B = B, .T = T, .input_ids = ids, .labels = ids};
        peft_model_outputs out;
        if (peft_model_forward(m, g, &in, &out)) return cli_fail("%s", peft_errmsg(ctx));
        last_loss = peft_f32(out.loss)[0];
        if (!isfinite(last_loss)) return cli_fail("step %ld: the loss is %g; try a smaller --lr", step, last_loss);
        if (peft_graph_backward(g, out.loss)) return cli_fail("step %ld: %s", step, peft_graph_error(g));
        peft_adamw_clip_grad_norm(opt, o->clip);
        peft_adamw_update(opt, cur_lr);
        if (peft_model_step_end(m, step - 1, steps)) return cli_fail("%s", peft_errmsg(ctx));
        peft_adamw_zero_grad(opt);
        double el = now_s() - t0;
        if (tty) {
            int w = 30, done = (int)(w * step / steps);
            fprintf(stderr, "\r[%.*s%*s] %ld/%ld loss %.4f  %.0f tok/s", done,
                    "##############################", w - done, "", step, steps, last_loss,
                    (double)step * B * T / el);
            if (step == steps) fputc('\n', stderr);
        }
        if (step % o->eval_every == 0 || step == steps) {
            double ev = eval_loss(m, g, tk, split, tk->n, (int)B, (int)T, ids);
            if (tty) fputc('\n', stderr);
            printf("step %ld: train loss %.4f, eval loss %.4f, lr %.2e, %.0f tokens/s\n", step,
                   last_loss, ev, cur_lr, (double)step * B * T / el);
            fflush(stdout);
        }
    }
    return 0;
}

int cmd_train(int argc, char **argv)
{
    train_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    const long B = o.B, T = o.T;
    tokens tk = {0};
    if (read_tokens(o.data, &tk)) { free(tk.ids); return 1; }
    int64_t split = tk.n * 9 / 10;
    if (split < T + 1 || tk.n - split < T) {
        free(tk.ids);
        return cli_fail("%s: %lld tokens is too few for --seq %ld (need >= %ld)", o.data, (long long)tk.n, T, 10 * (T + 1));
    }
    char *cfg_text = o.config ? cli_read_text(o.config) : make_config(o.r, o.alpha, o.dropout, o.targets);
    if (!cfg_text) { free(tk.ids); return 1; }

    rc = 1;
    peft_ctx *ctx = peft_ctx_new(o.seed);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *base = NULL;
    peft_model *m = NULL;
    peft_adamw *opt = NULL;
    peft_graph *g = NULL;
    int32_t *ids = malloc((size_t)(B * T) * sizeof *ids);
    if (!ids) { cli_fail("out of memory for a %ld x %ld batch", B, T); goto out; }
    if (cli_load_base(ctx, o.model, &base)) goto out;
    if (o.grad_ckpt && peft_prepare_model_for_kbit_training(ctx, base, 1)) { cli_fail("%s", peft_errmsg(ctx)); goto out; }
    if (peft_get_peft_model(ctx, base, cfg_text, "default", 0, &m)) {
        if (o.config) cli_fail("%s: %s", o.config, peft_errmsg(ctx));
        else cli_fail("%s", peft_errmsg(ctx));
        peft_base_model_free(base);
        goto out;
    }
    peft_print_trainable_parameters(m, stdout);
    peft_adamw_config oc = {o.lr, 0.9, 0.999, 1e-8, o.wd};
    opt = peft_adamw_new(m, &oc);
    if (!opt) { cli_fail("%s", peft_errmsg(ctx)); goto out; }
    g = peft_graph_new(peft_ctx_rng(ctx));
    double e0 = eval_loss(m, g, &tk, split, tk.n, (int)B, (int)T, ids);
    printf("step 0: eval loss %.4f\n", e0);
    fflush(stdout);
    if (train_loop(&o, ctx, m, opt, g, &tk, split, ids)) goto out;
    if (peft_save_pretrained(m, o.output, NULL, 0, 1)) { cli_fail("%s", peft_errmsg(ctx)); goto out; }
    printf("saved the adapter to %s (adapter_config.json, adapter_model.safetensors)\n", o.output);
    rc = 0;
out:
    peft_graph_free(g);
    peft_adamw_free(opt);
    peft_model_free(m);
    peft_ctx_free(ctx);
    free(ids);
    free(cfg_text);
    free(tk.ids);
    return rc;
}

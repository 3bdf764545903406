/* test_runner.c — the experiment runner (`peft run`): configuration errors with file:line:col
 * (typos with "did you mean", wrong types, unknown plugins and fields, plugin-refused values,
 * YAML syntax, data that does not fit), a two-run sweep end to end on the tiny LLaMA fixture,
 * resume after a SIGKILL and after a stop request giving the same adapter bytes as an
 * uninterrupted run (finished runs kept), and the optimizer extensions (schedules, state
 * save/load, explicit parameter lists). */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "peft/optim.h"
#include "peft/util.h"
#include "runner/runner.h"
#include "peft/safetensors.h"
#include "testutil.h"
#include "world.h"

static char *tmp;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(tmp); free(tmp); }

/* tmp/model (the fixture LLaMA, vocab 128), tmp/train.jsonl, tmp/eval.jsonl: sequences that
 * count up by a step, loss on the second half */
static void make_world(void)
{
    tu_world_llama(tmp);
    tu_world_counting_data(tmp);
}

static const char *BASE_YAML =
    "name: tiny\n"
    "base_model: model\n"
    "task: causal_lm\n"
    "metric: exact_match\n"
    "seed: 3\n"
    "data:\n"
    "  train: train.jsonl\n"
    "  eval: eval.jsonl\n"
    "training:\n"
    "  steps: 6\n"
    "  batch_size: 4\n"
    "  learning_rate: 0.01\n"
    "  eval_steps: 3\n"
    "experiments:\n"
    "  - name: lora\n"
    "    adapters:\n"
    "      - method: lora\n"
    "        r: 4\n"
    "        target_modules: [q_proj, v_proj]\n";

static char *write_yaml(const char *name, const char *text) { return tu_world_write(tmp, name, text); }

/* BASE_YAML with the line containing `from` replaced by `to` (to may span lines) */
static char *variant(const char *from, const char *to)
{
    static char buf[8192];
    const char *at = strstr(BASE_YAML, from);
    ck_assert_msg(at, "'%s' not in the base YAML", from);
    const char *ls = at, *le = strchr(at, '\n');
    while (ls > BASE_YAML && ls[-1] != '\n') ls--;
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(ls - BASE_YAML), BASE_YAML, to, le);
    return buf;
}

/* loads (and checks unless load_only) yaml text; returns the error message ("" if none) */
static const char *config_error(const char *text, int load_only)
{
    static char err[4096];
    err[0] = 0;
    char *path = write_yaml("t.yaml", text);
    runner_config *c = NULL;
    if (runner_config_load(path, NULL, &c, err, sizeof err) == 0) {
        if (!load_only) runner_check(c, err, sizeof err);
        runner_config_free(c);
    }
    free(path);
    return err;
}

static void expect_error(const char *text, const char *where, const char *what)
{
    const char *e = config_error(text, 0);
    char want[256];
    snprintf(want, sizeof want, "%s/t.yaml:%s: ", tmp, where);
    ck_assert_msg(strstr(e, want) == e, "expected the error at %s, got: %s", where, e);
    ck_assert_msg(strstr(e, what), "expected '%s' in: %s", what, e);
}

START_TEST(test_valid_and_sweep_expansion)
{
    make_world();
    ck_assert_str_eq(config_error(BASE_YAML, 0), "");
    char *path = write_yaml("s.yaml", variant("        r: 4", "        r: [2, 4]\n        lora_alpha: [8, 16, 32]"));
    char err[1024];
    runner_config *c;
    ck_assert_msg(runner_config_load(path, NULL, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c->n_runs, 6);
    ck_assert_str_eq(c->runs[0].name, "lora-r=2-lora_alpha=8");
    ck_assert_str_eq(c->runs[5].name, "lora-r=4-lora_alpha=32");
    ck_assert_int_eq(json_integer_value(json_object_get(c->runs[4].adapters[0].config, "r")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(c->runs[4].adapters[0].config, "lora_alpha")), 16);
    /* list-valued fields sweep only as lists of lists */
    ck_assert_int_eq(json_array_size(json_object_get(c->runs[0].adapters[0].config, "target_modules")), 2);
    ck_assert_int_eq(c->runs[0].seed, 3);
    ck_assert_int_eq(c->runs[0].train.eval_steps, 3);
    ck_assert_int_eq(c->runs[0].train.save_steps, 3); /* defaults to eval_steps */
    runner_config_free(c);
    free(path);
    path = write_yaml("s2.yaml", variant("        target_modules: [q_proj, v_proj]",
                                         "        target_modules: [[q_proj], [q_proj, v_proj]]\n"
                                         "    training: {learning_rate: [0.1, 0.01]}"));
    ck_assert_msg(runner_config_load(path, NULL, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c->n_runs, 4);
    /* training fields come first, then the adapters' fields; the last varies fastest */
    ck_assert_str_eq(c->runs[1].name, "lora-learning_rate=0.1-target_modules=q_proj+v_proj");
    ck_assert_str_eq(c->runs[2].name, "lora-learning_rate=0.01-target_modules=q_proj");
    ck_assert_double_eq_tol(c->runs[2].train.lr, 0.01, 1e-12);
    runner_config_free(c);
    free(path);
}
END_TEST

START_TEST(test_config_errors)
{
    make_world();
    expect_error(variant("experiments:", "experimnets:"), "14:1", "unknown key 'experimnets' in the top level (did you mean 'experiments'?)");
    expect_error(variant("  learning_rate", "  learning_rat: 0.1"), "12:3", "unknown key 'learning_rat' in training (did you mean 'learning_rate'?)");
    expect_error(variant("  steps: 6", "  steps: many"), "10:10", "training.steps must be an integer, not a string 'many'");
    expect_error(variant("  steps: 6", "  steps: 2.5"), "10:10", "training.steps must be an integer");
    expect_error(variant("  learning_rate", "  learning_rate: fast"), "12:18", "training.learning_rate must be a number");
    expect_error(variant("task:", "task: causal"), "3:7", "unknown task 'causal' (did you mean 'causal_lm'?)");
    expect_error(variant("      - method: lora", "      - method: lorra"), "17:17", "unknown plugin 'lorra' (did you mean 'lora'?)");
    expect_error(variant("      - method: lora", "      - method: no_such_method"), "17:17", "unknown plugin 'no_such_method'");
    expect_error(variant("        r: 4", "        lora_alpah: 16"), "18:9", "unknown field 'lora_alpah' for lora (did you mean 'lora_alpha'?)");
    expect_error(variant("        r: 4", "        r: -4"), "18:12", "adapter 'default' (lora)");
    expect_error(variant("        r: 4", "        r: 4\n        peft_type: LORA"), "19:9", "'peft_type' is set by the runner");
    expect_error(variant("  eval: eval.jsonl", "  eval: nowhere.jsonl"), "8:9", "nowhere.jsonl: cannot open");
    expect_error(variant("base_model: model", "base_model: nomodel"), "2:13", "config.json: no such file");
    expect_error(variant("  steps: 6", "  steps: 6\n  warmup_steps: 9"), "16:5", "warmup_steps (9) exceeds steps (6)");
    expect_error(variant("seed: 3", "seed: 3\nseed: 4"), "6:1", "duplicate key 'seed' (first at line 5)");
    expect_error(variant("  batch_size: 4", "  batch_size: [4"), "12:16", "did not find expected ',' or ']'");
    expect_error(variant("    adapters:", "    adapter:"), "16:5", "unknown key 'adapter' in an experiment (did you mean 'adapters'?)");
    expect_error(variant("        r: 4", "        r: []"), "18:12", "sweeps over an empty list");
    expect_error(variant("  eval_steps: 3", "  eval_on_start: maybe"), "13:18",
                 "training.eval_on_start must be true or false, not a string 'maybe'");
    /* data that does not fit the model: an id beyond the vocabulary (128) */
    char p[1024];
    snprintf(p, sizeof p, "%s/bad.jsonl", tmp);
    const char *bad = "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, 500]}\n";
    ck_assert(tu_write_file(p, bad, strlen(bad)) == 0);
    const char *e = config_error(variant("  train: train.jsonl", "  train: bad.jsonl"), 0);
    ck_assert_msg(strstr(e, "t.yaml:7:10: ") && strstr(e, "bad.jsonl:2: 'input_ids': entry 1 is out of range"), "%s", e);
    /* nothing was created by a failed check */
    snprintf(p, sizeof p, "%s/runs", tmp);
    ck_assert(access(p, F_OK) != 0);
}
END_TEST

static runner_config *load(const char *yaml, const char *out)
{
    char err[2048];
    runner_config *c;
    char *path = write_yaml("run.yaml", yaml);
    ck_assert_msg(runner_config_load(path, out, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(runner_check(c, err, sizeof err) == 0, "%s", err);
    free(path);
    return c;
}

/* training.eval_on_start: false (transformers' eval_on_start): no evaluation before the first
 * update, neither of the base model (no baseline: base_metric null, "-" in the summary) nor of
 * the adapters as initialised (the curves start at the first eval_steps); the same training */
START_TEST(test_eval_on_start_off)
{
    make_world();
    char out[2][1024], p[1200], err[2048];
    double final_loss[2];
    for (int k = 0; k < 2; k++) {
        snprintf(out[k], sizeof out[k], "%s/eos%d", tmp, k);
        runner_config *c = load(k ? variant("  eval_steps: 3", "  eval_steps: 3\n  eval_on_start: false") : BASE_YAML,
                                out[k]);
        ck_assert_int_eq(c->runs[0].train.eval_on_start, !k);
        runner_opts o = {0};
        ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
        runner_config_free(c);
        snprintf(p, sizeof p, "%s/lora/results.json", out[k]);
        json_error_t je;
        json_t *j = json_load_file(p, 0, &je);
        ck_assert(j);
        json_t *el = json_object_get(j, "eval_loss");
        ck_assert_int_eq(json_array_size(el), k ? 2 : 3); /* steps 3, 6 (and 0 when on) */
        ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(el, 0), 0)), k ? 3 : 0);
        ck_assert(k ? json_is_null(json_object_get(j, "base_metric")) : json_is_number(json_object_get(j, "base_metric")));
        json_t *eos = json_object_get(json_object_get(json_object_get(j, "config"), "training"), "eval_on_start");
        ck_assert(k ? json_is_false(eos) : eos == NULL); /* recorded only when off */
        final_loss[k] = json_number_value(json_object_get(json_object_get(j, "final"), "eval_loss"));
        json_decref(j);
    }
    ck_assert(final_loss[0] == final_loss[1]); /* evaluating changes nothing in the training */
    snprintf(p, sizeof p, "%s/summary.md", out[1]);
    char *md = tu_read_file(p, NULL);
    ck_assert_msg(strstr(md, "Base model without adapters: exact_match -."), "%s", md);
    free(md);
}
END_TEST

START_TEST(test_sweep_end_to_end)
{
    make_world();
    char out[1024], p[1200], err[2048];
    snprintf(out, sizeof out, "%s/out", tmp);
    runner_config *c = load(variant("        r: 4", "        r: [2, 4]"), out);
    ck_assert_int_eq(c->n_runs, 2);
    runner_opts o = {0};
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 2; i++) {
        const char *run = i ? "lora-r=4" : "lora-r=2";
        const char *files[] = {"adapter/adapter_model.safetensors", "adapter/adapter_config.json",
                               "best/adapter_model.safetensors", "results.json", "loss.svg"};
        for (int k = 0; k < 5; k++) {
            snprintf(p, sizeof p, "%s/%s/%s", out, run, files[k]);
            ck_assert_msg(runner_file_exists(p), "%s missing", p);
        }
        snprintf(p, sizeof p, "%s/%s/checkpoint.safetensors", out, run);
        ck_assert_msg(!runner_file_exists(p), "the checkpoint of a finished run stays");
        snprintf(p, sizeof p, "%s/%s/results.json", out, run);
        json_error_t je;
        json_t *j = json_load_file(p, 0, &je);
        ck_assert(j);
        /* r x (in + out) for q_proj (32 -> 32) and v_proj (32 -> 16) on 2 layers */
        ck_assert_int_eq(json_integer_value(json_object_get(j, "trainable_params")), (i ? 4 : 2) * ((32 + 32) + (32 + 16)) * 2);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "seed")), 3);
        ck_assert_int_eq(json_array_size(json_object_get(j, "train_loss")), 6);
        ck_assert_int_eq(json_array_size(json_object_get(j, "eval_loss")), 3); /* steps 0, 3, 6 */
        ck_assert(json_integer_value(json_object_get(j, "adapter_file_bytes")) > 0);
        ck_assert(json_is_number(json_object_get(json_object_get(j, "final"), "metric")));
        ck_assert_str_eq(json_string_value(json_object_get(j, "metric")), "exact_match");
        ck_assert_str_eq(json_string_value(json_object_get(j, "methods")), "lora");
        ck_assert(json_is_object(json_object_get(json_object_get(j, "config"), "sweep")));
        json_t *el = json_object_get(j, "eval_loss");
        ck_assert_msg(json_number_value(json_array_get(json_array_get(el, 2), 1)) <
                      json_number_value(json_array_get(json_array_get(el, 0), 1)), "no learning"); /* it learns */
        json_decref(j);
    }
    const char *batch[] = {"summary.md", "summary.csv", "loss_curves.svg", "metric_vs_params.svg"};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s", out, batch[k]);
        ck_assert_msg(runner_file_exists(p), "%s missing", p);
    }
    snprintf(p, sizeof p, "%s/summary.csv", out);
    char *csv = tu_read_file(p, NULL);
    int lines = 0;
    for (char *q = csv; *q; q++) lines += *q == '\n';
    ck_assert_int_eq(lines, 3);
    ck_assert(strstr(csv, "\"lora-r=2\",lora,"));
    free(csv);
    snprintf(p, sizeof p, "%s/loss_curves.svg", out);
    char *svg = tu_read_file(p, NULL);
    ck_assert(strstr(svg, "<svg") && strstr(svg, "<polyline") && strstr(svg, "lora-r=4 eval") && strstr(svg, "</svg>"));
    free(svg);
    /* the saved adapter loads back as a PEFT adapter */
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    snprintf(p, sizeof p, "%s/model", tmp);
    ck_assert(peft_load_base_model(ctx, p, &base) == 0);
    peft_model *m;
    snprintf(p, sizeof p, "%s/lora-r=4/adapter", out);
    ck_assert_msg(peft_from_pretrained(ctx, base, p, "default", 0, &m) == 0, "%s", peft_errmsg(ctx));
    peft_model_free(m);
    peft_ctx_free(ctx);
    /* a second call keeps both finished runs */
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);
    /* the same run names with another configuration are refused, not mixed up */
    c = load(variant("        r: 4", "        r: [2, 4]\n        lora_dropout: 0.1"), out);
    ck_assert(runner_run_all(c, &o, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "lora-r=2/results.json: this run was made with another configuration"), "%s", err);
    runner_config_free(c);
}
END_TEST

/* two experiments: "keep" (6 steps, finishes first) and "crash" (12 steps, gradient accumulation,
 * dropout, checkpoints every 5); with a kill after update 7 of "crash" */
static const char *RESUME_YAML =
    "name: resume\nbase_model: model\ntask: causal_lm\nseed: 11\n"
    "data: {train: train.jsonl, eval: eval.jsonl}\n"
    "training: {steps: 12, batch_size: 3, gradient_accumulation_steps: 2, learning_rate: 0.02,\n"
    "           lr_scheduler_type: cosine, warmup_steps: 2, weight_decay: 0.01, eval_steps: 4,\n"
    "           save_steps: 5, max_grad_norm: 0.5}\n"
    "experiments:\n"
    "  - name: keep\n    training: {steps: 6}\n"
    "    adapters: [{method: lora, r: 2, target_modules: [q_proj]}]\n"
    "  - name: crash\n"
    "    adapters:\n"
    "      - {method: lora, r: 4, lora_dropout: 0.2, target_modules: [q_proj, v_proj]}\n"
    "      - {method: loha, name: second, r: 2, target_modules: [o_proj]}\n";

static void compare_files(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    ck_assert_msg(x && y, "missing %s or %s", a, b);
    ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

static void compare_runs(const char *a, const char *b)
{
    const char *files[] = {"keep/adapter/adapter_model.safetensors", "crash/adapter/adapter_model.safetensors",
                           "crash/adapter/second/adapter_model.safetensors", "crash/best/adapter_model.safetensors"};
    for (int i = 0; i < 4; i++) {
        char pa[1200], pb[1200];
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        compare_files(pa, pb);
    }
}

/* the ABI 1.4 sites from YAML: LN tuning on PEFT's default norms, LoRA on the input embedding
 * (and lm_head), trained, saved with PEFT's keys, learning */
START_TEST(test_norm_and_embedding_methods)
{
    make_world();
    char out[1024], p[1200], err[2048];
    snprintf(out, sizeof out, "%s/out", tmp);
    runner_config *c = load(variant("  - name: lora\n",
                                    "  - name: ln\n"
                                    "    adapters:\n"
                                    "      - {method: ln_tuning}\n"
                                    "  - name: emb\n"
                                    "    adapters:\n"
                                    "      - {method: lora, r: 2, target_modules: [embed_tokens, lm_head]}\n"
                                    "  - name: lora\n"), out);
    ck_assert_int_eq(c->n_runs, 3);
    runner_opts o = {0};
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    static const struct { const char *run, *key; int64_t trainable; } want[] = {
        /* 2 layers x (input_layernorm, post_attention_layernorm) + model.norm, width 32 */
        {"ln", "base_model.model.model.norm.ln_tuning_layers.weight", 5 * 32},
        /* embed_tokens: r x (vocab 128 + 32); lm_head: r x (32 + 128) */
        {"emb", "base_model.model.model.embed_tokens.lora_embedding_A", 2 * (128 + 32) * 2},
    };
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/results.json", out, want[i].run);
        json_t *j = json_load_file(p, 0, NULL);
        ck_assert_msg(j, "%s missing", p);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "trainable_params")), want[i].trainable);
        json_t *el = json_object_get(j, "eval_loss");
        ck_assert_msg(json_number_value(json_array_get(json_array_get(el, 2), 1)) <
                      json_number_value(json_array_get(json_array_get(el, 0), 1)), "%s: no learning",
                      want[i].run);
        json_decref(j);
        snprintf(p, sizeof p, "%s/%s/adapter/adapter_model.safetensors", out, want[i].run);
        peft_st_file *f;
        ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
        ck_assert_msg(peft_st_find(f, want[i].key), "%s lacks %s", p, want[i].key);
        if (i == 1) /* PEFT's save_embedding_layers: the wrapped modules' base weights */
            ck_assert(peft_st_find(f, "base_model.model.model.embed_tokens.base_layer.weight") &&
                      peft_st_find(f, "base_model.model.lm_head.base_layer.weight"));
        peft_st_close(f);
    }
    runner_config_free(c);
}
END_TEST

/* adds "task_id": task(i) to every line i of tmp/<name>.jsonl */
static void add_task_ids(const char *name, int (*task)(int))
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s.jsonl", tmp, name);
    size_t n;
    char *d = tu_read_file(p, &n), *o = malloc(2 * n + 64), *w = o;
    ck_assert(d && o);
    int i = 0;
    for (char *line = strtok(d, "\n"); line; line = strtok(NULL, "\n"), i++) {
        size_t l = strlen(line);
        ck_assert(l > 1 && line[l - 1] == '}');
        w += sprintf(w, "%.*s, \"task_id\": %d}\n", (int)(l - 1), line, task(i));
    }
    ck_assert(tu_write_file(p, o, (size_t)(w - o)) == 0);
    free(d);
    free(o);
}

static int two_tasks(int i) { return i % 2; }
static int task_five(int i) { return i == 3 ? 5 : 0; }

/* multitask prompt tuning from YAML: the examples' task_id reach the model as task_ids; data
 * without them is task 0; a task the adapter lacks fails naming it */
START_TEST(test_mpt_task_ids)
{
    make_world();
    add_task_ids("train", two_tasks);
    add_task_ids("eval", two_tasks);
    char out[1024], p[1200], err[2048];
    snprintf(out, sizeof out, "%s/out", tmp);
    runner_config *c = load(variant("  - name: lora\n",
                                    "  - name: mpt\n"
                                    "    adapters:\n"
                                    "      - {method: mpt, num_virtual_tokens: 4, num_tasks: 2, num_ranks: 1}\n"
                                    "  - name: lora\n"), out);
    runner_opts o = {0};
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);
    snprintf(p, sizeof p, "%s/mpt/results.json", out);
    json_t *j = json_load_file(p, 0, NULL);
    ck_assert_msg(j, "%s missing", p);
    /* table 4 x 32 + cols 2 x 4 x 1 + rows 2 x 1 x 32 */
    ck_assert_int_eq(json_integer_value(json_object_get(j, "trainable_params")), 128 + 8 + 64);
    json_t *el = json_object_get(j, "eval_loss");
    ck_assert_msg(json_number_value(json_array_get(json_array_get(el, 2), 1)) <
                  json_number_value(json_array_get(json_array_get(el, 0), 1)), "mpt: no learning");
    json_decref(j);
    /* a task_id beyond num_tasks: the model's message, naming the row's task */
    make_world();
    add_task_ids("train", task_five);
    snprintf(out, sizeof out, "%s/out5", tmp);
    c = load(variant("  - name: lora\n",
                     "  - name: mpt\n"
                     "    training: {steps: 1, batch_size: 40}\n"
                     "    adapters:\n"
                     "      - {method: mpt, num_virtual_tokens: 4, num_tasks: 2}\n"
                     "  - name: lora\n"), out);
    ck_assert_int_ne(runner_run_all(c, &o, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "is 5; the adapter has num_tasks 2"), "%s", err);
    runner_config_free(c);
    /* a task_id that is no index */
    snprintf(p, sizeof p, "%s/train.jsonl", tmp);
    ck_assert(tu_write_file(p, "{\"input_ids\": [1, 2], \"task_id\": -1}\n", 36) == 0);
    ck_assert_msg(strstr(config_error(BASE_YAML, 0), "train.jsonl:1: 'task_id': expected an "
                         "integer in [0, "), "%s", config_error(BASE_YAML, 0));
}
END_TEST

START_TEST(test_resume_after_kill)
{
    make_world();
    char ref[1024], out[1024], p[1200], err[2048];
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    snprintf(out, sizeof out, "%s/killed", tmp);
    runner_opts o = {0};
    runner_config *c = load(RESUME_YAML, ref);
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);

    c = load(RESUME_YAML, out);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        runner_opts k = {.debug_kill_at = 7};
        runner_run_all(c, &k, err, sizeof err);
        _exit(3); /* not reached: killed after update 7 of "crash" */
    }
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child was not killed (status %d)", st);
    snprintf(p, sizeof p, "%s/keep/results.json", out);
    ck_assert_msg(runner_file_exists(p), "the finished run is lost");
    char *before = tu_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/crash/checkpoint.safetensors", out);
    ck_assert_msg(runner_file_exists(p), "no checkpoint of the killed run");
    snprintf(p, sizeof p, "%s/crash/results.json", out);
    ck_assert(!runner_file_exists(p));
    /* resume: "keep" is kept as it was, "crash" goes on from update 5 */
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    snprintf(p, sizeof p, "%s/keep/results.json", out);
    char *after = tu_read_file(p, NULL);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    compare_runs(ref, out);
    /* the curves are whole: 12 train points, evaluations at 0, 4, 8, 12 */
    snprintf(p, sizeof p, "%s/crash/results.json", out);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    ck_assert_int_eq(json_array_size(json_object_get(j, "train_loss")), 12);
    ck_assert_int_eq(json_array_size(json_object_get(j, "eval_loss")), 4);
    json_decref(j);
    runner_config_free(c);
}
END_TEST

START_TEST(test_resume_after_stop_request)
{
    make_world();
    char ref[1024], out[1024], err[2048];
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    snprintf(out, sizeof out, "%s/stopped", tmp);
    runner_opts o = {0};
    runner_config *c = load(RESUME_YAML, ref);
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);
    c = load(RESUME_YAML, out);
    volatile sig_atomic_t stop = 1; /* as if Ctrl-C came during the first update */
    runner_opts so = {.stop = &stop};
    int stops = 0, rc;
    while ((rc = runner_run_all(c, &so, err, sizeof err)) == RUNNER_STOPPED) stops++;
    ck_assert_msg(rc == 0, "%s", err);
    /* one update per call; the call that finishes "keep" stops before "crash" begins */
    ck_assert_int_eq(stops, (6 - 1) + 1 + (12 - 1));
    compare_runs(ref, out);
    runner_config_free(c);
}
END_TEST

/* a byte-level BPE tokenizer.json without merges (token id = byte value), as the embedded
 * default's recipe writes */
static void write_byte_tokenizer(const char *dir)
{
    json_t *vocab = json_object();
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int cp = printable ? b : 256 + n++;
        char s[4] = {0};
        if (cp < 0x80) s[0] = (char)cp;
        else s[0] = (char)(0xC0 | (cp >> 6)), s[1] = (char)(0x80 | (cp & 0x3F));
        json_object_set_new(vocab, s, json_integer(b));
    }
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                           "use_regex", 1);
    json_t *tk = json_pack("{s:s, s:n, s:n, s:[], s:n, s:O, s:O, s:O, s:{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:o, s:[]}}",
                           "version", "1.0", "truncation", "padding", "added_tokens", "normalizer",
                           "pre_tokenizer", bl, "post_processor", bl, "decoder", bl, "model", "type", "BPE",
                           "dropout", "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "",
                           "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges");
    json_decref(bl);
    char p[1024];
    ck_assert_int_eq(peft_path_join(p, sizeof p, dir, "tokenizer.json"), 0);
    ck_assert(json_dump_file(tk, p, 0) == 0);
    json_decref(tk);
}

START_TEST(test_text_data)
{
    make_world();
    char dir[1024], p[1100], err[1024];
    snprintf(dir, sizeof dir, "%s/model", tmp);
    write_byte_tokenizer(dir);
    peft_tokenizer *tk;
    ck_assert_msg(peft_tokenizer_load(dir, &tk, err, sizeof err) == 0, "%s", err);
    snprintf(p, sizeof p, "%s/text.jsonl", tmp);
    const char *lines = "{\"prompt\": \"ab>\", \"completion\": \"Z\"}\n\n{\"text\": \"hi there\"}\n";
    ck_assert(tu_write_file(p, lines, strlen(lines)) == 0);
    runner_dataset d;
    ck_assert_msg(runner_data_load(p, RUNNER_TASK_CAUSAL_LM, 64, 128, 2, tk, &d, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(d.n, 2);
    ck_assert_int_eq(d.ex[0].n, 4);
    int32_t want[4] = {'a', 'b', '>', 'Z'}, lab[4] = {-100, -100, -100, 'Z'};
    ck_assert(memcmp(d.ex[0].ids, want, sizeof want) == 0 && memcmp(d.ex[0].labels, lab, sizeof lab) == 0);
    ck_assert_int_eq(d.ex[1].n, 8);
    ck_assert_int_eq(d.ex[1].ids[2], ' ');
    ck_assert_int_eq(d.n_label_tokens, 1 + 7);
    runner_batch b;
    size_t idx[2] = {0, 1};
    ck_assert(runner_batch_make(&d, RUNNER_TASK_CAUSAL_LM, idx, 2, 0, &b) == 0);
    ck_assert_int_eq(b.T, 8);
    ck_assert_int_eq(b.mask[4], 0);
    ck_assert_int_eq(b.labels[4], -100);
    ck_assert_int_eq(b.labels[8 + 7], 'e');
    ck_assert_int_eq(b.n_tokens, 12);
    runner_batch_free(&b);
    runner_data_free(&d);
    /* errors name the file, line and key */
    const char *bad = "{\"text\": \"ok\"}\n{\"prompt\": \"x\"}\n";
    ck_assert(tu_write_file(p, bad, strlen(bad)) == 0);
    ck_assert(runner_data_load(p, RUNNER_TASK_CAUSAL_LM, 64, 128, 2, tk, &d, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "text.jsonl:2: 'completion': missing"), "%s", err);
    bad = "{\"text\": \"ok\", \"label\": 5}\n";
    ck_assert(tu_write_file(p, bad, strlen(bad)) == 0);
    ck_assert(runner_data_load(p, RUNNER_TASK_SEQ_CLS, 64, 128, 2, tk, &d, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "text.jsonl:1: 'label': expected an integer in [0, 2)"), "%s", err);
    ck_assert(runner_data_load(p, RUNNER_TASK_SEQ_CLS, 64, 128, 2, NULL, &d, err, sizeof err) != 0);
    ck_assert_msg(strstr(err, "needs a tokenizer.json"), "%s", err);
    peft_tokenizer_free(tk);
}
END_TEST

/* ---- overrides, repeated seeds, statistics, shards, data parallel ---- */

static const char *set_error(const char *const *sets, int n)
{
    static char err[4096];
    err[0] = 0;
    char *path = write_yaml("t.yaml", BASE_YAML);
    runner_config *c = NULL;
    if (runner_config_load_set(path, NULL, sets, n, &c, err, sizeof err) == 0) {
        runner_check(c, err, sizeof err);
        runner_config_free(c);
    }
    free(path);
    return err;
}

START_TEST(test_set_overrides)
{
    make_world();
    char *path = write_yaml("t.yaml", BASE_YAML), err[2048];
    const char *sets[] = {"training.steps=9", "experiments.lora.adapters.0.r=[2,4]", "training.warmup_steps=2",
                          "seeds=[1, 2]"};
    runner_config *c;
    ck_assert_msg(runner_config_load_set(path, NULL, sets, 4, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c->n_runs, 4);
    ck_assert_str_eq(c->runs[0].name, "lora-r=2-seed=1");
    ck_assert_str_eq(c->runs[3].name, "lora-r=4-seed=2");
    ck_assert_int_eq(c->runs[0].train.steps, 9);
    ck_assert_int_eq(c->runs[0].train.warmup_steps, 2);
    ck_assert_int_eq(json_integer_value(json_object_get(c->runs[2].adapters[0].config, "r")), 4);
    runner_config_free(c);
    free(path);
    /* errors name the flag; values are checked as the file's are */
    const char *e;
    const char *s1[] = {"training.steps=many"};
    e = set_error(s1, 1);
    ck_assert_msg(strstr(e, "--set training.steps=many: training.steps must be an integer, not a string 'many'") == e, "%s", e);
    const char *s2[] = {"trainig.steps=5"};
    e = set_error(s2, 1);
    ck_assert_msg(strstr(e, "--set trainig.steps=5: unknown key 'trainig' in the top level (did you mean 'training'?)") == e, "%s", e);
    const char *s3[] = {"experiments.lorra.adapters.0.r=4"};
    e = set_error(s3, 1);
    ck_assert_msg(strstr(e, "--set experiments.lorra.adapters.0.r=4: no item named 'lorra' in 'experiments' (names: lora") == e, "%s", e);
    const char *s4[] = {"experiments.0.adapters.3.r=4"};
    e = set_error(s4, 1);
    ck_assert_msg(strstr(e, "'experiments.0.adapters' has 1 item: no item 3"), "%s", e);
    const char *s5[] = {"training.steps"};
    e = set_error(s5, 1);
    ck_assert_msg(strstr(e, "--set training.steps: expected key.path=value"), "%s", e);
    const char *s6[] = {"experiments.lora.adapters.0.r=[4"};
    e = set_error(s6, 1);
    ck_assert_msg(strstr(e, "--set experiments.lora.adapters.0.r=[4: ") == e, "%s", e);
    const char *s7[] = {"experiments.lora.adapters.0.r=-3"};
    e = set_error(s7, 1);
    ck_assert_msg(strstr(e, "--set experiments.lora.adapters.0.r=-3: run 'lora', adapter 'default' (lora)") == e, "%s", e);
    const char *s8[] = {"task.x=1"};
    e = set_error(s8, 1);
    ck_assert_msg(strstr(e, "'task' is a single value, it has no 'x'"), "%s", e);
}
END_TEST

START_TEST(test_seeds_and_statistics)
{
    make_world();
    char err[2048];
    /* repeats at the top, seeds in one experiment */
    char *path = write_yaml("s.yaml", variant("seed: 3", "seed: 3\nrepeats: 2\ncompare: [lora, ia3]"));
    FILE *f = fopen(path, "a");
    fputs("  - name: ia3\n    seeds: [7, 3]\n    adapters: [{method: ia3, target_modules: [k_proj]}]\n", f);
    fclose(f);
    runner_config *c;
    ck_assert_msg(runner_config_load(path, NULL, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(c->n_runs, 4);
    ck_assert_str_eq(c->runs[0].name, "lora-seed=3");
    ck_assert_str_eq(c->runs[1].name, "lora-seed=4");
    ck_assert_str_eq(c->runs[1].group, "lora");
    ck_assert_int_eq(c->runs[1].seed, 4);
    ck_assert_str_eq(c->runs[2].name, "ia3-seed=7");
    ck_assert_int_eq(c->runs[3].seed, 3);
    ck_assert_int_eq(c->runs[3].n_repeats, 2);
    ck_assert_int_eq(c->n_compare, 1);
    runner_config_free(c);
    free(path);
    expect_error(variant("seed: 3", "seed: 3\nseeds: [1, 2]\nrepeats: 2"), "7:10", "give 'seeds' (a list) or 'repeats'");
    expect_error(variant("seed: 3", "seed: [3, 4]\nrepeats: 2"), "5:7", "'seed' is swept here and 'repeats'");
    expect_error(variant("seed: 3", "seeds: [1, 1]"), "5:12", "seed 1 is listed twice");
    expect_error(variant("seed: 3", "repeats: 2\ncompare: [lora, lorra]"), "6:17", "compare: no configuration 'lorra'");
    expect_error(variant("  steps: 6", "  steps: 6\n  data_parallel: 3"), "16:5", "batch_size (4) must be a multiple of data_parallel (3)");
    /* Student's t */
    ck_assert_double_eq_tol(runner_t_quantile(0.975, 1), 12.7062047, 1e-6);
    ck_assert_double_eq_tol(runner_t_quantile(0.975, 2), 4.30265273, 1e-7);
    ck_assert_double_eq_tol(runner_t_quantile(0.975, 10), 2.22813885, 1e-7);
    ck_assert_double_eq_tol(runner_t_quantile(0.975, 30), 2.04227246, 1e-7);
    ck_assert_double_eq_tol(runner_t_cdf(-1.5, 4) + runner_t_cdf(1.5, 4), 1.0, 1e-12);
    double x[4] = {1, 2, 3, NAN};
    runner_stat st;
    runner_stats(x, 4, &st);
    ck_assert_int_eq(st.n, 3);
    ck_assert_double_eq_tol(st.mean, 2, 1e-15);
    ck_assert_double_eq_tol(st.std, 1, 1e-15);
    ck_assert_double_eq_tol(st.ci95, 4.30265273 / sqrt(3), 1e-7);
    double a[3] = {0.5, 0.7, 0.9}, b[3] = {0.4, 0.5, 0.6};
    runner_pair pr;
    runner_paired(a, b, 3, &pr);
    ck_assert_double_eq_tol(pr.diff.mean, 0.2, 1e-12);
    ck_assert_double_eq_tol(pr.t, 0.2 / (0.1 / sqrt(3)), 1e-9);
    ck_assert_double_eq_tol(pr.p, 2 * (1 - runner_t_cdf(pr.t, 2)), 1e-12);
    ck_assert_double_eq_tol(pr.p, 1 - pr.t / sqrt(2 + pr.t * pr.t), 1e-9); /* closed form for 2 df: 0.074 */
}
END_TEST

static const char *SHARD_YAML =
    "name: shards\nbase_model: model\ntask: causal_lm\nmetric: exact_match\n"
    "data: {train: train.jsonl, eval: eval.jsonl}\n"
    "training: {steps: 3, batch_size: 4, learning_rate: 0.01, eval_steps: 3}\n"
    "repeats: 2\ncompare: [lora, ia3]\n"
    "experiments:\n"
    "  - name: lora\n    adapters: [{method: lora, r: 2, target_modules: [q_proj]}]\n"
    "  - name: ia3\n    training: {steps: 4}\n    adapters: [{method: ia3, target_modules: [k_proj]}]\n";

START_TEST(test_shards_then_summarize)
{
    make_world();
    char full[1024], sh[1024], err[2048], p[1300];
    snprintf(full, sizeof full, "%s/full", tmp);
    snprintf(sh, sizeof sh, "%s/sharded", tmp);
    runner_config *c = load(SHARD_YAML, full);
    ck_assert_int_eq(c->n_runs, 4);
    runner_opts o = {0};
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);
    /* the shares are deterministic, cover every run once, longest first to the least loaded */
    c = load(SHARD_YAML, sh);
    int shard[4];
    ck_assert(runner_shard_assign(c, 3, shard) == 0);
    ck_assert_int_eq(shard[2], 0); /* ia3-seed=0 (4 steps) first */
    ck_assert_int_eq(shard[3], 1);
    ck_assert_int_eq(shard[0], 2);
    ck_assert_int_eq(shard[1], 2);
    ck_assert_msg(runner_summarize(c, &o, err, sizeof err) != 0, "a summary of nothing");
    ck_assert_msg(strstr(err, "4 of 4 runs have no results.json yet"), "%s", err);
    for (int i = 0; i < 3; i++) {
        runner_opts so = {.shard_index = i, .shard_count = 3};
        ck_assert_msg(runner_run_all(c, &so, err, sizeof err) == 0, "%s", err);
        snprintf(p, sizeof p, "%s/summary.md", sh);
        ck_assert_msg(runner_file_exists(p) == (i == 2), "only the last shard writes the summary (shard %d)", i);
    }
    snprintf(p, sizeof p, "%s/summary.md", sh);
    unlink(p);
    ck_assert_msg(runner_summarize(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);
    char *a = tu_summary_sans_timings(full), *b = tu_summary_sans_timings(sh);
    ck_assert_msg(strstr(a, "| lora | 2 |") && strstr(a, "| lora | ia3 | 2 |"), "%s", a);
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    const char *runs[] = {"lora-seed=0", "lora-seed=1", "ia3-seed=0", "ia3-seed=1"};
    for (int i = 0; i < 4; i++) {
        char pa[1300], pb[1300];
        snprintf(pa, sizeof pa, "%s/%s/adapter/adapter_model.safetensors", full, runs[i]);
        snprintf(pb, sizeof pb, "%s/%s/adapter/adapter_model.safetensors", sh, runs[i]);
        compare_files(pa, pb);
    }
    /* results.json says where and how long */
    snprintf(p, sizeof p, "%s/ia3-seed=1/results.json", sh);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    ck_assert(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "configuration")), "ia3");
    ck_assert(json_string_length(json_object_get(j, "host")) > 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "rank")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "world_size")), 1);
    ck_assert(json_integer_value(json_object_get(j, "blas_threads")) >= 1);
    ck_assert(json_number_value(json_object_get(j, "elapsed_s")) >= json_number_value(json_object_get(j, "wall_time_s")));
    json_decref(j);
    /* the error bars of the seeds' plot */
    snprintf(p, sizeof p, "%s/metric_vs_params.svg", sh);
    char *svg = tu_read_file(p, NULL);
    ck_assert(svg && strstr(svg, "mean over seeds"));
    free(svg);
}
END_TEST

/* data parallel in one process: 4 shares of 2 examples, dropout, resumed after stop requests */
static const char *DP_YAML =
    "name: dp\nbase_model: model\ntask: causal_lm\nseed: 5\n"
    "data: {train: train.jsonl, eval: eval.jsonl}\n"
    "training: {steps: 5, batch_size: 8, gradient_accumulation_steps: 2, learning_rate: 0.01,\n"
    "           eval_steps: 5, save_steps: 2, data_parallel: 4}\n"
    "experiments:\n"
    "  - name: dp\n    adapters: [{method: lora, r: 2, lora_dropout: 0.1, target_modules: [q_proj, v_proj]}]\n";

START_TEST(test_data_parallel_one_process)
{
    make_world();
    char ref[1024], out[1024], err[2048], p[1300], q[1300];
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    snprintf(out, sizeof out, "%s/stopped", tmp);
    runner_opts o = {0};
    runner_config *c = load(DP_YAML, ref);
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);
    c = load(DP_YAML, out);
    volatile sig_atomic_t stop = 1;
    runner_opts so = {.stop = &stop};
    int stops = 0, rc;
    while ((rc = runner_run_all(c, &so, err, sizeof err)) == RUNNER_STOPPED) stops++;
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_int_eq(stops, 4);
    runner_config_free(c);
    snprintf(p, sizeof p, "%s/dp/adapter/adapter_model.safetensors", ref);
    snprintf(q, sizeof q, "%s/dp/adapter/adapter_model.safetensors", out);
    compare_files(p, q);
    snprintf(p, sizeof p, "%s/dp/results.json", ref);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    ck_assert(j);
    ck_assert_int_eq(json_array_size(json_object_get(j, "train_loss")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(json_object_get(j, "config"), "training"),
                                                        "data_parallel")), 4);
    json_t *el = json_object_get(j, "eval_loss");
    ck_assert(json_number_value(json_array_get(json_array_get(el, 1), 1)) < json_number_value(json_array_get(json_array_get(el, 0), 1)));
    json_decref(j);
}
END_TEST

/* OpenBLAS rounds a product differently with another thread count (its blocking follows the
 * partition): the same file and seed then give adapters equal to float rounding, not bytes.
 * The tolerance docs/experiments.md states: 12 updates of the embedded default's model, 1 vs 2
 * threads: every adapter value within 1e-3 of the largest (observed 6.0e-4), the final eval loss
 * within 1e-4 and the metric within 0.02 (two of the 100 examples; observed equal). Only the
 * final results are compared, so the batch skips the evaluations before the first update
 * (eval_on_start: false: 4 of its 6 evaluations of 100 examples each). */
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

static float max_tensor_diff(const char *a, const char *b, float *wmax)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    ck_assert_msg(x && y && na == nb, "%s / %s", a, b);
    uint64_t h;
    memcpy(&h, x, 8);
    ck_assert(memcmp(x, y, 8 + h) == 0); /* same keys, shapes, offsets */
    float m = 0;
    *wmax = 0;
    for (size_t o = 8 + h; o + 4 <= na; o += 4) {
        float u, v;
        memcpy(&u, x + o, 4);
        memcpy(&v, y + o, 4);
        if (fabsf(u - v) > m) m = fabsf(u - v);
        if (fabsf(u) > *wmax) *wmax = fabsf(u);
    }
    free(x);
    free(y);
    return m;
}

START_TEST(test_blas_threads_tolerance)
{
    if (!runner_file_exists("examples/base-model/model.safetensors")) {
        printf("test_blas_threads_tolerance: SKIPPED (run from the repository root)\n");
        return;
    }
    char cwd[1024], yaml[4096], out[2][1200], err[2048];
    ck_assert(getcwd(cwd, sizeof cwd));
    snprintf(yaml, sizeof yaml,
             "name: threads\nbase_model: %s/examples/base-model\ntask: causal_lm\nmetric: exact_match\n"
             "data: {train: %s/examples/data/mirror-train.jsonl, eval: %s/examples/data/mirror-eval.jsonl,\n"
             "       max_length: 32, eval_examples: 100}\n"
             "training: {steps: 12, batch_size: 16, learning_rate: 0.004, eval_steps: 12, eval_batch_size: 100,\n"
             "           eval_on_start: false}\n"
             "experiments:\n  - name: lora\n    adapters: [{method: lora, r: 8, target_modules: [q_proj, v_proj]}]\n"
             "  - name: loha\n    adapters: [{method: loha, r: 4, target_modules: [gate_proj]}]\n", cwd, cwd, cwd);
    int before = openblas_get_num_threads();
    for (int k = 0; k < 2; k++) {
        snprintf(out[k], sizeof out[k], "%s/t%d", tmp, k + 1);
        runner_config *c = load(yaml, out[k]);
        openblas_set_num_threads(k + 1);
        runner_opts o = {0};
        ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
        runner_config_free(c);
    }
    openblas_set_num_threads(before);
    const char *runs[] = {"lora", "loha"};
    for (int i = 0; i < 2; i++) {
        char a[1300], b[1300];
        snprintf(a, sizeof a, "%s/%s/adapter/adapter_model.safetensors", out[0], runs[i]);
        snprintf(b, sizeof b, "%s/%s/adapter/adapter_model.safetensors", out[1], runs[i]);
        float w, d = max_tensor_diff(a, b, &w);
        printf("test_blas_threads_tolerance: %s: 1 vs 2 OpenBLAS threads, max |difference| %.3g (max |w| %.3g)\n",
               runs[i], d, w);
        ck_assert_msg(d <= 1e-3f * w, "%s: %g of %g", runs[i], d, w);
        snprintf(a, sizeof a, "%s/%s/results.json", out[0], runs[i]);
        snprintf(b, sizeof b, "%s/%s/results.json", out[1], runs[i]);
        json_error_t je;
        json_t *x = json_load_file(a, 0, &je), *y = json_load_file(b, 0, &je);
        ck_assert(x && y);
        json_t *fx = json_object_get(x, "final"), *fy = json_object_get(y, "final");
        ck_assert_double_eq_tol(json_number_value(json_object_get(fx, "eval_loss")),
                                json_number_value(json_object_get(fy, "eval_loss")), 1e-4);
        ck_assert_double_eq_tol(json_number_value(json_object_get(fx, "metric")),
                                json_number_value(json_object_get(fy, "metric")), 0.02);
        json_decref(x);
        json_decref(y);
    }
}
END_TEST

/* ---- optimizer extensions ---- */

START_TEST(test_lr_schedules)
{
    /* transformers: linear lambda = s/w, then (T - s)/(T - w); cosine 0.5 (1 + cos(pi p)) */
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_LINEAR, 1.0, 0, 10, 2), 0.0, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_LINEAR, 1.0, 1, 10, 2), 0.5, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_LINEAR, 1.0, 2, 10, 2), 1.0, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_LINEAR, 1.0, 6, 10, 2), 0.5, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_LINEAR, 2.0, 9, 10, 2), 0.25, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_COSINE, 1.0, 6, 10, 2), 0.5, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_COSINE, 1.0, 4, 10, 2), 0.5 * (1 + cos(M_PI * 0.25)), 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_COSINE, 1.0, 10, 10, 2), 0.0, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_CONSTANT, 3.0, 1, 10, 4), 0.75, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_CONSTANT, 3.0, 7, 10, 4), 3.0, 1e-15);
    ck_assert_double_eq_tol(peft_lr_at(PEFT_SCHED_LINEAR, 1.0, 0, 10, 0), 1.0, 1e-15);
}
END_TEST

START_TEST(test_adamw_params_and_state)
{
    peft_ctx *ctx = peft_ctx_new(0);
    int64_t sh[2] = {2, 3};
    peft_tensor *a = peft_tensor_new(PEFT_DTYPE_F32, 2, sh), *b = peft_tensor_new(PEFT_DTYPE_F32, 1, sh);
    peft_tensor *ps[2] = {a, b};
    for (int i = 0; i < 6; i++) peft_f32(a)[i] = (float)i * 0.1f;
    peft_adamw_config cfg = {0.1, 0.9, 0.99, 1e-8, 0.01};
    peft_adamw *o = peft_adamw_new_params(ctx, ps, 2, &cfg);
    ck_assert(o);
    ck_assert_int_eq(peft_adamw_n_params(o), 2);
    /* one torch.optim.AdamW step on grad g: m = 0.1 g, v = 0.01 g^2, update lr * g/|g| (+ decay) */
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < 6; i++) a->grad[i] = (float)(i - 2);
        b->grad[0] = 1, b->grad[1] = -1;
        peft_adamw_scale_grads(o, 0.5);
        ck_assert_double_eq_tol(a->grad[5], 1.5, 1e-7);
        peft_adamw_step(o, 0);
    }
    ck_assert_int_eq(peft_adamw_steps_done(o), 3);
    char path[1024];
    snprintf(path, sizeof path, "%s/opt.safetensors", tmp);
    const char *meta[] = {"note", "hello", NULL};
    ck_assert_msg(peft_adamw_save_state(o, path, meta) == 0, "%s", peft_errmsg(ctx));
    /* a copy continues exactly like the original */
    peft_tensor *a2 = peft_tensor_new(PEFT_DTYPE_F32, 2, sh), *b2 = peft_tensor_new(PEFT_DTYPE_F32, 1, sh);
    peft_tensor *ps2[2] = {a2, b2};
    peft_adamw *o2 = peft_adamw_new_params(ctx, ps2, 2, &cfg);
    char *note = NULL;
    ck_assert_msg(peft_adamw_load_state(o2, path, "note", &note) == 0, "%s", peft_errmsg(ctx));
    ck_assert_str_eq(note, "hello");
    free(note);
    ck_assert_int_eq(peft_adamw_steps_done(o2), 3);
    for (int k = 0; k < 2; k++) {
        peft_adamw *x = k ? o2 : o;
        peft_tensor *xa = k ? a2 : a, *xb = k ? b2 : b;
        for (int i = 0; i < 6; i++) xa->grad[i] = 0.3f * (float)i;
        xb->grad[0] = 2, xb->grad[1] = 0.5f;
        peft_adamw_step(x, 0.05);
    }
    ck_assert(memcmp(a->data, a2->data, 6 * sizeof(float)) == 0);
    ck_assert(memcmp(b->data, b2->data, 2 * sizeof(float)) == 0);
    /* a state for other shapes is refused with both shapes named, nothing changed */
    int64_t sh3[1] = {5};
    peft_tensor *c3 = peft_tensor_new(PEFT_DTYPE_F32, 1, sh3);
    peft_tensor *ps3[2] = {a2, c3};
    peft_adamw *o3 = peft_adamw_new_params(ctx, ps3, 2, &cfg);
    ck_assert_int_eq(peft_adamw_load_state(o3, path, NULL, NULL), PEFT_EFORMAT);
    ck_assert_int_eq(peft_errcode(ctx), PEFT_EFORMAT);
    ck_assert_ptr_eq(peft_adamw_ctx(o3), ctx);
    const char *err = peft_errmsg(ctx);
    ck_assert_msg(strstr(err, "exp_avg.1") || strstr(err, "param.1"), "%s", err);
    ck_assert_msg(strstr(err, "(2)") && strstr(err, "(5)"), "%s", err);
    ck_assert_int_eq(peft_adamw_steps_done(o3), 0);
    /* a missing file is an I/O error, named */
    char nope[1100];
    snprintf(nope, sizeof nope, "%s/no-such.safetensors", tmp);
    ck_assert_int_eq(peft_adamw_load_state(o3, nope, NULL, NULL), PEFT_EIO);
    ck_assert_msg(strstr(peft_errmsg(ctx), "no-such.safetensors"), "%s", peft_errmsg(ctx));
    /* not f32: refused */
    peft_tensor *ids = peft_tensor_new(PEFT_DTYPE_I32, 1, sh3);
    ck_assert(peft_adamw_new_params(ctx, &ids, 1, &cfg) == NULL);
    ck_assert(strstr(peft_errmsg(ctx), "parameter 0"));
    peft_adamw_free(o);
    peft_adamw_free(o2);
    peft_adamw_free(o3);
    peft_tensor_free(a);
    peft_tensor_free(b);
    peft_tensor_free(a2);
    peft_tensor_free(b2);
    peft_tensor_free(c3);
    peft_tensor_free(ids);
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(test_svg_escaping)
{
    runner_point pts[3] = {{0, 2.0}, {5, 1.0}, {10, NAN}};
    runner_series s = {"a<b & \"c\"", pts, 3, 0};
    char *svg = runner_svg_lines("t & t", "step", "loss", &s, 1);
    ck_assert(svg && strstr(svg, "a&lt;b &amp; &quot;c&quot;") && strstr(svg, "t &amp; t") && !strstr(svg, "nan"));
    free(svg);
    double x[2] = {100, 10000}, y[2] = {0.5, 0.9};
    const char *labels[2] = {"small", "big"};
    svg = runner_svg_scatter("m", "params", "acc", x, y, labels, 2, 0.1);
    ck_assert(svg && strstr(svg, "<circle") && strstr(svg, "base model"));
    free(svg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runner");
    TCase *t = tcase_create("runner");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, test_valid_and_sweep_expansion);
    tcase_add_test(t, test_config_errors);
    tcase_add_test(t, test_sweep_end_to_end);
    tcase_add_test(t, test_eval_on_start_off);
    tcase_add_test(t, test_norm_and_embedding_methods);
    tcase_add_test(t, test_mpt_task_ids);
    tcase_add_test(t, test_resume_after_kill);
    tcase_add_test(t, test_resume_after_stop_request);
    tcase_add_test(t, test_text_data);
    tcase_add_test(t, test_set_overrides);
    tcase_add_test(t, test_seeds_and_statistics);
    tcase_add_test(t, test_shards_then_summarize);
    tcase_add_test(t, test_data_parallel_one_process);
    tcase_add_test(t, test_lr_schedules);
    tcase_add_test(t, test_adamw_params_and_state);
    tcase_add_test(t, test_svg_escaping);
    suite_add_tcase(s, t);
    /* the longest test, in a case of its own: `make check` runs it beside the rest (TU_PART2) */
    TCase *p2 = tcase_create("threads");
    tcase_set_tags(p2, TU_PART2);
    tcase_add_checked_fixture(p2, setup, teardown);
    tcase_set_timeout(p2, 600);
    tcase_add_test(p2, test_blas_threads_tolerance);
    suite_add_tcase(s, p2);
    int failed = tu_run_suite(s);
    return failed ? 1 : 0;
}

/* test_adaption_prompt.c — the adaption prompt plugin (plugins/adaption_prompt/, ABI 1.4
 * attention hook): Python PEFT 0.13.2's llama__adaption_prompt case through the contract table;
 * Mistral (sliding window, GQA) takes it and a perturbed gate moves its logits; merge and
 * merge_and_unload refused by name; unsupported model types, mixing and bad configs refused by
 * name; cached greedy generation equal to uncached on a left-padded batch; a YAML experiment
 * with `method: adaption_prompt` trains and saves PEFT's keys. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "peft/generate.h"
#include "peft/peft.h"
#include "peft/util.h"
#include "peft/warn.h"
#include "runner/runner.h"
#include "testutil.h"

#define CFG "{\"peft_type\": \"ADAPTION_PROMPT\", \"adapter_len\": 4, \"adapter_layers\": 2"

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case("llama__adaption_prompt");
}
END_TEST

static peft_base_model *load_base(peft_ctx *ctx, const char *arch)
{
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", arch);
    peft_base_model *base;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &base) == 0, "%s", peft_errmsg(ctx));
    return base;
}

/* the refusal message of get_peft_model(config) on arch */
static const char *refusal(const char *arch, const char *config)
{
    static char msg[2048];
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base = load_base(ctx, arch);
    peft_model *m = NULL;
    ck_assert_int_eq(peft_get_peft_model(ctx, base, config, "default", 0, &m), PEFT_EINVAL);
    snprintf(msg, sizeof msg, "%s", peft_errmsg(ctx));
    peft_base_model_free(base);
    peft_ctx_free(ctx);
    return msg;
}

#define ck_has(msg, needle) ck_assert_msg(strstr((msg), (needle)), "\"%s\" lacks \"%s\"", (msg), (needle))

START_TEST(refusals)
{
    peft_set_warning_handler(tu_quiet, NULL);
    ck_has(refusal("qwen2", CFG "}"), "Unsupported model type for adaption prompt: 'qwen2'");
    ck_has(refusal("gpt2", CFG "}"), "the gpt2 architecture does not call");
    ck_has(refusal("llama", "{\"peft_type\": \"ADAPTION_PROMPT\", \"adapter_len\": 4, \"adapter_layers\": 3}"),
           "Config specifies more adapter layers '3' than the model has '2'.");
    ck_has(refusal("llama", "{\"peft_type\": \"ADAPTION_PROMPT\", \"adapter_layers\": 1}"),
           "'adapter_len' is required");
    ck_has(refusal("llama", "{\"peft_type\": \"ADAPTION_PROMPT\", \"adapter_len\": 0, \"adapter_layers\": 1}"), "'adapter_len'");
    ck_has(refusal("llama", CFG ", \"target_modules\": [\"a\", \"b\"]}"), "target_modules");
    ck_has(refusal("llama", CFG ", \"r\": 4}"), "unknown field 'r'");
    ck_has(refusal("llama", CFG ", \"target_modules\": \"mlp\"}"), "more adapter layers");

    /* no merge (PEFT has none); no mixing with other methods; not per row */
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m;
    ck_assert(peft_get_peft_model(ctx, load_base(ctx, "llama"), CFG "}", "default", 0, &m) == 0);
    ck_assert_int_eq(peft_merge_adapter(m, NULL, 0, 1), PEFT_EINVAL);
    ck_has(peft_errmsg(ctx), "no weights to merge");
    peft_base_model *out = NULL;
    ck_assert_int_eq(peft_merge_and_unload(m, 1, NULL, 0, &out), PEFT_EINVAL);
    ck_has(peft_errmsg(ctx), "ADAPTION_PROMPT");
    ck_assert_int_eq(peft_add_adapter(m, "lora", "{\"peft_type\": \"LORA\", \"r\": 2}"), PEFT_EINVAL);
    ck_has(peft_errmsg(ctx), "different methods");
    char *status = NULL;
    ck_assert_int_eq(peft_get_layer_status(m, &status), PEFT_EINVAL);
    ck_has(peft_errmsg(ctx), "adaption prompt are not supported");
    peft_model_free(m);
    ck_assert(peft_get_peft_model(ctx, load_base(ctx, "llama"), "{\"peft_type\": \"LORA\", \"r\": 2}",
                                  "default", 0, &m) == 0);
    ck_assert_int_eq(peft_add_adapter(m, "ap", CFG "}"), PEFT_EINVAL);
    ck_has(peft_errmsg(ctx), "different methods");
    peft_model_free(m);
    peft_base_model *b = load_base(ctx, "llama");
    ck_assert_int_eq(peft_get_peft_model(ctx, b, CFG "}", "default", 1, &m), PEFT_EINVAL);
    ck_has(peft_errmsg(ctx), "mixed model");
    peft_base_model_free(b);
    peft_ctx_free(ctx);
}
END_TEST

/* logits of m on the model's fixture inputs (caller frees) */
static float *logits(peft_ctx *ctx, peft_model *m, const peft_model_inputs *in, int64_t *n)
{
    peft_graph *g = peft_graph_new(NULL);
    peft_model_outputs o;
    ck_assert_msg(peft_model_forward(m, g, in, &o) == 0, "%s", peft_errmsg(ctx));
    *n = o.logits->numel;
    float *c = malloc((size_t)*n * sizeof *c);
    memcpy(c, o.logits->data, (size_t)*n * sizeof *c);
    peft_graph_free(g);
    return c;
}

/* Mistral takes it on both layers: 2 x (4 x 32 + 1) trainable; a zero gate is the base, a
 * non-zero one moves the logits; disabled is the base again */
START_TEST(mistral)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, load_base(ctx, "mistral"), CFG "}", "default", 0, &m) == 0,
                  "%s", peft_errmsg(ctx));
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, 2 * (4 * 32 + 1));
    static const int32_t ids[16] = {5, 9, 77, 3, 12, 40, 41, 2, 0, 0, 8, 19, 100, 7, 6, 1};
    static const int32_t mask[16] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1};
    peft_model_inputs in = {.B = 2, .T = 8, .input_ids = ids, .attention_mask = mask};
    int64_t n;
    float *zero = logits(ctx, m, &in, &n);
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "default", &sd) == 0);
    ck_assert_int_eq((int)sd->n, 4);
    ck_assert_str_eq(sd->names[1], "base_model.model.model.layers.0.self_attn.adaption_gate");
    ((float *)sd->tensors[1]->data)[0] = 0.7f;
    ((float *)sd->tensors[3]->data)[0] = -0.4f;
    peft_state_dict_free(sd);
    float *moved = logits(ctx, m, &in, &n);
    ck_assert(peft_disable_adapter(m) == 0);
    float *off = logits(ctx, m, &in, &n);
    ck_assert(peft_enable_adapter(m) == 0);
    ck_assert(tu_max_abs_diff(moved, zero, n) > 1e-3);
    ck_assert(tu_max_abs_diff(off, zero, n) == 0); /* zero gates: o_proj(0) adds nothing (no bias) */
    free(zero);
    free(moved);
    free(off);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* greedy generation with the KV cache equals generation without it (every step a full forward):
 * the prompt attention of the new tokens needs only their queries at their positions */
START_TEST(cached_greedy_equals_uncached)
{
    peft_set_warning_handler(tu_quiet, NULL);
    static const char *const archs[] = {"llama", "mistral"};
    for (int k = 0; k < 2; k++) {
        peft_ctx *ctx = peft_ctx_new(0);
        peft_model *m;
        peft_base_model *base = load_base(ctx, archs[k]);
        if (k == 0)
            ck_assert_msg(peft_from_pretrained(ctx, base, tu_fixture("hf-peft-v2/llama__adaption_prompt/adapter"),
                                               "default", 0, &m) == 0, "%s", peft_errmsg(ctx));
        else {
            ck_assert(peft_get_peft_model(ctx, base, CFG "}", "default", 0, &m) == 0);
            peft_state_dict *sd;
            ck_assert(peft_get_peft_model_state_dict(m, "default", &sd) == 0);
            ((float *)sd->tensors[1]->data)[0] = 0.9f;
            ((float *)sd->tensors[3]->data)[0] = 0.6f;
            peft_state_dict_free(sd);
        }
        /* a left-padded batch: positions from the mask, as HF's generate */
        static const int32_t ids[12] = {0, 0, 41, 33, 6, 73, 115, 68, 34, 102, 34, 29};
        static const int32_t mask[12] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        peft_model_inputs in = {.B = 2, .T = 6, .input_ids = ids, .attention_mask = mask};
        peft_gen_config c;
        peft_gen_config_init(&c);
        c.max_new_tokens = 12;
        c.n_eos = 0;
        peft_gen_output o[2];
        for (int cache = 0; cache < 2; cache++) {
            c.use_cache = cache;
            ck_assert_msg(peft_generate(m, &in, &c, NULL, &o[cache]) == 0, "%s", peft_errmsg(ctx));
        }
        ck_assert_int_eq(o[0].n_new, o[1].n_new);
        ck_assert_msg(!memcmp(o[0].tokens, o[1].tokens, (size_t)(o[0].B * o[0].n_new) * sizeof(int32_t)),
                      "%s: cached greedy differs from uncached", archs[k]);
        /* and the adapter matters: the base model generates something else */
        peft_gen_output b;
        ck_assert(peft_disable_adapter(m) == 0);
        ck_assert(peft_generate(m, &in, &c, NULL, &b) == 0);
        ck_assert_msg(memcmp(b.tokens, o[1].tokens, (size_t)(b.B * b.n_new) * sizeof(int32_t)),
                      "%s: the adapter changed no generated token", archs[k]);
        peft_gen_output_free(&b);
        peft_gen_output_free(&o[0]);
        peft_gen_output_free(&o[1]);
        peft_model_free(m);
        peft_ctx_free(ctx);
    }
}
END_TEST

/* `method: adaption_prompt` in a YAML experiment: it trains (the eval loss falls) and saves
 * PEFT's model-level keys */
START_TEST(yaml_experiment)
{
    peft_set_warning_handler(tu_quiet, NULL);
    char *tmp = tu_tmpdir();
    char p[1024], q[1024], err[2048];
    snprintf(p, sizeof p, "%s/model", tmp);
    ck_assert(peft_mkdirs(tu_ctx(), p) == 0);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        size_t n;
        snprintf(q, sizeof q, "hf-peft-v2/_models/llama/%s", files[i]);
        char *d = tu_read_file(tu_fixture(q), &n);
        ck_assert_msg(d, "fixture %s missing", q);
        snprintf(q, sizeof q, "%s/model/%s", tmp, files[i]);
        ck_assert(tu_write_file(q, d, n) == 0);
        free(d);
    }
    for (int split = 0; split < 2; split++) { /* sequences counting up by a step */
        snprintf(p, sizeof p, "%s/%s.jsonl", tmp, split ? "eval" : "train");
        FILE *f = fopen(p, "w");
        ck_assert(f);
        for (int i = 0; i < (split ? 8 : 24); i++) {
            int start = (i * 7 + split * 3) % 60, step = 1 + i % 3;
            fputs("{\"input_ids\": [", f);
            for (int t = 0; t < 10; t++) fprintf(f, "%s%d", t ? ", " : "", start + step * t);
            fputs("]}\n", f);
        }
        fclose(f);
    }
    static const char yaml[] =
        "name: ap\n"
        "base_model: model\n"
        "task: causal_lm\n"
        "seed: 5\n"
        "data: {train: train.jsonl, eval: eval.jsonl}\n"
        "training: {steps: 6, batch_size: 4, learning_rate: 0.05, eval_steps: 6}\n"
        "experiments:\n"
        "  - name: ap\n"
        "    adapters:\n"
        "      - {method: adaption_prompt, adapter_len: 3, adapter_layers: 1}\n";
    snprintf(p, sizeof p, "%s/run.yaml", tmp);
    ck_assert(tu_write_file(p, yaml, strlen(yaml)) == 0);
    snprintf(q, sizeof q, "%s/out", tmp);
    runner_config *c;
    ck_assert_msg(runner_config_load(p, q, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(runner_check(c, err, sizeof err) == 0, "%s", err);
    runner_opts o = {0};
    ck_assert_msg(runner_run_all(c, &o, err, sizeof err) == 0, "%s", err);
    runner_config_free(c);
    snprintf(p, sizeof p, "%s/out/ap/results.json", tmp);
    json_t *j = json_load_file(p, 0, NULL);
    ck_assert_msg(j, "%s missing", p);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "trainable_params")), 3 * 32 + 1);
    json_t *el = json_object_get(j, "eval_loss");
    ck_assert_msg(json_number_value(json_array_get(json_array_get(el, 1), 1)) <
                  json_number_value(json_array_get(json_array_get(el, 0), 1)), "no learning");
    json_decref(j);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m;
    snprintf(p, sizeof p, "%s/out/ap/adapter", tmp);
    ck_assert_msg(peft_from_pretrained(ctx, load_base(ctx, "llama"), p, "default", 0, &m) == 0, "%s",
                  peft_errmsg(ctx));
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "default", &sd) == 0);
    ck_assert_int_eq((int)sd->n, 2);
    ck_assert_str_eq(sd->names[0], "base_model.model.model.layers.1.self_attn.adaption_prompt");
    ck_assert_msg(((float *)sd->tensors[1]->data)[0] != 0.0f, "the gate did not train");
    peft_state_dict_free(sd);
    peft_model_free(m);
    peft_ctx_free(ctx);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adaption_prompt");
    TCase *tc = tcase_create("adaption_prompt");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fixture_case);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, mistral);
    tcase_add_test(tc, cached_greedy_equals_uncached);
    tcase_add_test(tc, yaml_experiment);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* test_vera.c — the VeRA plugin (plugins/vera/, ABI 1.3 adapter-level state): every VeRA case of
 * Python PEFT 0.13.2 (hf-peft-v2: save_projection true and false, GPT-2 Conv1D, LLaMA, BERT)
 * through the contract table; the shared projections regenerated bit for bit as torch's CPU
 * generator makes them (vera_projections.safetensors); PEFT's checks across adapters (one
 * projection_prng_key, one save_projection); config errors. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "peft/warn.h"
#include "testutil.h"

static const char *const fixture_cases[] = {
    "gpt2__vera_proj", "gpt2__vera_noproj", "llama__vera_proj", "llama__vera_noproj",
    "bert_seqcls__vera_proj", "bert_seqcls__vera_noproj",
};
#define N_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

static peft_model *vera_model(peft_ctx *ctx, const char *arch, const char *config)
{
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", arch);
    peft_base_model *base;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &base) == 0, "%s", peft_errmsg(ctx));
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, base, config, "default", 0, &m) == 0, "%s", peft_errmsg(ctx));
    return m;
}

/* base_model.vera_A / vera_B of a fresh adapter equal PEFT's generated ones bit for bit */
START_TEST(projections_bit_exact)
{
    static const struct {
        const char *arch, *kase, *targets;
    } cases[] = {
        {"gpt2", "gpt2__vera_noproj", "[\"c_attn\"]"},
        {"llama", "llama__vera_noproj", "[\"q_proj\", \"v_proj\"]"},
        {"bert_seqcls", "bert_seqcls__vera_proj", "[\"query\", \"value\"]"},
    };
    peft_set_warning_handler(tu_quiet, NULL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        peft_ctx *ctx = peft_ctx_new(0);
        char cfg[256];
        snprintf(cfg, sizeof cfg, "{\"peft_type\": \"VERA\", \"r\": 8, \"target_modules\": %s}", cases[c].targets);
        peft_model *m = vera_model(ctx, cases[c].arch, cfg);
        peft_state_dict *sd;
        ck_assert(peft_get_peft_model_state_dict(m, "default", &sd) == 0);
        char rel[256];
        snprintf(rel, sizeof rel, "hf-peft-v2/%s/vera_projections.safetensors", cases[c].kase);
        peft_st_file *f;
        ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
        const char *mine[2] = {"base_model.vera_A", "base_model.vera_B"};
        const char *theirs[2] = {"vera_A.default", "vera_B.default"};
        for (int k = 0; k < 2; k++) {
            const peft_st_entry *e = peft_st_find(f, theirs[k]);
            ck_assert_msg(e, "%s: no %s", rel, theirs[k]);
            peft_tensor *t = NULL;
            for (size_t i = 0; i < sd->n; i++)
                if (!strcmp(sd->names[i], mine[k])) t = sd->tensors[i];
            ck_assert_msg(t, "%s: no %s in the saved state dict", cases[c].kase, mine[k]);
            ck_assert_int_eq((int64_t)(e->nbytes / 4), t->numel);
            ck_assert_msg(memcmp(e->data, t->data, e->nbytes) == 0,
                          "%s: %s differs from torch's generator (max diff %g)", cases[c].kase,
                          mine[k], tu_max_abs_diff((const float *)e->data, (const float *)t->data, t->numel));
        }
        peft_st_close(f);
        peft_state_dict_free(sd);
        peft_model_free(m);
        peft_ctx_free(ctx);
    }
}
END_TEST

/* a second adapter: same key and save_projection accepted (own projections, same values);
 * a different key or save_projection refused with PEFT's messages */
START_TEST(second_adapter_rules)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = vera_model(ctx, "llama", "{\"peft_type\": \"VERA\", \"r\": 4}");
    ck_assert_int_eq(peft_add_adapter(m, "other", "{\"peft_type\": \"VERA\", \"r\": 4, \"projection_prng_key\": 3}"),
                     PEFT_EINVAL);
    ck_assert_ptr_nonnull(strstr(peft_errmsg(ctx), "PRNG initialisation key must be the same"));
    ck_assert_int_eq(peft_add_adapter(m, "other", "{\"peft_type\": \"VERA\", \"r\": 4, \"save_projection\": false}"),
                     PEFT_EINVAL);
    ck_assert_ptr_nonnull(strstr(peft_errmsg(ctx), "saved for all adapters or none"));
    ck_assert_msg(peft_add_adapter(m, "other", "{\"peft_type\": \"VERA\", \"r\": 4}") == 0, "%s",
                  peft_errmsg(ctx));
    /* buffers are no parameters: per layer (out + r) on q_proj and v_proj, nothing else */
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(a - t, 26784 + 2 * ((32 + 4) + (16 + 4))); /* base + frozen "other": q (out 32), v (out 16) */
    ck_assert(peft_delete_adapter(m, "default") == 0); /* its projections go, other's stay */
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(config_errors)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/llama"), &base) == 0);
    peft_model *m = NULL;
    static const struct {
        const char *cfg, *want;
    } bad[] = {
        {"{\"peft_type\": \"VERA\", \"r\": 0}", "'r' must be a positive integer"},
        {"{\"peft_type\": \"VERA\", \"projection_prng_key\": -1}", "projection_prng_key"},
        {"{\"peft_type\": \"VERA\", \"save_projection\": 1}", "save_projection"},
        {"{\"peft_type\": \"VERA\", \"vera_dropout\": 1.5}", "vera_dropout"},
        {"{\"peft_type\": \"VERA\", \"bias\": \"lora_only\"}", "bias"},
        {"{\"peft_type\": \"VERA\", \"vera_alpha\": 1}", "unknown field 'vera_alpha'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_ne(peft_get_peft_model(ctx, base, bad[i].cfg, "default", 0, &m), 0);
        ck_assert_msg(strstr(peft_errmsg(ctx), bad[i].want), "%s: %s", bad[i].cfg, peft_errmsg(ctx));
    }
    peft_base_model_free(base);
    peft_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vera");
    TCase *tf = tcase_create("fixtures");
    tcase_set_timeout(tf, 120);
    tcase_add_loop_test(tf, fixture_case, 0, N_CASES);
    suite_add_tcase(s, tf);
    TCase *ta = tcase_create("api");
    tcase_set_timeout(ta, 60);
    tcase_add_test(ta, projections_bit_exact);
    tcase_add_test(ta, second_adapter_rules);
    tcase_add_test(ta, config_errors);
    suite_add_tcase(s, ta);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

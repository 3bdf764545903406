/* test_p_tuning.c — P-tuning (plugins/p_tuning, PEFT 0.13.2's PromptEncoder): every P-tuning
 * fixture case of Python PEFT through the contract table (the encoder's forward, loss and every
 * encoder gradient against PEFT's), PEFT's own saved adapters (the encoder's output as a plain
 * table) loaded and run, finite-difference gradients of the encoder op (MLP; bidirectional LSTM
 * with 1-3 layers, decoder-only and encoder-decoder), the saved output reproducing the forward
 * bit for bit, and config errors naming the field. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "peft/warn.h"
#include "prompt_harness.h"
#include "testutil.h"

static const char *const fixture_cases[] = {
    "gpt2__ptuning_mlp", "gpt2__ptuning_lstm", "llama__ptuning_mlp", "llama__ptuning_lstm",
    "bert_seqcls__ptuning_mlp",
};
#define N_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

/* PEFT's saved adapter (prompt_embeddings = the encoder's output) gives PEFT's logits */
START_TEST(peft_saved_adapter)
{
    const char *name = fixture_cases[_i];
    char rel[512];
    const char *arch = strncmp(name, "bert", 4) == 0 ? "bert_seqcls" : !strncmp(name, "gpt2", 4) ? "gpt2" : "llama";
    peft_ctx *ctx = peft_ctx_new(0);
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", arch);
    peft_base_model *b = NULL;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &b) == 0, "%s", peft_errmsg(ctx));
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/adapter", name);
    peft_model *m = NULL;
    ck_assert_msg(peft_from_pretrained(ctx, b, tu_fixture(rel), NULL, 0, &m) == 0, "%s: %s", name,
                  peft_errmsg(ctx));
    peft_inputs in;
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/inputs.json", name);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_model_outputs out;
    ck_assert_msg(peft_model_forward(m, g, &mi, &out) == 0, "%s", peft_errmsg(ctx));
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/peft_logits.safetensors", name);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, "logits");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq((int64_t)(e->nbytes / 4), out.logits->numel);
    double d = tu_max_abs_diff((const float *)e->data, peft_f32(out.logits), out.logits->numel);
    ck_assert_msg(d <= 1e-4, "%s: PEFT's saved adapter gives logits off by %g", name, d);
    peft_st_close(f);
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, 0); /* loaded for inference: a plain table, nothing trains */
    peft_graph_free(g);
    peft_inputs_free(&in);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

#define PT_CFG(type, layers, nts) \
    "{\"peft_type\":\"P_TUNING\",\"num_virtual_tokens\":3,\"token_dim\":8," \
    "\"num_transformer_submodules\":" #nts ",\"num_attention_heads\":2,\"num_layers\":2," \
    "\"encoder_hidden_size\":5,\"encoder_reparameterization_type\":\"" type "\"," \
    "\"encoder_num_layers\":" #layers "}"

START_TEST(grad_mlp)
{
    harness h;
    harness_open(&h, "p_tuning", PT_CFG("MLP", 2, 1), 0);
    peft_param_ref refs[HARNESS_MAX_REFS];
    ck_assert_int_eq(h.vt->state_dict(h.state, refs, HARNESS_MAX_REFS), 7);
    ck_assert_str_eq(refs[5].memory_name, "mlp_head.4.weight");
    ck_assert_int_eq(refs[5].tensor->shape[0], 8); /* (token_dim, encoder_hidden_size) */
    ck_assert_int_eq(refs[5].tensor->shape[1], 5);
    check_grads(&h, "p-tuning MLP");
    harness_close(&h);
    harness_open(&h, "p_tuning", PT_CFG("MLP", 2, 2), 1);
    check_grads(&h, "p-tuning MLP (encoder-decoder)");
    harness_close(&h);
}
END_TEST

START_TEST(grad_lstm)
{
    harness h;
    harness_open(&h, "p_tuning", PT_CFG("LSTM", 2, 1), 0);
    peft_param_ref refs[HARNESS_MAX_REFS];
    ck_assert_int_eq(h.vt->state_dict(h.state, refs, HARNESS_MAX_REFS), 1 + 16 + 4);
    ck_assert_str_eq(refs[5].memory_name, "lstm_head.weight_ih_l0_reverse");
    ck_assert_str_eq(refs[9].memory_name, "lstm_head.weight_ih_l1");
    ck_assert_int_eq(refs[9].tensor->shape[0], 20); /* (4H, 2H) */
    ck_assert_int_eq(refs[9].tensor->shape[1], 10);
    ck_assert_str_eq(refs[17].memory_name, "mlp_head.0.weight");
    check_grads(&h, "p-tuning LSTM, 2 layers");
    harness_close(&h);
    harness_open(&h, "p_tuning", PT_CFG("LSTM", 1, 1), 0);
    check_grads(&h, "p-tuning LSTM, 1 layer");
    harness_close(&h);
    /* encoder-decoder: the LSTM runs over all 2P rows, the model sees the first P */
    harness_open(&h, "p_tuning", PT_CFG("LSTM", 3, 2), 1);
    h.eps = 3e-3;
    check_grads(&h, "p-tuning LSTM, 3 layers (encoder-decoder)");
    harness_close(&h);
}
END_TEST

/* the saved output is the forward's bit for bit; loading it drops the encoder and gives the
 * same virtual tokens */
START_TEST(save_load_exact)
{
    const char *const cfgs[2] = {PT_CFG("MLP", 2, 1), PT_CFG("LSTM", 2, 1)};
    for (int k = 0; k < 2; k++) {
        harness h;
        harness_open(&h, "p_tuning", cfgs[k], 0);
        peft_graph *g = peft_graph_new(&trng);
        peft_tensor *before = h.vt->prompt_embeddings(h.state, g, 2);
        peft_tensor *saved = h.vt->prompt_to_save(h.state);
        ck_assert_int_eq(saved->shape[0], 3);
        ck_assert_int_eq(saved->shape[1], 8);
        for (int b = 0; b < 2; b++)
            ck_assert(!memcmp(peft_f32(before) + b * 24, saved->data, 24 * sizeof(float)));
        char err[512] = "";
        ck_assert_msg(h.vt->prompt_load(h.state, saved, err, sizeof err) == 0, "%s", err);
        peft_param_ref refs[4];
        ck_assert_int_eq(h.vt->state_dict(h.state, refs, 4), 1); /* the encoder is gone */
        peft_tensor *after = h.vt->prompt_embeddings(h.state, g, 2);
        ck_assert(!memcmp(before->data, after->data, 48 * sizeof(float)));
        const int64_t bad[2] = {3, 7};
        peft_tensor *wrong = peft_tensor_new(PEFT_DTYPE_F32, 2, bad);
        ck_assert_int_ne(h.vt->prompt_load(h.state, wrong, err, sizeof err), 0);
        ck_assert_msg(strstr(err, "[3, 7]") && strstr(err, "[3, 8]"), "%s", err);
        peft_tensor_free(wrong);
        peft_tensor_free(saved);
        peft_graph_free(g);
        harness_close(&h);
    }
}
END_TEST

/* LSTM dropout between layers acts in training only */
START_TEST(lstm_dropout_training_only)
{
    harness h;
    harness_open(&h, "p_tuning",
                 "{\"peft_type\":\"P_TUNING\",\"num_virtual_tokens\":3,\"token_dim\":8,"
                 "\"num_transformer_submodules\":1,\"num_attention_heads\":2,\"num_layers\":2,"
                 "\"encoder_hidden_size\":5,\"encoder_reparameterization_type\":\"LSTM\","
                 "\"encoder_dropout\":0.5}", 0);
    peft_graph *g = peft_graph_new(&trng);
    peft_tensor *eval = h.vt->prompt_embeddings(h.state, g, 1);
    peft_tensor *saved = h.vt->prompt_to_save(h.state);
    ck_assert(!memcmp(eval->data, saved->data, 24 * sizeof(float)));
    peft_graph_set_training(g, 1);
    peft_tensor *train = h.vt->prompt_embeddings(h.state, g, 1);
    ck_assert(memcmp(eval->data, train->data, 24 * sizeof(float)) != 0);
    peft_tensor_free(saved);
    peft_graph_free(g);
    harness_close(&h);
}
END_TEST

START_TEST(config_errors)
{
    harness_refused("{\"peft_type\":\"P_TUNING\",\"num_virtual_tokens\":4,"
            "\"encoder_reparameterization_type\":\"GRU\"}",
            "field 'encoder_reparameterization_type' has invalid value \"GRU\"; allowed values: "
            "\"MLP\", \"LSTM\"");
    harness_refused("{\"peft_type\":\"P_TUNING\",\"num_virtual_tokens\":4,\"encoder_dropout\":1.5}",
            "field 'encoder_dropout' must be in [0, 1)");
    harness_refused("{\"peft_type\":\"P_TUNING\",\"num_virtual_tokens\":4,\"encoder_num_layers\":0}",
            "field 'encoder_num_layers' must be a positive integer");
    harness_refused("{\"peft_type\":\"P_TUNING\"}", "field 'num_virtual_tokens' is required");
    harness_refused("{\"peft_type\":\"P_TUNING\",\"num_virtual_tokens\":4,\"token_dim\":16}",
            "field 'token_dim' is 16 but the gpt2 model's word embeddings are 32 wide");
    harness_refused("{\"peft_type\":\"P_TUNING\",\"num_virtual_tokens\":4,\"encoder_hidden_size\":-2}",
            "field 'encoder_hidden_size' must be a positive integer");
}
END_TEST

int main(void)
{
    peft_rng_seed(&trng, 7);
    Suite *s = suite_create("p_tuning");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_CASES);
    tcase_add_loop_test(tc, peft_saved_adapter, 0, N_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("encoder");
    tcase_add_test(tk, grad_mlp);
    tcase_add_test(tk, grad_lstm);
    tcase_add_test(tk, save_load_exact);
    tcase_add_test(tk, lstm_dropout_training_only);
    tcase_add_test(tk, config_errors);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

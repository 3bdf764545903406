/* test_memory.c — what makes real-size models fit in training: gradient checkpointing
 * (core/tensor/checkpoint.c; gradients equal to the plain run, dropout included), the chunked
 * language-model loss (core/ops/chunked_ce.c; loss and gradient equal to op_linear +
 * op_cross_entropy, bf16 head, ignored rows, several chunks), both on a LoRA-tuned LLaMA, GPT-2,
 * BERT and T5 (a T5 decoder block takes the encoder states as a second input), and
 * prepare_model_for_kbit_training on a 4-bit base (norms f32, inputs require grad, the
 * adapter trains, merging re-quantizes). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "fd.h"
#include "peft/dtype.h"
#include "peft/graph.h"
#include "peft/model.h"
#include "core/ops/ops.h"
#include "peft/peft.h"
#include "peft/quant.h"
#include "peft/warn.h"
#include "testutil.h"

#define LLAMA_DIR "hf-peft/_models/llama"

/* ---- checkpoint of a block with a parameter and dropout -------------------------------------- */

typedef struct { peft_tensor *w; } blk_ud;

static peft_tensor *blk(peft_graph *g, void *p, peft_tensor *x)
{
    blk_ud *u = p;
    peft_tensor *y = op_linear(g, x, u->w, NULL, 0);
    y = y ? op_dropout(g, y, 0.3f) : NULL;
    y = y ? op_silu(g, y) : NULL;
    return y ? op_add(g, x, y) : NULL;
}

START_TEST(checkpoint_equals_plain)
{
    peft_tensor *x = fd_rand_tensor(3, (int64_t[]){2, 5, 8}, 1.0f, 1);
    peft_tensor *w = fd_rand_tensor(2, (int64_t[]){8, 8}, 0.5f, 1);
    float *gx[2], *gw[2], loss[2];
    for (int ck = 0; ck < 2; ck++) {
        peft_rng rng;
        peft_rng_seed(&rng, 5);
        peft_graph *g = peft_graph_new(&rng);
        peft_graph_set_recording(g, 1);
        peft_graph_set_training(g, 1);
        blk_ud u = {w};
        peft_tensor *h = x;
        for (int l = 0; l < 3; l++) /* three blocks sharing the weight */
            h = ck ? peft_checkpoint(g, blk, &u, sizeof u, h) : blk(g, &u, h);
        ck_assert_ptr_nonnull(h);
        peft_tensor *zt = peft_graph_tensor(g, h->ndim, h->shape);
        for (int64_t i = 0; i < zt->numel; i++) peft_f32(zt)[i] = 0.1f * (float)(i % 7);
        peft_tensor *L = op_mse(g, h, peft_f32(zt));
        ck_assert_int_eq(peft_graph_backward(g, L), 0);
        ck_assert_ptr_null(peft_graph_error(g));
        loss[ck] = peft_f32(L)[0];
        gx[ck] = malloc(sizeof(float) * x->numel);
        gw[ck] = malloc(sizeof(float) * w->numel);
        memcpy(gx[ck], x->grad, sizeof(float) * x->numel);
        memcpy(gw[ck], w->grad, sizeof(float) * w->numel);
        peft_tensor_zero_grad(x);
        peft_tensor_zero_grad(w);
        peft_graph_free(g);
    }
    ck_assert(loss[0] == loss[1]);
    ck_assert(memcmp(gx[0], gx[1], sizeof(float) * x->numel) == 0);
    ck_assert(memcmp(gw[0], gw[1], sizeof(float) * w->numel) == 0);
    for (int k = 0; k < 2; k++) { free(gx[k]); free(gw[k]); }
    peft_tensor_free(x);
    peft_tensor_free(w);
}
END_TEST

/* ---- chunked cross-entropy --------------------------------------------------------------------- */

START_TEST(chunked_ce_equals_full)
{
    const int64_t N = 400, C = 16, V = 50000; /* several vocabulary tiles */
    peft_tensor *h = fd_rand_tensor(2, (int64_t[]){N, C}, 1.0f, 1);
    peft_tensor *wf = fd_rand_tensor(2, (int64_t[]){V, C}, 0.3f, 0);
    peft_tensor *wb = peft_tensor_new(PEFT_DTYPE_F32, 2, (int64_t[]){V, C});
    free(wb->data);
    wb->data = malloc((size_t)(V * C) * 2);
    wb->dtype = PEFT_DTYPE_BF16;
    peft_convert_from_f32(PEFT_DTYPE_BF16, peft_f32(wf), wb->data, V * C);
    int32_t *tgt = malloc(sizeof(int32_t) * N);
    for (int64_t n = 0; n < N; n++) tgt[n] = n % 9 == 0 || (n >= 90 && n < 180) ? -100 : (int32_t)((n * 7919) % V);
    /* bf: bf16 head; sc: the loss scaled by 2.5 before backward (dloss != 1: the gradient the
     * fused forward found for dloss = 1 is scaled) */
    for (int bf = 0; bf < 4; bf++) {
        peft_tensor *w = bf & 1 ? wb : wf;
        const int sc = bf >> 1;
        float loss[2], *dh[2];
        for (int k = 0; k < 2; k++) {
            peft_graph *g = peft_graph_new(NULL);
            peft_graph_set_recording(g, 1);
            peft_tensor *L = k ? op_linear_cross_entropy(g, h, w, tgt, -100)
                               : op_cross_entropy(g, op_linear(g, h, w, NULL, 0), tgt, -100);
            ck_assert_ptr_nonnull(L);
            peft_tensor *S = sc ? op_scale(g, L, 2.5f) : L;
            ck_assert_ptr_nonnull(S);
            ck_assert_int_eq(peft_graph_backward(g, S), 0);
            loss[k] = peft_f32(L)[0];
            dh[k] = malloc(sizeof(float) * N * C);
            memcpy(dh[k], h->grad, sizeof(float) * N * C);
            peft_tensor_zero_grad(h);
            peft_graph_free(g);
        }
        ck_assert_msg(fabsf(loss[0] - loss[1]) <= 1e-6f * fabsf(loss[0]), "loss %g vs %g", loss[0], loss[1]);
        double d = tu_max_abs_diff(dh[0], dh[1], N * C);
        ck_assert_msg(d <= (sc ? 3e-7 : 1e-7), "dh differs by %g", d);
        free(dh[0]);
        free(dh[1]);
    }
    free(tgt);
    peft_tensor_free(h);
    peft_tensor_free(wf);
    peft_tensor_free(wb);
}
END_TEST

/* ---- a LoRA step on LLaMA: plain, checkpointed + chunked ------------------------------------- */

static const char *LORA =
    "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"r\": 4, \"lora_alpha\": 8, "
    "\"lora_dropout\": 0.1, \"target_modules\": \"all-linear\"}";

/* one architecture's LoRA step: its fixture, config and inputs */
typedef struct {
    const char *dir, *lora;
    peft_model_inputs in;
    int chunked; /* the LM loss is chunked when checkpointing (no logits) */
} arch_case;

static int32_t IDS[2 * 7] = {1, 5, 9, 33, 70, 2, 3, 4, 8, 15, 16, 23, 42, 99};
static int32_t LAB[2 * 7] = {1, 5, 9, 33, 70, 2, 3, 4, 8, 15, 16, -100, -100, -100};
static int32_t CLS[2] = {2, 0};
static int32_t MASK[2 * 7] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};

static float *lora_step_case(const arch_case *ac, const char *quant, int ckpt, float *loss,
                             int64_t *n, peft_base_model **keep);

/* loss and every trainable gradient (concatenated, *n floats) of one step */
static float *lora_step(const char *quant, int ckpt, float *loss, int64_t *n, peft_base_model **keep)
{
    arch_case ac = {LLAMA_DIR, LORA, {.B = 2, .T = 7, .input_ids = IDS, .labels = LAB}, 1};
    return lora_step_case(&ac, quant, ckpt, loss, n, keep);
}

static float *lora_step_case(const arch_case *ac, const char *quant, int ckpt, float *loss,
                             int64_t *n, peft_base_model **keep)
{
    peft_ctx *ctx = peft_ctx_new(3);
    peft_load_options o = {.struct_size = sizeof o, .quant = quant};
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model_ex(ctx, tu_fixture(ac->dir), &o, &b) == 0, "%s", peft_errmsg(ctx));
    if (ckpt == 1) ck_assert_int_eq(peft_prepare_model_for_kbit_training(ctx, b, 1), 0);
    if (ckpt == 2) peft_chunked_loss_enable(b, 1); /* the chunked loss alone */
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, b, ac->lora, "default", 0, &m) == 0, "%s", peft_errmsg(ctx));
    peft_model_train(m, 1);
    peft_model_inputs in = ac->in;
    peft_model_outputs out;
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_graph_set_recording(g, 1);
    ck_assert_msg(peft_model_forward(m, g, &in, &out) == 0, "%s", peft_errmsg(ctx));
    ck_assert(ckpt && ac->chunked ? out.logits == NULL : out.logits != NULL);
    ck_assert_int_eq(peft_graph_backward(g, out.loss), 0);
    *loss = peft_f32(out.loss)[0];
    peft_state_dict *sd;
    ck_assert_int_eq(peft_trainable_parameters(m, &sd), 0);
    int64_t total = 0;
    for (size_t i = 0; i < sd->n; i++) total += sd->tensors[i]->numel;
    float *gr = malloc(sizeof(float) * total), *p = gr;
    for (size_t i = 0; i < sd->n; i++) {
        peft_tensor *t = sd->tensors[i];
        if (t->grad) memcpy(p, t->grad, sizeof(float) * t->numel);
        else memset(p, 0, sizeof(float) * t->numel);
        p += t->numel;
    }
    *n = total;
    peft_state_dict_free(sd);
    peft_graph_free(g);
    if (keep) {
        peft_base_model *base;
        peft_set_warning_handler(tu_quiet, NULL);
        ck_assert_int_eq(peft_merge_and_unload(m, 1, NULL, 0, &base), 0);
        *keep = base;
    } else {
        peft_model_free(m);
    }
    peft_ctx_free(ctx);
    return gr;
}

START_TEST(llama_checkpointed_equals_plain)
{
    const char *qs[] = {NULL, "nf4"};
    for (int k = 0; k < 2; k++) {
        float l0, l1;
        int64_t n0, n1;
        float *a = lora_step(qs[k], 0, &l0, &n0, NULL);
        for (int mode = 1; mode <= 2; mode++) { /* 1: checkpointed + chunked; 2: chunked alone */
            float *b = lora_step(qs[k], mode, &l1, &n1, NULL);
            ck_assert_int_eq(n0, n1);
            double mx = 0;
            for (int64_t i = 0; i < n0; i++) mx = fmax(mx, fabs(a[i]));
            double d = tu_max_abs_diff(a, b, n0);
            printf("llama LoRA (%s base): %s vs plain: loss %.7f / %.7f, max |dgrad| %.3g of "
                   "%.3g\n", qs[k] ? qs[k] : "f32",
                   mode == 1 ? "checkpointed + chunked loss" : "chunked loss alone", l0, l1, d, mx);
            ck_assert(mx > 0);
            ck_assert(fabsf(l0 - l1) <= 1e-6f * fabsf(l0));
            ck_assert(d <= 1e-5 * mx);
            free(b);
        }
        free(a);
    }
}
END_TEST

/* GPT-2 (chunked loss over the tied head), BERT (sequence classification, key mask) and T5
 * (encoder and decoder blocks; the decoder's encoder states are a second input; chunked loss
 * over the scaled, tied head): checkpointed gradients equal the plain run's */
START_TEST(other_archs_checkpointed_equal_plain)
{
    static const char *LORA_GPT2 =
        "{\"peft_type\": \"LORA\", \"task_type\": \"CAUSAL_LM\", \"r\": 4, \"lora_alpha\": 8, "
        "\"lora_dropout\": 0.1, \"target_modules\": [\"c_attn\", \"c_proj\", \"c_fc\"], "
        "\"fan_in_fan_out\": true}";
    static const char *LORA_BERT =
        "{\"peft_type\": \"LORA\", \"task_type\": \"SEQ_CLS\", \"r\": 4, \"lora_alpha\": 8, "
        "\"lora_dropout\": 0.1, \"target_modules\": [\"query\", \"value\", \"dense\"]}";
    static const char *LORA_T5 =
        "{\"peft_type\": \"LORA\", \"task_type\": \"SEQ_2_SEQ_LM\", \"r\": 4, \"lora_alpha\": 8, "
        "\"lora_dropout\": 0.1, \"target_modules\": [\"q\", \"k\", \"v\", \"o\", \"wi\", \"wo\"]}";
    const arch_case cases[] = {
        {"hf-peft/_models/gpt2", LORA_GPT2, {.B = 2, .T = 7, .input_ids = IDS, .labels = LAB}, 1},
        {"hf-peft/_models/bert_seqcls", LORA_BERT,
         {.B = 2, .T = 7, .input_ids = IDS, .attention_mask = MASK, .labels = CLS, .labels_len = 1}, 0},
        {"hf-peft/_models/t5", LORA_T5,
         {.B = 2, .T = 7, .input_ids = IDS, .attention_mask = MASK, .labels = LAB}, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        float l0, l1;
        int64_t n0, n1;
        float *a = lora_step_case(&cases[k], NULL, 0, &l0, &n0, NULL);
        float *b = lora_step_case(&cases[k], NULL, 1, &l1, &n1, NULL);
        ck_assert_int_eq(n0, n1);
        double mx = 0;
        for (int64_t i = 0; i < n0; i++) mx = fmax(mx, fabs(a[i]));
        double d = tu_max_abs_diff(a, b, n0);
        printf("%s LoRA: checkpointed%s vs plain: loss %.7f / %.7f, max |dgrad| %.3g of %.3g\n",
               cases[k].dir, cases[k].chunked ? " + chunked loss" : "", l0, l1, d, mx);
        ck_assert(mx > 0);
        ck_assert(fabsf(l0 - l1) <= 1e-6f * fabsf(l0));
        ck_assert(d <= 1e-5 * mx);
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(kbit_prepare_and_merge)
{
    peft_ctx *ctx = peft_ctx_new(1);
    peft_load_options o = {.struct_size = sizeof o, .torch_dtype = "bfloat16", .quant = "nf4"};
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model_ex(ctx, tu_fixture(LLAMA_DIR), &o, &b) == 0, "%s", peft_errmsg(ctx));
    ck_assert_int_eq(peft_prepare_model_for_kbit_training(ctx, b, 1), 0);
    ck_assert_int_eq(peft_model_find_param(b, "model.norm.weight")->t->dtype, PEFT_DTYPE_F32);
    ck_assert_int_eq(peft_model_find_param(b, "model.embed_tokens.weight")->t->dtype, PEFT_DTYPE_BF16);
    ck_assert(b->gradient_checkpointing && b->embed_outputs_require_grad && b->chunked_loss);
    peft_base_model_free(b);
    peft_ctx_free(ctx);

    /* merge_and_unload into the 4-bit base: re-quantized */
    float l;
    int64_t n;
    peft_base_model *merged = NULL;
    free(lora_step("nf4", 1, &l, &n, &merged));
    ck_assert_int_eq(peft_site_get_info(peft_model_find_site(merged, "model.layers.0.self_attn.q_proj"))->weight->dtype,
                     PEFT_DTYPE_NF4);
    peft_base_model_free(merged);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 21);
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, checkpoint_equals_plain);
    tcase_add_test(tc, chunked_ce_equals_full);
    tcase_add_test(tc, llama_checkpointed_equals_plain);
    tcase_add_test(tc, other_archs_checkpointed_equal_plain);
    tcase_add_test(tc, kbit_prepare_and_merge);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}

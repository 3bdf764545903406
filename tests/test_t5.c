/* test_t5.c — T5ForConditionalGeneration against Hugging Face transformers 4.44: base logits
 * (2, 6, 128) and loss on the fixture inputs, decoder inputs built from the labels, the
 * parameter count (fixture and t5-base from config.json alone), parameters and linear sites,
 * the untied head, gated feed-forward and num_decoder_layers checkpoints, the relative position
 * buckets and the bias op's gradient, the prompt-learning hooks driven by the PEFT fixtures'
 * saved prompt_embeddings (no plugin: a small hook provider here), and the errors for bad
 * configs, weights and inputs. Fixture: hf-peft/_models/t5 (d_model 32, d_kv 8, 4 heads, 2+2
 * blocks, d_ff 64, vocab 128, 8 buckets, max distance 20). */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "peft/inputs.h"
#include "peft/model.h"
#include "core/models/t5_attention.h"
#include "core/ops/ops.h"
#include "model_fixture.h"
#include "testutil.h"

#define T5_DIR "hf-peft/_models/t5"
#define BASE_LOSS 4.982657432556152
#define NUM_PARAMS 45504
#define T5_BASE_PARAMS 222903552 /* transformers: T5ForConditionalGeneration(t5-base).num_parameters() */
#define TOL 1e-4

#define ck_assert_has(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

/* ---- helpers ------------------------------------------------------------------------------- */

static peft_inputs load_inputs(void)
{
    peft_inputs in;
    tu_peft_inputs_load(T5_DIR "/inputs.json", &in);
    ck_assert(in.decoder_input_ids && in.labels && in.B == 2 && in.T == 8 && in.Td == 6);
    ck_assert_int_eq(in.labels_len, 6);
    return in;
}

/* a forward pass: malloc'd logits (B*Td*V), the loss (NAN without labels); a graph that records
 * when grads is set (then backward runs from the loss) */
static float *forward(peft_base_model *m, const peft_model_inputs *pin, double *loss, int grads,
                      int64_t *numel)
{
    peft_rng rng;
    peft_rng_seed(&rng, 42);
    peft_graph *g = peft_graph_new(&rng);
    peft_graph_set_recording(g, grads);
    peft_model_outputs out;
    char err[1024] = "";
    ck_assert_msg(m->arch->forward(m, g, pin, &out, err, sizeof err) == 0, "forward: %s", err);
    ck_assert(out.logits && out.logits->ndim == 3 && out.logits->shape[0] == pin->B);
    *numel = out.logits->numel;
    float *r = malloc((size_t)*numel * sizeof *r);
    memcpy(r, out.logits->data, (size_t)*numel * sizeof *r);
    *loss = out.loss ? peft_f32(out.loss)[0] : NAN;
    if (grads) ck_assert_int_eq(peft_graph_backward(g, out.loss), 0);
    peft_graph_free(g);
    return r;
}

static const char *forward_fails(peft_base_model *m, const peft_model_inputs *pin)
{
    static char err[1024];
    peft_rng rng;
    peft_rng_seed(&rng, 1);
    peft_graph *g = peft_graph_new(&rng);
    peft_model_outputs out;
    err[0] = 0;
    ck_assert_int_eq(m->arch->forward(m, g, pin, &out, err, sizeof err), -1);
    ck_assert(err[0]);
    if (getenv("TU_VERBOSE")) printf("  expected error: %s\n", err);
    peft_graph_free(g);
    return err;
}

/* adds a copy of tensor `src` as `name` */
static void add_copy(tu_tensors *ts, const char *src, const char *name)
{
    size_t i = tu_tensors_find(ts, src);
    tu_tensors_add(ts, name, ts->t[i].dtype, ts->t[i].ndim, ts->shapes[i], ts->data[i]);
}

/* a model directory: the fixture config with `patch` merged in (a null is stored as null), and
 * the weights ts (NULL: the fixture's) */
static void write_dir(const char *dir, const char *patch, const tu_tensors *ts)
{
    tu_write_config(T5_DIR, dir, patch, TU_NULL_SETS);
    tu_tensors own = ts ? (tu_tensors){0} : tu_tensors_read(T5_DIR);
    tu_tensors_write(ts ? ts : &own, dir, NULL);
    tu_tensors_free(&own);
}

/* ---- base model ---------------------------------------------------------------------------- */

START_TEST(test_logits_and_loss)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(T5_DIR));
    peft_inputs in = load_inputs();
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    double loss;
    int64_t n, nr;
    float *logits = forward(m, &pin, &loss, 0, &n);
    float *ref = tu_fixture_f32(T5_DIR "/base_logits.safetensors", "logits", &nr);
    ck_assert_int_eq(n, nr);
    ck_assert_int_eq(n, 2 * 6 * 128);
    double diff = tu_max_abs_diff(logits, ref, n);
    printf("t5 base: max |logits - HF| = %.3g, |loss - HF| = %.3g (loss %.7f)\n", diff,
           fabs(loss - BASE_LOSS), loss);
    ck_assert_msg(diff < TOL, "logits differ by %g", diff);
    ck_assert_msg(fabs(loss - BASE_LOSS) < TOL, "loss %.7f vs %.7f", loss, BASE_LOSS);

    /* without labels: same logits, no loss; without the decoder mask and encoder mask rows that
     * are all ones, same too */
    pin.labels = NULL;
    pin.labels_len = 0;
    double l2;
    int64_t n2;
    float *lg2 = forward(m, &pin, &l2, 0, &n2);
    ck_assert(isnan(l2));
    ck_assert(tu_max_abs_diff(lg2, logits, n) == 0.0);
    free(lg2);
    free(logits);
    free(ref);
    peft_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

/* labels alone: the decoder input is labels shifted right (start 0, -100 -> pad 0), which is
 * what the fixture's decoder_input_ids are */
START_TEST(test_decoder_inputs_from_labels)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(T5_DIR));
    peft_inputs in = load_inputs();
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    double l1, l2;
    int64_t n1, n2;
    float *a = forward(m, &pin, &l1, 0, &n1);
    pin.decoder_input_ids = NULL;
    pin.Td = 0;
    float *b = forward(m, &pin, &l2, 0, &n2);
    ck_assert_int_eq(n1, n2);
    ck_assert(tu_max_abs_diff(a, b, n1) == 0.0);
    ck_assert(l1 == l2);
    free(a);
    free(b);
    peft_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

START_TEST(test_params_and_facts)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(T5_DIR));
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++) total += m->params[i].t->numel;
    ck_assert_int_eq(total, NUM_PARAMS);
    ck_assert_str_eq(m->params[0].name, "shared.weight");
    ck_assert_str_eq(m->params[1].name, "encoder.block.0.layer.0.SelfAttention.q.weight");
    ck_assert_str_eq(m->params[5].name,
                     "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    ck_assert_str_eq(m->params[m->n_params - 1].name, "decoder.final_layer_norm.weight");
    ck_assert_ptr_null(peft_model_find_param(m, "lm_head.weight"));
    ck_assert_ptr_null(peft_model_find_param(
        m, "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"));
    ck_assert_ptr_null(peft_model_find_param(
        m, "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"));
    ck_assert_str_eq(peft_model_class(m), "T5ForConditionalGeneration");
    ck_assert_str_eq(peft_model_task(m), "SEQ_2_SEQ_LM");
    ck_assert_ptr_eq(m->word_embeddings, peft_model_find_param(m, "shared.weight")->t);
    ck_assert_int_eq(m->n_layers, 2);
    ck_assert_int_eq(m->n_kv_heads, 4);
    ck_assert_int_eq(m->head_dim, 8);
    ck_assert_int_eq(m->hidden_size, 32);
    ck_assert_int_eq(m->is_encoder_decoder, 1);

    /* the count from config.json alone */
    int64_t n = 0;
    char err[512];
    ck_assert_ptr_nonnull(m->arch->count_params);
    ck_assert_msg(m->arch->count_params(m->config, NULL, &n, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(n, NUM_PARAMS);
    ck_assert_int_eq(m->arch->count_params(m->config, "T5EncoderModel", &n, err, sizeof err), -1);
    ck_assert_has(err, "T5EncoderModel");
    peft_base_model_free(m);

    json_error_t je;
    json_t *cfg = json_load_file(tu_fixture("hf-configs/t5-base/config.json"), 0, &je);
    ck_assert_msg(cfg != NULL, "%s", je.text);
    const peft_arch *a = peft_arch_find("t5");
    ck_assert_msg(a->count_params(cfg, NULL, &n, err, sizeof err) == 0, "%s", err);
    printf("t5-base (hf-configs/t5-base/config.json): %lld parameters\n", (long long)n);
    ck_assert_int_eq(n, T5_BASE_PARAMS);
    /* untied (T5 v1.1 style): the head is its own V x C tensor */
    json_object_set_new(cfg, "tie_word_embeddings", json_false());
    ck_assert(a->count_params(cfg, NULL, &n, err, sizeof err) == 0);
    ck_assert_int_eq(n, T5_BASE_PARAMS + 32128LL * 768);
    json_decref(cfg);
}
END_TEST

/* the linear and Conv1D sites of m in module order (embedding and norm sites left out) */
static size_t linear_sites(const peft_base_model *m, peft_site **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_sites && n < max; i++)
        if (m->sites[i]->info.kind == PEFT_SITE_LINEAR || m->sites[i]->info.kind == PEFT_SITE_CONV1D)
            out[n++] = m->sites[i];
    return n;
}

START_TEST(test_sites)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(T5_DIR));
    /* encoder: 4 attention + wi + wo per block; decoder: 8 attention + wi + wo */
    peft_site *lin[64];
    ck_assert_int_eq(linear_sites(m, lin, 64), 2 * 6 + 2 * 10);
    /* + the T5LayerNorms: 2 per encoder block, 3 per decoder block, 2 final_layer_norm */
    ck_assert_int_eq(m->n_sites, 2 * 6 + 2 * 10 + 2 * 2 + 2 * 3 + 2);
    peft_site *fn = peft_model_find_site(m, "decoder.final_layer_norm");
    ck_assert(fn && fn->info.kind == PEFT_SITE_NORM && fn->info.norm_type == PEFT_NORM_RMS);
    ck_assert_ptr_eq(fn, m->sites[m->n_sites - 1]);
    const struct { const char *name; int layer; int64_t in, out; } want[] = {
        {"encoder.block.0.layer.0.SelfAttention.q", 0, 32, 32},
        {"encoder.block.1.layer.0.SelfAttention.o", 1, 32, 32},
        {"encoder.block.1.layer.1.DenseReluDense.wi", 1, 32, 64},
        {"encoder.block.0.layer.1.DenseReluDense.wo", 0, 64, 32},
        {"decoder.block.0.layer.0.SelfAttention.v", 0, 32, 32},
        {"decoder.block.1.layer.1.EncDecAttention.k", 1, 32, 32},
        {"decoder.block.1.layer.2.DenseReluDense.wo", 1, 64, 32},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        peft_site *s = peft_model_find_site(m, want[i].name);
        ck_assert_msg(s != NULL, "no site %s", want[i].name);
        ck_assert_int_eq(s->info.kind, PEFT_SITE_LINEAR);
        ck_assert_int_eq(s->info.layer_index, want[i].layer);
        ck_assert_int_eq(s->info.in_features, want[i].in);
        ck_assert_int_eq(s->info.out_features, want[i].out);
        ck_assert_int_eq(s->info.fan_in_fan_out, 0);
        ck_assert_ptr_null(s->info.bias);
        ck_assert_str_eq(s->info.model_type, "t5");
    }
    ck_assert_str_eq(lin[0]->info.name, "encoder.block.0.layer.0.SelfAttention.q");
    ck_assert_str_eq(lin[2 * 6 + 2 * 10 - 1]->info.name, "decoder.block.1.layer.2.DenseReluDense.wo");
    ck_assert_ptr_null(peft_model_find_site(m, "lm_head"));
    peft_base_model_free(m);
}
END_TEST

/* tie_word_embeddings false with lm_head = shared: no d_model^-0.5 scaling, so the logits are
 * the tied ones times sqrt(32) */
START_TEST(test_untied_head)
{
    char *dir = tu_tmpdir();
    tu_tensors ts = tu_tensors_read(T5_DIR);
    add_copy(&ts, "shared.weight", "lm_head.weight");
    write_dir(dir, "{\"tie_word_embeddings\": false}", &ts);
    peft_base_model *m = tu_model_load_ok(dir), *ref = tu_model_load_ok(tu_fixture(T5_DIR));
    ck_assert_ptr_nonnull(peft_model_find_param(m, "lm_head.weight"));
    peft_inputs in = load_inputs();
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    double l1, l2;
    int64_t n1, n2;
    float *a = forward(m, &pin, &l1, 0, &n1), *b = forward(ref, &pin, &l2, 0, &n2);
    for (int64_t i = 0; i < n1; i++) b[i] *= sqrtf(32.0f);
    ck_assert_msg(tu_max_abs_diff(a, b, n1) < 1e-5, "diff %g", tu_max_abs_diff(a, b, n1));
    int64_t cnt = 0;
    char err[256];
    ck_assert(m->arch->count_params(m->config, NULL, &cnt, err, sizeof err) == 0);
    ck_assert_int_eq(cnt, NUM_PARAMS + 128 * 32);
    free(a);
    free(b);
    peft_inputs_free(&in);
    peft_base_model_free(m);
    peft_base_model_free(ref);
    /* untied without lm_head.weight */
    write_dir(dir, "{\"tie_word_embeddings\": false}", NULL);
    ck_assert_has(tu_model_load_fails(dir), "lm_head.weight");
    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* gated-gelu (wi_0, wi_1) and a decoder with fewer blocks than the encoder: loads with the
 * right names, counts and runs */
START_TEST(test_gated_and_decoder_layers)
{
    char *dir = tu_tmpdir();
    tu_tensors ts = tu_tensors_read(T5_DIR);
    const char *stacks[2][2] = {{"encoder", "1"}, {"decoder", "2"}};
    char a[128], b[128];
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 2; i++) {
            snprintf(a, sizeof a, "%s.block.%d.layer.%s.DenseReluDense.wi.weight", stacks[s][0], i,
                     stacks[s][1]);
            snprintf(b, sizeof b, "%s.block.%d.layer.%s.DenseReluDense.wi_1.weight", stacks[s][0],
                     i, stacks[s][1]);
            add_copy(&ts, a, b);
            snprintf(b, sizeof b, "%s.block.%d.layer.%s.DenseReluDense.wi_0.weight", stacks[s][0],
                     i, stacks[s][1]);
            tu_tensors_rename(&ts, a, b);
        }
    write_dir(dir, "{\"feed_forward_proj\": \"gated-gelu\", \"dense_act_fn\": \"gelu_new\", "
                   "\"is_gated_act\": true, \"num_decoder_layers\": 1}", &ts);
    peft_base_model *m = tu_model_load_ok(dir);
    ck_assert_ptr_nonnull(peft_model_find_site(m, "encoder.block.1.layer.1.DenseReluDense.wi_0"));
    ck_assert_ptr_nonnull(peft_model_find_site(m, "decoder.block.0.layer.2.DenseReluDense.wi_1"));
    ck_assert_ptr_null(peft_model_find_site(m, "decoder.block.1.layer.0.SelfAttention.q"));
    peft_site *lin[64];
    ck_assert_int_eq(linear_sites(m, lin, 64), 2 * 7 + 11);
    int64_t total = 0, cnt = 0;
    for (size_t i = 0; i < m->n_params; i++) total += m->params[i].t->numel;
    char err[256];
    ck_assert(m->arch->count_params(m->config, NULL, &cnt, err, sizeof err) == 0);
    ck_assert_int_eq(total, cnt);
    peft_inputs in = load_inputs();
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    double loss;
    int64_t n;
    float *lg = forward(m, &pin, &loss, 0, &n);
    for (int64_t i = 0; i < n; i++) ck_assert(isfinite(lg[i]));
    ck_assert(isfinite(loss) && loss > 0);
    free(lg);
    peft_inputs_free(&in);
    peft_base_model_free(m);
    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- relative position buckets and the bias op ------------------------------------------- */

START_TEST(test_buckets)
{
    /* values of transformers' T5Attention._relative_position_bucket */
    const struct { int64_t rel; int bi, nb, md, want; } c[] = {
        {0, 1, 32, 128, 0},    {-1, 1, 32, 128, 1},   {1, 1, 32, 128, 17},  {-7, 1, 32, 128, 7},
        {8, 1, 32, 128, 24},   {-8, 1, 32, 128, 8},   {-20, 1, 32, 128, 10}, {-200, 1, 32, 128, 15},
        {200, 1, 32, 128, 31}, {5, 0, 32, 128, 0},    {-5, 0, 32, 128, 5},  {-15, 0, 32, 128, 15},
        {-16, 0, 32, 128, 16}, {-100, 0, 32, 128, 30}, {-1000, 0, 32, 128, 31},
        {3, 1, 8, 20, 6},      {-3, 1, 8, 20, 2},     {-7, 1, 8, 20, 3},    {-6, 1, 8, 20, 2},
        {-20, 1, 8, 20, 3},    {-4, 0, 8, 20, 4},     {-8, 0, 8, 20, 5},    {-9, 0, 8, 20, 6},
        {-19, 0, 8, 20, 7},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        ck_assert_msg(t5_relative_bucket(c[i].rel, c[i].bi, c[i].nb, c[i].md) == c[i].want,
                      "rel %lld bi %d nb %d md %d: %d, want %d", (long long)c[i].rel, c[i].bi,
                      c[i].nb, c[i].md, t5_relative_bucket(c[i].rel, c[i].bi, c[i].nb, c[i].md),
                      c[i].want);
}
END_TEST

/* L = sum(bias * R) for the bias of table (NB=8, H=3), T=4, S=6, q_off=2 */
static double bias_loss(peft_tensor *table, const float *R, int bidirectional, int record,
                        float *grad_out)
{
    peft_rng rng;
    peft_rng_seed(&rng, 3);
    peft_graph *g = peft_graph_new(&rng);
    peft_graph_set_recording(g, record);
    peft_tensor *b = t5_position_bias(g, table, 4, 6, 2, bidirectional, 8, 20);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->ndim, 3);
    ck_assert(b->shape[0] == 3 && b->shape[1] == 4 && b->shape[2] == 6);
    double L = 0;
    for (int64_t i = 0; i < b->numel; i++) L += (double)peft_f32(b)[i] * R[i];
    if (record) {
        ck_assert_int_eq(b->requires_grad, 1);
        float *go = peft_grad_of(g, b);
        memcpy(go, R, (size_t)b->numel * sizeof *R);
        for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
        memcpy(grad_out, table->grad, (size_t)table->numel * sizeof *grad_out);
    }
    peft_graph_free(g);
    return L;
}

START_TEST(test_bias_op_gradient)
{
    peft_rng r;
    peft_rng_seed(&r, 11);
    peft_tensor *table = peft_tensor_new(PEFT_DTYPE_F32, 2, (int64_t[]){8, 3});
    table->flags |= PEFT_T_PARAM;
    table->requires_grad = 1;
    float R[3 * 4 * 6], grad[24];
    for (int i = 0; i < 24; i++) peft_f32(table)[i] = (float)peft_rng_normal(&r);
    for (int i = 0; i < 72; i++) R[i] = (float)peft_rng_normal(&r);
    for (int bi = 0; bi < 2; bi++) {
        peft_tensor_zero_grad(table);
        bias_loss(table, R, bi, 1, grad);
        for (int j = 0; j < 24; j++) {
            float o = peft_f32(table)[j];
            peft_f32(table)[j] = o + 0.01f;
            double lp = bias_loss(table, R, bi, 0, NULL);
            peft_f32(table)[j] = o - 0.01f;
            double lm = bias_loss(table, R, bi, 0, NULL);
            peft_f32(table)[j] = o;
            double num = (lp - lm) / 0.02;
            ck_assert_msg(fabs(num - grad[j]) <= 1e-3 + 1e-2 * fabs(num),
                          "bidirectional %d elem %d: analytic %g numeric %g", bi, j, grad[j], num);
        }
    }
    /* forward values: bias[h][t][s] = table[bucket(s - t - 2)][h] */
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *b = t5_position_bias(g, table, 4, 6, 2, 0, 8, 20);
    ck_assert_int_eq(b->requires_grad, 0); /* not recording */
    for (int h = 0; h < 3; h++)
        for (int t = 0; t < 4; t++)
            for (int s = 0; s < 6; s++)
                ck_assert(peft_f32(b)[(h * 4 + t) * 6 + s] ==
                          peft_f32(table)[t5_relative_bucket(s - t - 2, 0, 8, 20) * 3 + h]);
    /* bad arguments */
    ck_assert_ptr_null(t5_position_bias(g, table, 4, 6, 0, 0, 16, 20)); /* NB mismatch */
    ck_assert_ptr_null(t5_position_bias(g, table, 0, 6, 0, 0, 8, 20));
    ck_assert_ptr_null(t5_position_bias(g, table, 4, 6, 0, 0, 8, 4));
    peft_graph_free(g);
    peft_tensor_free(table);
}
END_TEST

/* ---- prompt-learning hooks against PEFT's fixtures ------------------------------------------ */

/* A hook provider over a case's saved prompt_embeddings, as the prompt / prefix plugins read
 * them (PEFT 0.13.2): prompt tuning prepends rows 0..P-1 of the (2P, C) table to the encoder;
 * prefix tuning views the (P, 2*L*C) table as (P, 2L, H*D) blocks, concatenates the 2L blocks
 * with themselves and hands decoder layer l blocks 4l..4l+3 (mod 2L) as self k, self v,
 * cross k, cross v. */
typedef struct hook_ud {
    peft_tensor *table; /* f32 param, requires grad */
    int64_t P, C, L;
    int calls_self, calls_cross;
} hook_ud;

static peft_tensor *rows(peft_graph *g, hook_ud *u, int64_t B)
{
    int64_t shape[2] = {B, u->P};
    peft_tensor *ids = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, shape);
    for (int64_t i = 0; i < B * u->P; i++) ((int32_t *)ids->data)[i] = (int32_t)(i % u->P);
    int32_t bad;
    return op_embedding(g, u->table, ids->data, B, u->P, &bad); /* (B, P, width) */
}

static peft_tensor *hook_virtual(void *ud, peft_graph *g, int64_t B)
{
    return rows(g, ud, B);
}

static int hook_prefix(void *ud, peft_graph *g, int stack, int layer, int64_t B, peft_tensor **k,
                       peft_tensor **v)
{
    hook_ud *u = ud;
    ck_assert(stack == 1 || stack == 2);
    if (layer >= u->L) return 1;
    stack == 1 ? u->calls_self++ : u->calls_cross++;
    peft_tensor *all = rows(g, u, B); /* (B, P, 2L*C) */
    int64_t base = 4 * layer + (stack == 2 ? 2 : 0);
    *k = op_slice_lastdim(g, all, (base % (2 * u->L)) * u->C, u->C);
    *v = op_slice_lastdim(g, all, ((base + 1) % (2 * u->L)) * u->C, u->C);
    return 0;
}

/* runs case hf-peft/<name> with its prompt_embeddings; compares logits, loss and (when
 * grad_key is set) the table's gradient with the fixture's */
static void run_prompt_case(const char *name, int prefix, const char *grad_key)
{
    char path[512];
    snprintf(path, sizeof path, "hf-peft/%s/adapter/adapter_model.safetensors", name);
    int64_t nt;
    float *emb = tu_fixture_f32(path, "prompt_embeddings", &nt);
    peft_base_model *m = tu_model_load_ok(tu_fixture(T5_DIR));
    hook_ud u = {0};
    u.P = 5;
    u.C = 32;
    u.L = m->n_layers;
    int64_t width = prefix ? 2 * u.L * u.C : u.C, nrows = nt / width;
    ck_assert_int_eq(nrows, prefix ? 5 : 10);
    u.table = peft_tensor_new(PEFT_DTYPE_F32, 2, (int64_t[]){nrows, width});
    memcpy(u.table->data, emb, (size_t)nt * sizeof *emb);
    u.table->flags |= PEFT_T_PARAM;
    u.table->requires_grad = 1;
    peft_prompt_hooks hooks = {0};
    hooks.ud = &u;
    hooks.n_virtual = 5;
    if (prefix) hooks.layer_prefix = hook_prefix;
    else hooks.virtual_tokens = hook_virtual;
    m->prompt = &hooks;

    snprintf(path, sizeof path, "hf-peft/%s/inputs.json", name);
    peft_inputs in;
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(path), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    double loss;
    int64_t n, nr;
    float *logits = forward(m, &pin, &loss, grad_key != NULL, &n);
    snprintf(path, sizeof path, "hf-peft/%s/peft_logits.safetensors", name);
    float *ref = tu_fixture_f32(path, "logits", &nr);
    ck_assert_int_eq(n, nr);
    double diff = tu_max_abs_diff(logits, ref, n);

    json_error_t je;
    json_t *idx = json_load_file(tu_fixture("hf-peft/INDEX.json"), 0, &je);
    ck_assert(idx);
    double want = NAN;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(idx, "cases"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "case")), name))
            want = json_real_value(json_object_get(c, "loss"));
    json_decref(idx);
    double gdiff = 0;
    if (grad_key) {
        snprintf(path, sizeof path, "hf-peft/%s/grads.safetensors", name);
        int64_t ng;
        float *gref = tu_fixture_f32(path, grad_key, &ng);
        ck_assert_int_eq(ng, nt);
        ck_assert_ptr_nonnull(u.table->grad);
        gdiff = tu_max_abs_diff(u.table->grad, gref, ng);
        free(gref);
    }
    printf("%s: max |logits - PEFT| = %.3g, |loss - PEFT| = %.3g, max |grad - PEFT| = %.3g\n",
           name, diff, fabs(loss - want), gdiff);
    ck_assert_msg(diff < TOL, "%s: logits differ by %g", name, diff);
    ck_assert_msg(fabs(loss - want) < TOL, "%s: loss %.7f vs %.7f", name, loss, want);
    ck_assert_msg(gdiff < TOL, "%s: gradient differs by %g", name, gdiff);
    if (prefix) {
        /* P (5) != encoder length (8): the cross part of the past is ignored, never asked for */
        ck_assert_int_eq(u.calls_self, 2);
        ck_assert_int_eq(u.calls_cross, 0);
    }
    free(logits);
    free(ref);
    free(emb);
    peft_inputs_free(&in);
    peft_tensor_free(u.table);
    m->prompt = NULL;
    peft_base_model_free(m);
}

START_TEST(test_prompt_tuning_fixture)
{
    run_prompt_case("t5__prompt", 0, "prompt_encoder.default.embedding.weight");
}
END_TEST

START_TEST(test_prefix_fixture)
{
    run_prompt_case("t5__prefix", 1, "prompt_encoder.default.embedding.weight");
}
END_TEST

START_TEST(test_prefix_proj_fixture)
{
    /* the saved prompt_embeddings are the MLP's output: logits and loss only */
    run_prompt_case("t5__prefix_proj", 1, NULL);
}
END_TEST

/* P == encoder length: transformers uses the past cross keys/values instead of projecting the
 * encoder states, so the EncDecAttention k/v weights no longer matter */
START_TEST(test_prefix_replaces_cross_attention)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(T5_DIR));
    hook_ud u = {0};
    u.P = 8;
    u.C = 32;
    u.L = 2;
    peft_rng r;
    peft_rng_seed(&r, 5);
    u.table = peft_tensor_new(PEFT_DTYPE_F32, 2, (int64_t[]){8, 128});
    for (int64_t i = 0; i < u.table->numel; i++) peft_f32(u.table)[i] = 0.3f * (float)peft_rng_normal(&r);
    peft_prompt_hooks hooks = {.ud = &u, .n_virtual = 8, .layer_prefix = hook_prefix};
    m->prompt = &hooks;
    peft_inputs in = load_inputs();
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    double l1, l2;
    int64_t n;
    float *a = forward(m, &pin, &l1, 0, &n);
    ck_assert_int_eq(u.calls_cross, 2);
    /* zero the cross-attention k weights: nothing changes */
    peft_site *k0 = peft_model_find_site(m, "decoder.block.0.layer.1.EncDecAttention.k");
    float *w = peft_f32(k0->info.weight), *save = malloc(32 * 32 * sizeof *save);
    memcpy(save, w, 32 * 32 * sizeof *save);
    peft_tensor_make_f32_owned(k0->info.weight, &(void *){NULL}, &(int32_t){0}, &(int){0});
    w = peft_f32(k0->info.weight);
    memset(w, 0, 32 * 32 * sizeof *w);
    float *b = forward(m, &pin, &l2, 0, &n);
    ck_assert(tu_max_abs_diff(a, b, n) == 0.0);
    /* with 7 virtual tokens the cross prefix is ignored and the zeroed weight shows */
    u.P = hooks.n_virtual = 7;
    u.calls_cross = 0;
    free(b);
    b = forward(m, &pin, &l2, 0, &n);
    ck_assert_int_eq(u.calls_cross, 0);
    memcpy(w, save, 32 * 32 * sizeof *save);
    float *c = forward(m, &pin, &l2, 0, &n);
    ck_assert(tu_max_abs_diff(b, c, n) > 1e-6);
    free(a);
    free(b);
    free(c);
    free(save);
    peft_inputs_free(&in);
    peft_tensor_free(u.table);
    m->prompt = NULL;
    peft_base_model_free(m);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

START_TEST(test_bad_configs)
{
    char *dir = tu_tmpdir();
    const struct { const char *patch, *needle; } c[] = {
        {"{\"feed_forward_proj\": \"gated-gelu-x\", \"dense_act_fn\": null}", "feed_forward_proj"},
        {"{\"feed_forward_proj\": \"swiglu-relu\", \"dense_act_fn\": null}", "gated-ACT"},
        {"{\"feed_forward_proj\": \"tanh\", \"dense_act_fn\": null}", "\"tanh\""},
        {"{\"dense_act_fn\": \"quick_gelu\"}", "quick_gelu"},
        {"{\"d_model\": 0}", "d_model"},
        {"{\"num_heads\": \"four\"}", "num_heads"},
        {"{\"relative_attention_num_buckets\": 2}", "relative_attention_num_buckets"},
        {"{\"relative_attention_max_distance\": 2}", "relative_attention_max_distance"},
        {"{\"dropout_rate\": 1.5}", "dropout_rate"},
        {"{\"layer_norm_epsilon\": -1}", "layer_norm_epsilon"},
        {"{\"d_kv\": 16}", "has shape [32, 32], config.json implies [64, 32]"},
        {"{\"is_gated_act\": true}", "wi_0"},
        {"{\"num_layers\": 3}", "encoder.block.2.layer.0.SelfAttention.q.weight"},
        {"{\"vocab_size\": 100}", "shared.weight"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        write_dir(dir, c[i].patch, NULL);
        const char *e = tu_model_load_fails(dir);
        ck_assert_has(e, c[i].needle);
        if (!strstr(c[i].needle, "has shape")) ck_assert_has(e, dir);
    }
    /* a missing relative bias */
    tu_tensors ts = tu_tensors_read(T5_DIR);
    tu_tensors_remove(&ts, "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    write_dir(dir, NULL, &ts);
    ck_assert_has(tu_model_load_fails(dir), "decoder.block.0.layer.0.SelfAttention.relative_attention_bias");
    tu_tensors_free(&ts);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_bad_inputs)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(T5_DIR));
    peft_inputs in = load_inputs();
    peft_model_inputs pin;
    peft_inputs_view(&in, &pin);
    peft_model_inputs p = pin;
    p.decoder_input_ids = NULL;
    p.labels = NULL;
    ck_assert_has(forward_fails(m, &p), "decoder_input_ids or labels");
    p = pin;
    p.labels_len = 5;
    ck_assert_has(forward_fails(m, &p), "labels have 5 tokens");
    p = pin;
    in.decoder_input_ids[3] = 128;
    ck_assert_has(forward_fails(m, &p), "decoder_input_ids[0][3] = 128");
    in.decoder_input_ids[3] = 25;
    in.input_ids[9] = -1;
    ck_assert_has(forward_fails(m, &p), "input_ids[1][1] = -1");
    in.input_ids[9] = 60;
    in.labels[7] = 500;
    ck_assert_has(forward_fails(m, &p), "labels[1][1] = 500");
    in.labels[7] = 100;
    p.B = 0;
    ck_assert_has(forward_fails(m, &p), "B > 0");
    peft_base_model_free(m);

    /* no decoder_start_token_id: labels cannot be shifted */
    char *dir = tu_tmpdir();
    write_dir(dir, "{\"decoder_start_token_id\": null}", NULL);
    m = tu_model_load_ok(dir);
    p = pin;
    p.decoder_input_ids = NULL;
    ck_assert_has(forward_fails(m, &p), "decoder_start_token_id");
    /* with decoder_input_ids it is not needed */
    double loss;
    int64_t n;
    free(forward(m, &pin, &loss, 0, &n));
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);

    /* a prompt hook handing the wrong shape */
    m = tu_model_load_ok(tu_fixture(T5_DIR));
    hook_ud u = {.P = 5, .C = 32, .L = 2};
    u.table = peft_tensor_new(PEFT_DTYPE_F32, 2, (int64_t[]){10, 16});
    peft_prompt_hooks hooks = {.ud = &u, .n_virtual = 5, .virtual_tokens = hook_virtual};
    m->prompt = &hooks;
    ck_assert_has(forward_fails(m, &pin), "virtual tokens are");
    m->prompt = NULL;
    peft_tensor_free(u.table);
    peft_base_model_free(m);
    peft_inputs_free(&in);
}
END_TEST

static Suite *t5_suite(void)
{
    Suite *s = suite_create("t5");
    TCase *tc = tcase_create("t5");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_logits_and_loss);
    tcase_add_test(tc, test_decoder_inputs_from_labels);
    tcase_add_test(tc, test_params_and_facts);
    tcase_add_test(tc, test_sites);
    tcase_add_test(tc, test_untied_head);
    tcase_add_test(tc, test_gated_and_decoder_layers);
    tcase_add_test(tc, test_buckets);
    tcase_add_test(tc, test_bias_op_gradient);
    tcase_add_test(tc, test_prompt_tuning_fixture);
    tcase_add_test(tc, test_prefix_fixture);
    tcase_add_test(tc, test_prefix_proj_fixture);
    tcase_add_test(tc, test_prefix_replaces_cross_attention);
    tcase_add_test(tc, test_bad_configs);
    tcase_add_test(tc, test_bad_inputs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = tu_run_suite(t5_suite());
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* test_quant.c — frozen weights in their storage dtype (core/tensor/quant.c, core/model/
 * storage.c, the tiled linear of core/ops/linear.c): bitsandbytes' NF4 and dynamic-map tables,
 * int8 / NF4 (double quant or not) round trips and error bounds, ranges read back at any offset,
 * the linear op on bf16 / f16 / int8 / NF4 weights equal to the same op on the dequantized f32
 * weight (forward and input gradient, both layouts, GEMV and GEMM paths, several tiles), and
 * models loaded with a load dtype or quantized at load (options and config.json's
 * quantization_config), the output head kept, the error reported. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "fd.h"
#include "model_fixture.h"
#include "peft/dtype.h"
#include "peft/graph.h"
#include "peft/model.h"
#include "core/ops/ops.h"
#include "peft/quant.h"
#include "testutil.h"

#define LLAMA_DIR "hf-peft/_models/llama"

static peft_tensor *rand_w(int64_t r, int64_t c, float scale)
{
    return fd_rand_tensor(2, (int64_t[]){r, c}, scale, 0);
}

START_TEST(tables)
{
    const float *nf4 = peft_nf4_table(), *d8 = peft_dyn8_table();
    ck_assert(nf4[0] == -1.0f && nf4[7] == 0.0f && nf4[15] == 1.0f);
    for (int i = 1; i < 16; i++) ck_assert(nf4[i] > nf4[i - 1]);
    for (int i = 1; i < 256; i++) ck_assert_msg(d8[i] >= d8[i - 1], "dyn8 not sorted at %d", i);
    ck_assert(d8[255] == 1.0f);
    int zero = 0;
    for (int i = 0; i < 256; i++) zero |= d8[i] == 0.0f;
    ck_assert(zero);
    /* the smallest magnitudes are 10^-6 scaled: 0.55e-6 */
    ck_assert(fabsf(d8[0] + 0.99296875f) < 1e-6f); /* -(0.9859375 + 1) / 2 of linspace(0.1, 1, 65) */
}
END_TEST

START_TEST(int8_roundtrip)
{
    peft_tensor *w = rand_w(7, 33, 1.0f);
    double rel;
    peft_tensor *q = peft_tensor_quantize(w, PEFT_DTYPE_INT8, &rel);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(peft_dtype_storage_bytes(PEFT_DTYPE_INT8, 2, w->shape), 7 * 4 + 7 * 33);
    float *d = malloc(sizeof(float) * 7 * 33);
    peft_tensor_to_f32(q, d);
    const float *x = peft_f32(w);
    for (int r = 0; r < 7; r++) {
        float am = 0;
        for (int j = 0; j < 33; j++) am = fmaxf(am, fabsf(x[r * 33 + j]));
        for (int j = 0; j < 33; j++) {
            ck_assert(fabsf(d[r * 33 + j] - x[r * 33 + j]) <= am / 127.0f * 0.5f + 1e-6f);
            /* code * absmax / 127 */
            float code = nearbyintf(x[r * 33 + j] * (127.0f / am));
            ck_assert(fabsf(d[r * 33 + j] - code * (am / 127.0f)) <= 1e-7f);
        }
    }
    ck_assert(rel > 0 && rel < 0.01);
    free(d);
    peft_tensor_free(q);
    peft_tensor_free(w);
}
END_TEST

START_TEST(nf4_roundtrip)
{
    /* values on the NF4 grid (times a block absmax) come back exactly without double quant */
    const float *nf4 = peft_nf4_table();
    peft_tensor *w = peft_tensor_new(PEFT_DTYPE_F32, 2, (int64_t[]){3, 50}); /* 150: 2 blocks + 22 */
    float *x = peft_f32(w);
    for (int i = 0; i < 150; i++) x[i] = nf4[(i * 7) % 16] * (i < 64 ? 2.0f : i < 128 ? 0.5f : 3.0f);
    x[0] = -2.0f; x[64] = 0.5f; x[128] = 3.0f; /* each block's absmax present */
    peft_tensor *q = peft_tensor_quantize(w, PEFT_DTYPE_NF4_F32, NULL);
    float d[150];
    peft_tensor_to_f32(q, d);
    for (int i = 0; i < 150; i++) ck_assert_msg(d[i] == x[i], "nf4 %d: %g != %g", i, d[i], x[i]);
    /* any range reads the same values, odd starts and the partial last block included */
    for (int s = 0; s < 150; s += 13)
        for (int n = 1; s + n <= 150; n += 29) {
            float part[150];
            peft_tensor_range_to_f32(q, s, n, part);
            ck_assert(memcmp(part, d + s, (size_t)n * sizeof(float)) == 0);
        }
    peft_tensor_free(q);
    /* with double quantization the absmaxes are 8-bit: close, not exact */
    double rel;
    q = peft_tensor_quantize(w, PEFT_DTYPE_NF4, &rel);
    ck_assert_uint_eq(peft_dtype_storage_bytes(PEFT_DTYPE_NF4, 2, w->shape), 4 + 4 + 3 + 75);
    peft_tensor_to_f32(q, d);
    ck_assert(rel < 0.02);
    for (int s = 1; s < 150; s += 17) {
        float part[150];
        peft_tensor_range_to_f32(q, s, 150 - s, part);
        ck_assert(memcmp(part, d + s, (size_t)(150 - s) * sizeof(float)) == 0);
    }
    peft_tensor_free(q);
    peft_tensor_free(w);

    /* Gaussian weights: NF4's error is about 10% of the norm, int8's under 1% */
    w = rand_w(64, 256, 0.02f);
    double e4, e4dq, e8;
    peft_tensor *a = peft_tensor_quantize(w, PEFT_DTYPE_NF4_F32, &e4);
    peft_tensor *b = peft_tensor_quantize(w, PEFT_DTYPE_NF4, &e4dq);
    peft_tensor *c = peft_tensor_quantize(w, PEFT_DTYPE_INT8, &e8);
    printf("quantization error on N(0, 0.02) weights: nf4 %.4f, nf4+dq %.4f, int8 %.4f\n", e4, e4dq, e8);
    ck_assert(e4 > 0.05 && e4 < 0.15);
    ck_assert(e4dq >= e4 * 0.99 && e4dq < e4 * 1.05);
    ck_assert(e8 < 0.02);
    /* the stats: the same relative error, the largest |dequant - w| read back by hand */
    peft_quant_stats st;
    peft_tensor *c2 = peft_tensor_quantize_stats(w, PEFT_DTYPE_INT8, &st);
    float *dq = malloc((size_t)w->numel * sizeof(float));
    peft_tensor_to_f32(c2, dq);
    double mx = 0.0, sq = 0.0;
    for (int64_t i = 0; i < w->numel; i++) {
        mx = fmax(mx, fabs((double)dq[i] - peft_f32(w)[i]));
        sq += (double)peft_f32(w)[i] * peft_f32(w)[i];
    }
    ck_assert(st.rel_err == e8 && st.max_abs_err == mx && fabs(st.sq_norm - sq) <= 1e-12 * sq);
    free(dq);
    peft_tensor_free(c2);
    peft_tensor_free(a);
    peft_tensor_free(b);
    peft_tensor_free(c);
    peft_tensor_free(w);
}
END_TEST

/* the vectorised readers: f16 (every bit pattern) against the scalar conversion, NF4 over many
 * blocks (past one run of 256) at any start against the code and absmax read by hand */
START_TEST(range_readers)
{
    peft_tensor *h = peft_tensor_new(PEFT_DTYPE_F32, 1, (int64_t[]){65536});
    free(h->data);
    h->data = malloc(65536 * 2);
    h->dtype = PEFT_DTYPE_F16;
    uint16_t *bits = h->data;
    for (int i = 0; i < 65536; i++) bits[i] = (uint16_t)i;
    float *a = malloc(65536 * sizeof(float)), *b = malloc(65536 * sizeof(float));
    peft_tensor_range_to_f32(h, 0, 65536, a);
    peft_convert_to_f32(PEFT_DTYPE_F16, h->data, b, 65536);
    ck_assert_int_eq(memcmp(a, b, 65536 * sizeof(float)), 0);
    peft_tensor_range_to_f32(h, 777, 1001, a); /* an odd range */
    ck_assert_int_eq(memcmp(a, b + 777, 1001 * sizeof(float)), 0);
    peft_tensor_free(h);

    peft_tensor *w = rand_w(301, 64, 0.02f); /* 301 blocks of 64 */
    peft_tensor *q = peft_tensor_quantize(w, PEFT_DTYPE_NF4_F32, NULL);
    const int64_t n = w->numel, nb = n / PEFT_NF4_BLOCK;
    const float *am = q->data, *nf4 = peft_nf4_table();
    const uint8_t *code = (const uint8_t *)(am + nb);
    for (int64_t e = 0; e < n; e++)
        b[e] = nf4[e & 1 ? code[e >> 1] & 15 : code[e >> 1] >> 4] * am[e / PEFT_NF4_BLOCK];
    const int64_t starts[] = {0, 1, 63, 64, 100, 16385}, lens[] = {n, 1, 2, 64, 17000, 3};
    for (int i = 0; i < 6; i++) {
        const int64_t len = starts[i] + lens[i] > n ? n - starts[i] : lens[i];
        peft_tensor_range_to_f32(q, starts[i], len, a);
        ck_assert_msg(memcmp(a, b + starts[i], (size_t)len * sizeof(float)) == 0,
                      "nf4 range %ld + %ld", (long)starts[i], (long)len);
    }
    peft_tensor_free(q);
    peft_tensor_free(w);
    free(a);
    free(b);
}
END_TEST

/* a tensor of `dtype` holding w's values (rounded / quantized) and its f32 read-back */
static peft_tensor *stored_as(const peft_tensor *w, int32_t dtype, peft_tensor **f32_out)
{
    peft_tensor *t;
    if (peft_dtype_is_quantized(dtype)) {
        t = peft_tensor_quantize(w, dtype, NULL);
    } else {
        t = peft_tensor_new(PEFT_DTYPE_F32, w->ndim, w->shape);
        if (dtype != PEFT_DTYPE_F32) {
            free(t->data);
            t->data = malloc((size_t)w->numel * 2);
            t->dtype = dtype;
        }
        peft_convert_from_f32(dtype, peft_f32(w), t->data, w->numel);
    }
    *f32_out = peft_tensor_new(PEFT_DTYPE_F32, w->ndim, w->shape);
    peft_tensor_to_f32(t, peft_f32(*f32_out));
    return t;
}

/* y and dx of op_linear with weight w vs wf, bias b; relative tolerance */
static void linear_same(peft_tensor *w, peft_tensor *wf, peft_tensor *b, int in_out, int64_t N,
                        int64_t in, const char *what)
{
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){N, in}, 1.0f, 1);
    peft_tensor *y[2];
    float *dx[2];
    for (int k = 0; k < 2; k++) {
        peft_graph *g = peft_graph_new(NULL);
        peft_graph_set_recording(g, 1);
        peft_tensor *yy = op_linear(g, x, k ? wf : w, b, in_out);
        ck_assert_ptr_nonnull(yy);
        y[k] = peft_tensor_new(PEFT_DTYPE_F32, yy->ndim, yy->shape);
        memcpy(y[k]->data, yy->data, (size_t)yy->numel * 4);
        peft_tensor *zt = peft_graph_tensor(g, yy->ndim, yy->shape);
        peft_tensor *s = op_mse(g, yy, peft_f32(zt)); /* gradient 2 y / numel */
        ck_assert_int_eq(peft_graph_backward(g, s), 0);
        dx[k] = malloc((size_t)x->numel * 4);
        memcpy(dx[k], x->grad, (size_t)x->numel * 4);
        peft_tensor_zero_grad(x);
        peft_graph_free(g);
    }
    double scale = 0;
    for (int64_t i = 0; i < y[1]->numel; i++) scale = fmax(scale, fabs(peft_f32(y[1])[i]));
    double d = tu_max_abs_diff(peft_f32(y[0]), peft_f32(y[1]), y[1]->numel);
    ck_assert_msg(d <= 1e-5 * (scale + 1), "%s: y differs by %g (scale %g)", what, d, scale);
    double dd = tu_max_abs_diff(dx[0], dx[1], x->numel);
    ck_assert_msg(dd <= 1e-4, "%s: dx differs by %g", what, dd);
    for (int k = 0; k < 2; k++) { peft_tensor_free(y[k]); free(dx[k]); }
    peft_tensor_free(x);
}

START_TEST(linear_storage_dtypes)
{
    const int32_t dts[] = {PEFT_DTYPE_BF16, PEFT_DTYPE_F16, PEFT_DTYPE_INT8, PEFT_DTYPE_NF4,
                           PEFT_DTYPE_NF4_F32};
    /* 600 x 2048 spans three 2 MB tiles; 40 rows take the GEMM path, 3 the GEMV path */
    for (int layout = 0; layout < 2; layout++)
        for (size_t k = 0; k < sizeof dts / sizeof *dts; k++) {
            const int64_t out = 600, in = layout ? 1000 : 2048;
            peft_tensor *w = layout ? rand_w(in, out, 0.05f) : rand_w(out, in, 0.05f);
            peft_tensor *wf, *ws = stored_as(w, dts[k], &wf);
            peft_tensor *b = fd_rand_tensor(1, (int64_t[]){out}, 0.1f, 0);
            char what[64];
            for (int N = 3; N <= 40; N += 37) {
                snprintf(what, sizeof what, "%s layout %d N %d", peft_dtype_label(dts[k]), layout, N);
                linear_same(ws, wf, N == 3 ? b : NULL, layout, N, in, what);
            }
            peft_tensor_free(ws);
            peft_tensor_free(wf);
            peft_tensor_free(w);
            peft_tensor_free(b);
        }
}
END_TEST

/* ---- models ---------------------------------------------------------------------------------- */

static float *llama_logits(peft_base_model *m, int64_t *n)
{
    int32_t ids[2 * 6] = {1, 5, 9, 33, 70, 2, 4, 8, 15, 16, 23, 42};
    peft_model_inputs in = {.B = 2, .T = 6, .input_ids = ids};
    peft_model_outputs o;
    peft_graph *g = peft_graph_new(NULL);
    char err[512];
    ck_assert_msg(m->arch->forward(m, g, &in, &o, err, sizeof err) == 0, "%s", err);
    *n = o.logits->numel;
    float *r = malloc((size_t)*n * 4);
    memcpy(r, o.logits->data, (size_t)*n * 4);
    peft_graph_free(g);
    return r;
}

static peft_base_model *load_with(const char *dir, const char *dtype, const char *quant)
{
    peft_load_options o = {.struct_size = sizeof o, .torch_dtype = dtype, .quant = quant};
    peft_base_model *m = NULL;
    ck_assert_msg(peft_load_base_model_ex(tu_ctx(), dir, &o, &m) == 0, "%s", peft_errmsg(tu_ctx()));
    return m;
}

START_TEST(model_quantized_at_load)
{
    const char *dir = tu_fixture(LLAMA_DIR);
    const char *qs[] = {"int8", "nf4", "nf4-nodq"};
    const int32_t qd[] = {PEFT_DTYPE_INT8, PEFT_DTYPE_NF4, PEFT_DTYPE_NF4_F32};
    for (int k = 0; k < 3; k++) {
        peft_base_model *q = load_with(dir, NULL, qs[k]);
        peft_base_model *ref = load_with(dir, "float32", NULL);
        int nq = 0;
        for (size_t i = 0; i < q->n_sites; i++) {
            peft_site *s = q->sites[i];
            if (s->info.kind == PEFT_SITE_EMBEDDING || s->info.kind == PEFT_SITE_NORM) {
                ck_assert_int_eq(s->info.weight->dtype, PEFT_DTYPE_F32); /* linear layers only */
                continue;
            }
            if (!strcmp(s->info.name, "lm_head")) {
                ck_assert_int_eq(s->info.weight->dtype, PEFT_DTYPE_F32); /* the head stays */
                continue;
            }
            ck_assert_int_eq(s->info.weight->dtype, qd[k]);
            nq++;
            /* the reference gets the dequantized values */
            peft_tensor *rw = peft_model_find_site(ref, s->info.name)->info.weight;
            void *old;
            int32_t odt;
            int owned;
            ck_assert_int_eq(peft_tensor_make_f32_owned(rw, &old, &odt, &owned), 0);
            peft_tensor_to_f32(s->info.weight, peft_f32(rw));
        }
        ck_assert_int_eq(nq, 14);
        int32_t dt;
        double rel;
        ck_assert_int_eq(peft_base_model_quant_report(q, &dt, &rel), 14);
        ck_assert_int_eq(dt, qd[k]);
        ck_assert(rel > 0 && rel < 0.2);
        ck_assert_uint_lt(peft_base_model_weight_bytes(q), peft_base_model_weight_bytes(ref));
        int64_t n;
        float *a = llama_logits(q, &n), *b = llama_logits(ref, &n);
        ck_assert(tu_max_abs_diff(a, b, n) <= 1e-5);
        free(a);
        free(b);
        peft_base_model_free(q);
        peft_base_model_free(ref);
    }
}
END_TEST

START_TEST(model_quantization_config)
{
    char *dir = tu_tmpdir();
    tu_write_config(LLAMA_DIR, dir, "{\"quantization_config\": {\"quant_method\": \"bitsandbytes\", "
                    "\"load_in_4bit\": true, \"bnb_4bit_quant_type\": \"nf4\", "
                    "\"bnb_4bit_use_double_quant\": true, \"bnb_4bit_compute_dtype\": \"bfloat16\", "
                    "\"llm_int8_skip_modules\": [\"mlp\"]}}", TU_NULL_SETS);
    tu_tensors ts = tu_tensors_read(LLAMA_DIR);
    tu_tensors_write(&ts, dir, NULL);
    tu_tensors_free(&ts);
    peft_base_model *m = load_with(dir, NULL, NULL);
    ck_assert_int_eq(peft_model_find_site(m, "model.layers.0.self_attn.q_proj")->info.weight->dtype,
                     PEFT_DTYPE_NF4);
    ck_assert_int_eq(peft_model_find_site(m, "model.layers.1.mlp.up_proj")->info.weight->dtype,
                     PEFT_DTYPE_F32); /* skipped */
    ck_assert_int_eq(peft_base_model_quant_report(m, NULL, NULL), 8);
    peft_base_model_free(m);
    /* the options win over the config */
    m = load_with(dir, NULL, "none");
    ck_assert_int_eq(peft_base_model_quant_report(m, NULL, NULL), 0);
    peft_base_model_free(m);
    /* fp4 is refused, by name */
    tu_write_config(LLAMA_DIR, dir, "{\"quantization_config\": {\"load_in_4bit\": true, "
                    "\"bnb_4bit_quant_type\": \"fp4\"}}", TU_NULL_SETS);
    const char *e = tu_model_load_fails(dir);
    ck_assert_msg(strstr(e, "fp4") && strstr(e, "bnb_4bit_quant_type"), "%s", e);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(model_load_dtype)
{
    const char *dir = tu_fixture(LLAMA_DIR);
    peft_base_model *a = load_with(dir, NULL, NULL), *b = load_with(dir, "bfloat16", NULL);
    for (size_t i = 0; i < b->n_params; i++)
        ck_assert_int_eq(b->params[i].t->dtype, PEFT_DTYPE_BF16);
    ck_assert_uint_eq(2 * peft_base_model_weight_bytes(b), peft_base_model_weight_bytes(a));
    int64_t n;
    float *x = llama_logits(a, &n), *y = llama_logits(b, &n);
    double d = tu_max_abs_diff(x, y, n);
    ck_assert(d > 0 && d < 5e-2);
    free(x);
    free(y);
    peft_base_model_free(a);
    peft_base_model_free(b);
    peft_load_options o = {.struct_size = sizeof o, .torch_dtype = "float64"};
    ck_assert_int_eq(peft_load_base_model_ex(tu_ctx(), dir, &o, &a), PEFT_EINVAL);
    ck_assert_msg(strstr(peft_errmsg(tu_ctx()), "float64"), "%s", peft_errmsg(tu_ctx()));
}
END_TEST

START_TEST(cli_info_quant)
{
    char *out = NULL;
    int rc = tu_run_peft(&out, "info --model %s --quant nf4", tu_fixture(LLAMA_DIR));
    ck_assert_msg(rc == 0 && strstr(out, "quantization: nf4 (bitsandbytes, 4-bit, blocksize 64, double quant on") &&
                      strstr(out, "), 14 linear layers, relative error"), "%s", out);
    /* and per layer: a table line each, and the JSON array */
    ck_assert_msg(strstr(out, "max abs error") && strstr(out, "  model.layers.1.mlp.down_proj "),
                  "%s", out);
    free(out);
    rc = tu_run_peft(&out, "info --model %s --quant int8 --json", tu_fixture(LLAMA_DIR));
    ck_assert_msg(rc == 0 && strstr(out, "\"per_layer\":[{") &&
                      strstr(out, "\"module\":\"model.layers.0.self_attn.q_proj\"") &&
                      strstr(out, "\"dtype\":\"int8\"") && strstr(out, "\"max_abs_error\":"),
                  "%s", out);
    free(out);
    rc = tu_run_peft(&out, "info --model %s --dtype bfloat16", tu_fixture(LLAMA_DIR));
    ck_assert_msg(rc == 0 && strstr(out, "frozen weights: 0.05 MB"), "%s", out);
    free(out);
    rc = tu_run_peft(&out, "info --model %s --quant fp4", tu_fixture(LLAMA_DIR));
    ck_assert_msg(rc != 0 && strstr(out, "fp4"), "%s", out);
    free(out);
}
END_TEST

/* peft init-model --config for every fixture architecture; the bench configs' sizes */
START_TEST(cli_init_model_config)
{
    const char *archs[] = {"gpt2", "llama", "bert_seqcls", "t5"};
    char *dir = tu_tmpdir();
    for (size_t k = 0; k < sizeof archs / sizeof *archs; k++) {
        char cfg[512], out_dir[600], *out = NULL;
        snprintf(cfg, sizeof cfg, "hf-peft/_models/%s/config.json", archs[k]);
        snprintf(out_dir, sizeof out_dir, "%s/%s", dir, archs[k]);
        int rc = tu_run_peft(&out, "init-model --config %s --out %s --dtype bfloat16 --seed 3",
                             tu_fixture(cfg), out_dir);
        ck_assert_msg(rc == 0 && strstr(out, "wrote a random"), "%s", out);
        free(out);
        peft_base_model *m = tu_model_load_ok(out_dir);
        ck_assert_int_eq(m->params[0].t->dtype, PEFT_DTYPE_BF16);
        if (!strcmp(archs[k], "llama")) { /* N(0, 0.02), the pad row (0) zero, norms 1 */
            peft_tensor *e = peft_model_find_param(m, "model.embed_tokens.weight")->t;
            float *f = malloc(sizeof(float) * e->numel);
            peft_tensor_to_f32(e, f);
            double ss = 0;
            for (int64_t i = 0; i < e->numel; i++) ss += (double)f[i] * f[i];
            for (int64_t j = 0; j < e->shape[1]; j++) ck_assert(f[j] == 0.0f);
            double sd = sqrt(ss / (double)(e->numel - e->shape[1]));
            ck_assert_msg(fabs(sd - 0.02) < 0.002, "embedding sd %g", sd);
            free(f);
            float one[32];
            peft_tensor *nw = peft_model_find_param(m, "model.norm.weight")->t;
            ck_assert_int_eq(nw->numel, 32);
            peft_tensor_to_f32(nw, one);
            ck_assert(one[0] == 1.0f && one[31] == 1.0f);
        }
        peft_base_model_free(m);
    }
    tu_rmtree(dir);
    free(dir);
    /* the real configs of bench/configs: transformers' parameter counts */
    const char *cfgs[][2] = {{"gpt2-124m", "124439808"}, {"llama-3.2-1b", "1235814400"},
                             {"qwen2.5-0.5b", "494032768"}, {"llama-3-8b", "8030261248"}};
    for (int k = 0; k < 4; k++) {
        char *out = NULL;
        int rc = tu_run_peft(&out, "info --config %s/../../bench/configs/%s.json", tu_fixture(""), cfgs[k][0]);
        ck_assert_msg(rc == 0 && strstr(out, cfgs[k][1]), "%s: %s", cfgs[k][0], out);
        free(out);
    }
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 11);
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quant");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tables);
    tcase_add_test(tc, int8_roundtrip);
    tcase_add_test(tc, nf4_roundtrip);
    tcase_add_test(tc, range_readers);
    tcase_add_test(tc, linear_storage_dtypes);
    tcase_add_test(tc, model_quantized_at_load);
    tcase_add_test(tc, model_quantization_config);
    tcase_add_test(tc, model_load_dtype);
    tcase_add_test(tc, cli_info_quant);
    tcase_add_test(tc, cli_init_model_config);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}

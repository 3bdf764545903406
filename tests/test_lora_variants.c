/* test_lora_variants.c — the LoRA variants of the lora plugin against Python PEFT 0.13.2:
 * DoRA (use_dora), PiSSA and OLoRA (init_lora_weights "pissa" / "olora"), and the PiSSA -> LoRA
 * conversion at save time (core/peft_convert.c).
 *
 * Kernel level, on a hand-made linear site: finite-difference gradients of the DoRA forward
 * (x, y, lora_A, lora_B, magnitude; the weight norm held fixed, as PEFT detaches it), DoRA
 * merge == forward and unmerge == inverse, OLoRA/PiSSA init identities (W_res + s B A == W),
 * refusals. Fixture level: the contract table over the dora/pissa cases of the architectures
 * libpeft has, DoRA's magnitude init vs the fixture's initial adapter, PiSSA's residual and
 * s B0 A0 vs PEFT's, and the converted adapter vs PEFT's adapter_converted_lora. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "core/tensor/graph_internal.h"
#include "core/io/cfg.h"
#include "contract.h"
#include "peft/graph.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/convert.h"
#include "core/tuner/registry.h"
#include "peft/safetensors.h"
#include "testutil.h"
#include "peft/warn.h"

/* the fixture cases run here: those of the architectures libpeft implements */
static const char *const dora_cases[] = {"gpt2__dora", "bert_seqcls__dora", "bert_tokcls__dora",
                                         "bert_qa__dora", "llama__dora", "t5__dora", NULL};
static const char *const pissa_cases[] = {"bert_seqcls__pissa", "llama__pissa", "t5__pissa", NULL};

/* ---- a hand-made site ---------------------------------------------------------------------- */

static peft_rng trng;

typedef struct fake {
    peft_site *site;
    const peft_tuner_vtable *vt;
    json_t *cfg;
    void *parsed;
    void *state;
    float *w0; /* the weight (site layout) before injection, f32 */
} fake;

static peft_tensor *rand_t(int ndim, const int64_t *shape, float scale)
{
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++) peft_f32(t)[i] = scale * (float)peft_rng_normal(&trng);
    return t;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* kind PEFT_SITE_LINEAR (weight (out, in)) or PEFT_SITE_CONV1D ((in, out)); dtype F32 or BF16 */
static void fake_site(fake *f, int kind, int dtype, int64_t in, int64_t out)
{
    memset(f, 0, sizeof *f);
    peft_site *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    const int64_t ws[2] = {kind == PEFT_SITE_CONV1D ? in : out, kind == PEFT_SITE_CONV1D ? out : in};
    const int64_t bs[1] = {out};
    peft_tensor *w = rand_t(2, ws, 0.5f);
    f->w0 = malloc((size_t)w->numel * sizeof(float));
    if (dtype == PEFT_DTYPE_BF16) {
        peft_tensor *wb = peft_tensor_new(PEFT_DTYPE_BF16, 2, ws);
        for (int64_t i = 0; i < w->numel; i++) ((uint16_t *)wb->data)[i] = to_bf16(peft_f32(w)[i]);
        peft_tensor_free(w);
        w = wb;
    }
    peft_tensor_to_f32(w, f->w0);
    s->info = (peft_site_info){.struct_size = sizeof(peft_site_info), .kind = kind,
                               .name = "layers.0.proj", .model_type = "test",
                               .in_features = in, .out_features = out,
                               .fan_in_fan_out = kind == PEFT_SITE_CONV1D, .layer_index = 0,
                               .weight = w, .bias = rand_t(1, bs, 0.1f)};
    f->site = s;
    char err[512];
    f->vt = peft_registry_get("lora", err, sizeof err);
    ck_assert_msg(f->vt != NULL, "%s", err);
}

/* parse config_json and inject; returns 0, or -1 with the plugin's message in err */
static int fake_inject(fake *f, const char *config_json, char *err, size_t errlen)
{
    f->cfg = json_loads(config_json, 0, NULL);
    ck_assert_ptr_nonnull(f->cfg);
    peft_cfg pc = {f->cfg};
    if (f->vt->config_parse(&pc, &f->parsed, err, errlen)) return -1;
    f->state = f->vt->inject(f->parsed, &pc, &f->site->info, "default", &trng, err, errlen);
    return f->state ? 0 : -1;
}

static void fake_free(fake *f)
{
    if (f->state) f->vt->destroy(f->state);
    if (f->parsed) f->vt->config_free(f->parsed);
    json_decref(f->cfg);
    peft_tensor_free(f->site->info.weight);
    peft_tensor_free(f->site->info.bias);
    free(f->site);
    free(f->w0);
}

/* central differences (step 1e-2) of sum(forward(x, y)) against the analytic gradients already
 * in ts[t]->grad, for every element of the n tensors */
static void fd_sum_of_outputs(fake *f, peft_graph *g, peft_tensor *x, peft_tensor *y, peft_tensor *const *ts,
                              const char *const *names, int n, const char *what)
{
    for (int t = 0; t < n; t++)
        for (int64_t j = 0; j < ts[t]->numel; j++) {
            float *p = peft_f32(ts[t]);
            const float o = p[j];
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                p[j] = o + (sgn ? -1e-2f : 1e-2f);
                peft_graph_reset(g);
                peft_graph_set_recording(g, 0);
                peft_tensor *ot = f->vt->forward(f->state, g, &f->site->info, x, y);
                l[sgn] = 0;
                for (int64_t i = 0; i < ot->numel; i++) l[sgn] += peft_f32(ot)[i];
            }
            p[j] = o;
            const double num = (l[0] - l[1]) / 2e-2, ana = ts[t]->grad[j];
            ck_assert_msg(fabs(num - ana) <= 2e-3 + 2e-3 * fabs(num), "%s d%s[%ld]: %g vs %g", what, names[t],
                          (long)j, ana, num);
        }
}


/* the adapter's tensors: 0 A (r, in), 1 B (out, r), 2 magnitude (out) or NULL */
static peft_tensor *param(fake *f, int i)
{
    peft_param_ref refs[4];
    int n = f->vt->state_dict(f->state, refs, 4);
    return i < n ? refs[i].tensor : NULL;
}

/* W (out, in) element of a weight stored in the site's layout */
static double w_at(const fake *f, const float *w, int64_t o, int64_t j)
{
    const peft_site_info *si = &f->site->info;
    return si->kind == PEFT_SITE_CONV1D ? w[j * si->out_features + o] : w[o * si->in_features + j];
}

/* (s B A)[o][j] in double */
static double sba(fake *f, double s, int64_t o, int64_t j)
{
    peft_tensor *A = param(f, 0), *B = param(f, 1);
    const int64_t r = A->shape[0], in = A->shape[1];
    double acc = 0;
    for (int64_t k = 0; k < r; k++) acc += (double)peft_f32(B)[o * r + k] * peft_f32(A)[k * in + j];
    return s * acc;
}

/* ---- DoRA: finite-difference gradients ------------------------------------------------------ */

typedef struct dora_case {
    int kind, dtype;
} dora_case;

static const dora_case dora_kernel_cases[] = {
    {PEFT_SITE_LINEAR, PEFT_DTYPE_F32},
    {PEFT_SITE_CONV1D, PEFT_DTYPE_F32},
    {PEFT_SITE_LINEAR, PEFT_DTYPE_BF16},
};

#define N_ROWS 4
#define IN 6
#define OUT 5
#define R 3
#define S_DORA 2.0 /* lora_alpha 6 / r 3 */

/* the weight (site layout) as f32 */
static void cur_weight(fake *f, float *w)
{
    peft_tensor_to_f32(f->site->info.weight, w);
}

/* double reference of the DoRA output with a given (frozen) norm: L = sum(out * Rw) */
static double dora_ref_loss(fake *f, const float *x, const float *y, const double *norm,
                            const float *Rw)
{
    peft_tensor *A = param(f, 0), *B = param(f, 1), *M = param(f, 2);
    float w[IN * OUT];
    cur_weight(f, w);
    double L = 0;
    for (int i = 0; i < N_ROWS; i++) {
        double xa[R];
        for (int k = 0; k < R; k++) {
            xa[k] = 0;
            for (int j = 0; j < IN; j++) xa[k] += (double)x[i * IN + j] * peft_f32(A)[k * IN + j];
        }
        for (int o = 0; o < OUT; o++) {
            double base = 0, lora = 0;
            for (int j = 0; j < IN; j++) base += (double)x[i * IN + j] * w_at(f, w, o, j);
            for (int k = 0; k < R; k++) lora += xa[k] * peft_f32(B)[o * R + k];
            const double fo = peft_f32(M)[o] / norm[o];
            const double out = y[i * OUT + o] + (fo - 1) * base + fo * S_DORA * lora;
            L += out * Rw[i * OUT + o];
        }
    }
    return L;
}

static void dora_norm(fake *f, double *norm)
{
    float w[IN * OUT];
    cur_weight(f, w);
    for (int o = 0; o < OUT; o++) {
        double acc = 0;
        for (int j = 0; j < IN; j++) {
            double v = w_at(f, w, o, j) + sba(f, S_DORA, o, j);
            acc += v * v;
        }
        norm[o] = sqrt(acc);
    }
}

START_TEST(dora_kernel_grads)
{
    const dora_case *dc = &dora_kernel_cases[_i];
    peft_rng_seed(&trng, 100 + (uint64_t)_i);
    fake f;
    fake_site(&f, dc->kind, dc->dtype, IN, OUT);
    char err[512];
    ck_assert_msg(fake_inject(&f, "{\"r\": 3, \"lora_alpha\": 6, \"use_dora\": true, "
                                  "\"init_lora_weights\": false}", err, sizeof err) == 0, "%s", err);
    peft_tensor *A = param(&f, 0), *B = param(&f, 1), *M = param(&f, 2);
    ck_assert_ptr_nonnull(M);
    ck_assert_int_eq(M->numel, OUT);
    /* init: m = ||W + s B A||_row */
    double norm[OUT];
    dora_norm(&f, norm);
    for (int o = 0; o < OUT; o++)
        ck_assert_msg(fabs(peft_f32(M)[o] - norm[o]) <= 1e-5 * norm[o], "m[%d] %g, norm %g", o,
                      peft_f32(M)[o], norm[o]);
    for (int o = 0; o < OUT; o++) peft_f32(M)[o] *= (float)(1.0 + 0.3 * peft_rng_normal(&trng));

    const int64_t xs[2] = {N_ROWS, IN}, ys[2] = {N_ROWS, OUT};
    peft_tensor *x = rand_t(2, xs, 1.0f), *y = rand_t(2, ys, 1.0f);
    x->requires_grad = y->requires_grad = 1;
    float Rw[N_ROWS * OUT];
    for (int i = 0; i < N_ROWS * OUT; i++) Rw[i] = (float)peft_rng_normal(&trng);

    /* analytic: forward + backward of sum(out * Rw) */
    peft_rng gr;
    peft_rng_seed(&gr, 1);
    peft_graph *g = peft_graph_new(&gr);
    peft_graph_set_recording(g, 1);
    peft_tensor *out = f.vt->forward(f.state, g, &f.site->info, x, y);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(out->requires_grad, 1);
    /* forward vs the double reference */
    double Lk = 0;
    for (int i = 0; i < N_ROWS * OUT; i++) Lk += (double)peft_f32(out)[i] * Rw[i];
    double Lr = dora_ref_loss(&f, peft_f32(x), peft_f32(y), norm, Rw);
    ck_assert_msg(fabs(Lk - Lr) <= 1e-4 * (1 + fabs(Lr)), "forward %g, reference %g", Lk, Lr);
    float *go = peft_grad_of(g, out);
    memcpy(go, Rw, sizeof Rw);
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    peft_graph_free(g);

    /* numeric: central differences of the reference with the norm held fixed (detached) */
    peft_tensor *ts[5] = {x, y, A, B, M};
    const char *names[5] = {"x", "y", "lora_A", "lora_B", "magnitude"};
    const double eps = 1e-3;
    for (int t = 0; t < 5; t++) {
        ck_assert_msg(ts[t]->grad != NULL, "no gradient for %s", names[t]);
        float *p = peft_f32(ts[t]);
        for (int64_t j = 0; j < ts[t]->numel; j++) {
            const float o = p[j];
            p[j] = (float)(o + eps);
            const double hp = (double)p[j] - o;
            const double lp = dora_ref_loss(&f, peft_f32(x), peft_f32(y), norm, Rw);
            p[j] = (float)(o - eps);
            const double hm = o - (double)p[j];
            const double lm = dora_ref_loss(&f, peft_f32(x), peft_f32(y), norm, Rw);
            p[j] = o;
            const double num = (lp - lm) / (hp + hm), ana = ts[t]->grad[j];
            ck_assert_msg(fabs(num - ana) <= 1e-4 + 1e-3 * fabs(num),
                          "case %d: d/d%s[%ld]: analytic %.7g, numeric %.7g", _i, names[t], (long)j,
                          ana, num);
        }
    }
    peft_tensor_free(x);
    peft_tensor_free(y);
    fake_free(&f);
}
END_TEST

/* x and the magnitude do not move the norm: FD straight through the kernel agrees too */
START_TEST(dora_kernel_fd_direct)
{
    peft_rng_seed(&trng, 7);
    fake f;
    fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_F32, IN, OUT);
    char err[512];
    ck_assert_msg(fake_inject(&f, "{\"r\": 3, \"lora_alpha\": 6, \"use_dora\": true, "
                                  "\"init_lora_weights\": false}", err, sizeof err) == 0, "%s", err);
    peft_tensor *M = param(&f, 2);
    for (int o = 0; o < OUT; o++) peft_f32(M)[o] *= 1.2f;
    const int64_t xs[2] = {N_ROWS, IN}, ys[2] = {N_ROWS, OUT};
    peft_tensor *x = rand_t(2, xs, 1.0f), *y = rand_t(2, ys, 1.0f);
    x->requires_grad = 1;
    peft_rng gr;
    peft_rng_seed(&gr, 1);
    peft_graph *g = peft_graph_new(&gr);
    peft_graph_set_recording(g, 1);
    peft_tensor *out = f.vt->forward(f.state, g, &f.site->info, x, y);
    float *go = peft_grad_of(g, out);
    for (int64_t i = 0; i < out->numel; i++) go[i] = 1.0f;
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    peft_tensor *ts[2] = {x, M};
    const char *names[2] = {"x", "magnitude"};
    fd_sum_of_outputs(&f, g, x, y, ts, names, 2, "dora");
    peft_graph_free(g);
    peft_tensor_free(x);
    peft_tensor_free(y);
    fake_free(&f);
}
END_TEST

/* merge: the merged weight's plain output equals the unmerged DoRA output; unmerge inverts */
START_TEST(dora_merge_roundtrip)
{
    const int kinds[2] = {PEFT_SITE_LINEAR, PEFT_SITE_CONV1D};
    peft_rng_seed(&trng, 200 + (uint64_t)_i);
    fake f;
    fake_site(&f, kinds[_i], PEFT_DTYPE_F32, IN, OUT);
    char err[512];
    ck_assert_msg(fake_inject(&f, "{\"r\": 3, \"lora_alpha\": 6, \"use_dora\": true, "
                                  "\"init_lora_weights\": false}", err, sizeof err) == 0, "%s", err);
    peft_tensor *M = param(&f, 2);
    for (int o = 0; o < OUT; o++) peft_f32(M)[o] *= (float)(1.0 + 0.3 * peft_rng_normal(&trng));
    const int64_t xs[2] = {N_ROWS, IN};
    peft_tensor *x = rand_t(2, xs, 1.0f);
    peft_rng gr;
    peft_rng_seed(&gr, 1);
    peft_graph *g = peft_graph_new(&gr);
    /* y = base(x) = x W^T + b */
    const int64_t ys[2] = {N_ROWS, OUT};
    peft_tensor *y = peft_tensor_new(PEFT_DTYPE_F32, 2, ys);
    const float *w = peft_f32(f.site->info.weight), *b = peft_f32(f.site->info.bias);
    for (int i = 0; i < N_ROWS; i++)
        for (int o = 0; o < OUT; o++) {
            double acc = b[o];
            for (int j = 0; j < IN; j++) acc += peft_f32(x)[i * IN + j] * w_at(&f, w, o, j);
            peft_f32(y)[i * OUT + o] = (float)acc;
        }
    peft_tensor *out = f.vt->forward(f.state, g, &f.site->info, x, y);
    ck_assert_ptr_nonnull(out);

    float wm[IN * OUT], orig[IN * OUT];
    memcpy(wm, w, sizeof wm);
    memcpy(orig, w, sizeof orig);
    ck_assert_msg(f.vt->merge(f.state, &f.site->info, wm, NULL, +1, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < N_ROWS; i++)
        for (int o = 0; o < OUT; o++) {
            double acc = b[o];
            for (int j = 0; j < IN; j++) acc += peft_f32(x)[i * IN + j] * w_at(&f, wm, o, j);
            ck_assert_msg(fabs(acc - peft_f32(out)[i * OUT + o]) <= 1e-5,
                          "merged %g, unmerged %g", acc, peft_f32(out)[i * OUT + o]);
        }
    ck_assert_msg(f.vt->merge(f.state, &f.site->info, wm, NULL, -1, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(tu_max_abs_diff(wm, orig, IN * OUT) <= 1e-6, "unmerge is off by %g",
                  tu_max_abs_diff(wm, orig, IN * OUT));
    peft_graph_free(g);
    peft_tensor_free(x);
    peft_tensor_free(y);
    fake_free(&f);
}
END_TEST

/* ---- OLoRA / PiSSA on a hand-made site ------------------------------------------------------ */

/* shapes: out > in, out < in, square */
static const int64_t svd_shapes[3][2] = {{7, 5}, {4, 9}, {6, 6}};

/* W_res + s B A == W (the original), to 1e-5 */
static void check_identity(fake *f, double s)
{
    const peft_site_info *si = &f->site->info;
    ck_assert_int_eq(si->weight->dtype, PEFT_DTYPE_F32);
    const float *wr = peft_f32(si->weight);
    double worst = 0;
    for (int64_t o = 0; o < si->out_features; o++)
        for (int64_t j = 0; j < si->in_features; j++) {
            double d = fabs(w_at(f, wr, o, j) + sba(f, s, o, j) - w_at(f, f->w0, o, j));
            if (d > worst) worst = d;
        }
    ck_assert_msg(worst <= 1e-5, "W_res + s B A differs from W by %g", worst);
}

START_TEST(olora_init_identity)
{
    peft_rng_seed(&trng, 300 + (uint64_t)_i);
    fake f;
    const int64_t in = svd_shapes[_i][1], out = svd_shapes[_i][0];
    fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_F32, in, out);
    char err[512];
    ck_assert_msg(fake_inject(&f, "{\"r\": 3, \"lora_alpha\": 6, \"init_lora_weights\": \"olora\"}",
                              err, sizeof err) == 0, "%s", err);
    check_identity(&f, 2.0);
    peft_tensor *A = param(&f, 0), *B = param(&f, 1);
    /* B = Q[:, :r]: orthonormal columns; A = R[:r]: upper triangular */
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) {
            double dot = 0;
            for (int64_t o = 0; o < out; o++) dot += (double)peft_f32(B)[o * 3 + a] * peft_f32(B)[o * 3 + c];
            ck_assert_msg(fabs(dot - (a == c)) <= 1e-5, "Q^T Q [%d][%d] = %g", a, c, dot);
        }
    for (int k = 0; k < 3; k++)
        for (int64_t j = 0; j < k; j++) ck_assert(peft_f32(A)[k * in + j] == 0.0f);

    /* the site's output at init equals the base output x W^T + b */
    const int64_t xs[2] = {2, in}, ys[2] = {2, out};
    peft_tensor *x = rand_t(2, xs, 1.0f), *y = peft_tensor_new(PEFT_DTYPE_F32, 2, ys);
    const float *wr = peft_f32(f.site->info.weight), *b = peft_f32(f.site->info.bias);
    for (int i = 0; i < 2; i++)
        for (int64_t o = 0; o < out; o++) {
            double acc = b[o];
            for (int64_t j = 0; j < in; j++) acc += peft_f32(x)[i * in + j] * w_at(&f, wr, o, j);
            peft_f32(y)[i * out + o] = (float)acc;
        }
    peft_rng gr;
    peft_rng_seed(&gr, 1);
    peft_graph *g = peft_graph_new(&gr);
    peft_graph_set_recording(g, 1);
    peft_tensor *o_t = f.vt->forward(f.state, g, &f.site->info, x, y);
    for (int i = 0; i < 2; i++)
        for (int64_t o = 0; o < out; o++) {
            double acc = b[o];
            for (int64_t j = 0; j < in; j++) acc += peft_f32(x)[i * in + j] * w_at(&f, f.w0, o, j);
            ck_assert_msg(fabs(acc - peft_f32(o_t)[i * out + o]) <= 1e-5, "init output %g, base %g",
                          peft_f32(o_t)[i * out + o], acc);
        }
    /* FD gradients of sum(out) w.r.t. A and B */
    float *go = peft_grad_of(g, o_t);
    for (int64_t i = 0; i < o_t->numel; i++) go[i] = 1.0f;
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    peft_tensor *ts[2] = {A, B};
    const char *names[2] = {"A", "B"};
    fd_sum_of_outputs(&f, g, x, y, ts, names, 2, "olora");
    peft_graph_free(g);
    peft_tensor_free(x);
    peft_tensor_free(y);
    fake_free(&f);
}
END_TEST

START_TEST(pissa_init_identity)
{
    peft_rng_seed(&trng, 400 + (uint64_t)_i);
    fake f;
    const int64_t in = svd_shapes[_i][1], out = svd_shapes[_i][0];
    fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_F32, in, out);
    char err[512];
    ck_assert_msg(fake_inject(&f, "{\"r\": 3, \"lora_alpha\": 6, \"use_rslora\": true, "
                                  "\"init_lora_weights\": \"pissa\"}", err, sizeof err) == 0, "%s", err);
    const double s = 6.0 / sqrt(3.0);
    check_identity(&f, s);
    /* A A^T == B^T B == diag(S_r / s), decreasing */
    peft_tensor *A = param(&f, 0), *B = param(&f, 1);
    double prev = INFINITY;
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++) {
            double aa = 0, bb = 0;
            for (int64_t j = 0; j < in; j++) aa += (double)peft_f32(A)[a * in + j] * peft_f32(A)[c * in + j];
            for (int64_t o = 0; o < out; o++) bb += (double)peft_f32(B)[o * 3 + a] * peft_f32(B)[o * 3 + c];
            ck_assert_msg(fabs(aa - bb) <= 1e-5 * (1 + fabs(aa)), "A A^T %g, B^T B %g", aa, bb);
            if (a != c) ck_assert_msg(fabs(aa) <= 1e-5, "A A^T [%d][%d] = %g", a, c, aa);
            if (a == c) {
                ck_assert(aa <= prev + 1e-6);
                prev = aa;
            }
        }
    fake_free(&f);
}
END_TEST

/* bf16 base: the residual is rounded to bf16 values, as PEFT's weight.to(dtype) */
START_TEST(pissa_bf16_residual_rounded)
{
    peft_rng_seed(&trng, 450);
    fake f;
    fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_BF16, 6, 5);
    char err[512];
    ck_assert_msg(fake_inject(&f, "{\"r\": 2, \"lora_alpha\": 4, \"init_lora_weights\": \"pissa\"}",
                              err, sizeof err) == 0, "%s", err);
    const peft_tensor *w = f.site->info.weight;
    ck_assert_int_eq(w->dtype, PEFT_DTYPE_F32);
    for (int64_t i = 0; i < w->numel; i++) {
        uint32_t u;
        memcpy(&u, &peft_f32(w)[i], 4);
        ck_assert_msg((u & 0xffffu) == 0, "residual element %ld is not a bf16 value", (long)i);
    }
    fake_free(&f);
}
END_TEST

static char warned[1024];
static void catch_warning(const char *msg, void *ud)
{
    (void)ud;
    snprintf(warned, sizeof warned, "%s", msg);
}

START_TEST(svd_inits_refusals)
{
    char err[512];
    fake f;
    /* Conv1D: PEFT 0.13.2 fails there */
    const char *inits[2] = {"pissa", "olora"};
    for (int k = 0; k < 2; k++) {
        peft_rng_seed(&trng, 500);
        fake_site(&f, PEFT_SITE_CONV1D, PEFT_DTYPE_F32, 6, 5);
        char cfg[256];
        snprintf(cfg, sizeof cfg, "{\"r\": 2, \"init_lora_weights\": \"%s\"}", inits[k]);
        ck_assert_int_eq(fake_inject(&f, cfg, err, sizeof err), -1);
        ck_assert_msg(strstr(err, "Conv1D") && strstr(err, "layers.0.proj"), "%s", err);
        /* nothing was written into the base weight */
        ck_assert(memcmp(peft_f32(f.site->info.weight), f.w0, 30 * sizeof(float)) == 0);
        fake_free(&f);
    }
    /* r beyond the rank */
    fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_F32, 6, 3);
    ck_assert_int_eq(fake_inject(&f, "{\"r\": 4, \"init_lora_weights\": \"pissa\"}", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "r = 4") && strstr(err, "min(in, out) = 3"), "%s", err);
    fake_free(&f);
    /* malformed niter */
    const char *bad[3] = {"pissa_niter_", "pissa_niter_x", "pissaa"};
    for (int k = 0; k < 3; k++) {
        fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_F32, 6, 5);
        char cfg[256];
        snprintf(cfg, sizeof cfg, "{\"r\": 2, \"init_lora_weights\": \"%s\"}", bad[k]);
        ck_assert_int_eq(fake_inject(&f, cfg, err, sizeof err), -1);
        ck_assert_msg(strstr(err, "pissa_niter_[number of iters]") && strstr(err, bad[k]), "%s", err);
        fake_free(&f);
    }
    /* pissa_niter_<n>: the exact SVD, with a warning saying so */
    warned[0] = 0;
    peft_set_warning_handler(catch_warning, NULL);
    fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_F32, 6, 5);
    ck_assert_msg(fake_inject(&f, "{\"r\": 2, \"lora_alpha\": 4, \"init_lora_weights\": \"pissa_niter_4\"}",
                              err, sizeof err) == 0, "%s", err);
    peft_set_warning_handler(NULL, NULL);
    ck_assert_msg(strstr(warned, "exact SVD"), "warning: %s", warned);
    check_identity(&f, 2.0);
    fake_free(&f);
    /* DoRA with a megatron_config */
    fake_site(&f, PEFT_SITE_LINEAR, PEFT_DTYPE_F32, 6, 5);
    ck_assert_int_eq(fake_inject(&f, "{\"use_dora\": true, \"megatron_config\": {\"a\": 1}}", err,
                                 sizeof err), -1);
    ck_assert_msg(strstr(err, "megatron"), "%s", err);
    fake_free(&f);
}
END_TEST

/* ---- fixtures ------------------------------------------------------------------------------- */

static json_t *index_case(const char *name)
{
    static json_t *idx;
    if (!idx) idx = json_load_file(tu_fixture("hf-peft/INDEX.json"), 0, NULL);
    ck_assert_ptr_nonnull(idx);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(idx, "cases"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "case")), name)) return c;
    ck_abort_msg("no case %s", name);
    return NULL;
}

/* a PEFT model from the case's base and `config` (a JSON object), with adapter "default" */
static peft_model *model_with_config(peft_ctx *ctx, const char *case_name, json_t *config)
{
    char rel[512];
    json_t *e = index_case(case_name);
    snprintf(rel, sizeof rel, "hf-peft/%s", json_string_value(json_object_get(e, "base_model_dir")));
    peft_base_model *base;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &base) == 0, "%s", peft_errmsg(ctx));
    char *text = json_dumps(config, JSON_COMPACT);
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, base, text, "default", 0, &m) == 0, "%s: %s", case_name,
                  peft_errmsg(ctx));
    free(text);
    return m;
}

static const peft_tensor *sd_find(const peft_state_dict *sd, const char *key)
{
    for (size_t i = 0; i < sd->n; i++)
        if (!strcmp(sd->names[i], key)) return sd->tensors[i];
    return NULL;
}

static const char *const *fixture_cases;     /* through the contract table */
static const char *const *fixture_cases_all; /* dora and pissa */

START_TEST(contract_case)
{
    contract_run_case(fixture_cases[_i]);
}
END_TEST

/* DoRA: lora_magnitude_vector at init = ||W||_row (B = 0) vs PEFT's adapter_init */
START_TEST(dora_magnitude_init)
{
    const char *cn = dora_cases[_i];
    char rel[512];
    peft_ctx *ctx = peft_ctx_new(0);
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter_init/adapter_config.json", cn);
    json_t *cfg = json_load_file(tu_fixture(rel), 0, NULL);
    ck_assert_ptr_nonnull(cfg);
    json_object_set_new(cfg, "inference_mode", json_false());
    peft_model *m = model_with_config(ctx, cn, cfg);
    json_decref(cfg);
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "default", &sd) == 0);
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter_init/adapter_model.safetensors", cn);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    int n_mag = 0;
    double worst = 0;
    for (size_t i = 0; i < f->n_entries; i++) {
        const peft_st_entry *e = &f->entries[i];
        const peft_tensor *t = sd_find(sd, e->name);
        ck_assert_msg(t, "%s: no tensor %s in the adapter", cn, e->name);
        ck_assert_int_eq((int64_t)(e->nbytes / 4), t->numel);
        if (!strstr(e->name, "lora_magnitude_vector")) continue;
        n_mag++;
        double d = tu_max_abs_diff((const float *)e->data, peft_f32(t), t->numel);
        if (d > worst) worst = d;
    }
    ck_assert_int_eq(sd->n, f->n_entries);
    ck_assert_int_gt(n_mag, 0);
    ck_assert_msg(worst <= 1e-6, "%s: magnitude init differs from PEFT's by %g", cn, worst);
    fprintf(stderr, "%s: DoRA magnitude init vs PEFT: max diff %.3g over %d vectors\n", cn, worst,
            n_mag);
    peft_st_close(f);
    peft_state_dict_free(sd);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* "<prefix><module>.base_layer.weight" -> the base parameter "<module>.weight" */
static const peft_tensor *base_weight(peft_model *m, const char *key)
{
    const char *p = strstr(key, "base_model.model.") == key ? key + 17 : key;
    char name[512];
    snprintf(name, sizeof name, "%s", p);
    char *bl = strstr(name, ".base_layer.weight");
    ck_assert_ptr_nonnull(bl);
    strcpy(bl, ".weight");
    peft_base_model *b = peft_get_base_model(m);
    for (size_t i = 0; i < b->n_params; i++)
        if (!strcmp(b->params[i].name, name)) return b->params[i].t;
    ck_abort_msg("no base parameter %s", name);
    return NULL;
}

/* PiSSA init: the residual base weights and s B0 A0 vs PEFT's (singular vector signs differ, so
 * the products are compared) */
START_TEST(pissa_init_vs_fixture)
{
    const char *cn = pissa_cases[_i];
    char rel[512];
    peft_ctx *ctx = peft_ctx_new(0);
    json_t *cfg = json_deep_copy(json_object_get(index_case(cn), "adapter_config"));
    json_object_set_new(cfg, "inference_mode", json_false());
    peft_model *m = model_with_config(ctx, cn, cfg);
    const double s = json_number_value(json_object_get(cfg, "lora_alpha")) /
                     (double)json_integer_value(json_object_get(cfg, "r"));
    json_decref(cfg);

    snprintf(rel, sizeof rel, "hf-peft/%s/pissa_residual_base_weights.safetensors", cn);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    double worst_res = 0;
    for (size_t i = 0; i < f->n_entries; i++) {
        const peft_tensor *w = base_weight(m, f->entries[i].name);
        ck_assert_int_eq(w->dtype, PEFT_DTYPE_F32);
        ck_assert_int_eq((int64_t)(f->entries[i].nbytes / 4), w->numel);
        double d = tu_max_abs_diff((const float *)f->entries[i].data, peft_f32(w), w->numel);
        if (d > worst_res) worst_res = d;
    }
    peft_st_close(f);

    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "default", &sd) == 0);
    snprintf(rel, sizeof rel, "hf-peft/%s/pissa_init/adapter_model.safetensors", cn);
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    double worst_ba = 0;
    int n_pairs = 0;
    for (size_t i = 0; i < f->n_entries; i++) {
        const char *ka = f->entries[i].name;
        char kb[512];
        const char *pa = strstr(ka, "lora_A.weight");
        if (!pa) continue;
        snprintf(kb, sizeof kb, "%.*slora_B.weight", (int)(pa - ka), ka);
        const peft_st_entry *ea = &f->entries[i], *eb = peft_st_find(f, kb);
        const peft_tensor *A = sd_find(sd, ka), *B = sd_find(sd, kb);
        ck_assert_msg(eb && A && B, "%s: %s / %s", cn, ka, kb);
        const int64_t r = A->shape[0], in = A->shape[1], out = B->shape[0];
        const float *a0 = ea->data, *b0 = eb->data;
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) {
                double mine = 0, theirs = 0;
                for (int64_t k = 0; k < r; k++) {
                    mine += (double)peft_f32(B)[o * r + k] * peft_f32(A)[k * in + j];
                    theirs += (double)b0[o * r + k] * a0[k * in + j];
                }
                double d = s * fabs(mine - theirs);
                if (d > worst_ba) worst_ba = d;
            }
        n_pairs++;
    }
    peft_st_close(f);
    ck_assert_int_gt(n_pairs, 0);
    fprintf(stderr, "%s: PiSSA residual vs PEFT max diff %.3g, s*B0@A0 max diff %.3g (%d layers)\n",
            cn, worst_res, worst_ba, n_pairs);
    ck_assert_msg(worst_res <= 1e-5, "%s: residual differs from PEFT's by %g", cn, worst_res);
    ck_assert_msg(worst_ba <= 1e-5, "%s: s*B0@A0 differs from PEFT's by %g", cn, worst_ba);
    peft_state_dict_free(sd);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* outputs of m on the case's inputs, copied (n floats) */
static float *run_logits(peft_ctx *ctx, peft_model *m, const char *cn, int64_t *n);

/* logits, loss, gradients and merged logits vs PEFT, with the numbers printed (the contract
 * table checks these too for the dora cases; for pissa it stops at the disabled-adapter check) */
START_TEST(fixture_numbers)
{
    const char *cn = fixture_cases_all[_i];
    char rel[512];
    json_t *e = index_case(cn);
    peft_ctx *ctx = peft_ctx_new(0);
    snprintf(rel, sizeof rel, "hf-peft/%s", json_string_value(json_object_get(e, "base_model_dir")));
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture(rel), &base) == 0);
    peft_model *m;
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter", cn);
    ck_assert_msg(peft_from_pretrained(ctx, base, tu_fixture(rel), "default", 1, &m) == 0, "%s",
                  peft_errmsg(ctx));
    snprintf(rel, sizeof rel, "hf-peft/%s/trainable_params.safetensors", cn);
    ck_assert_msg(peft_set_peft_model_state_dict(m, tu_fixture(rel), "default", 1) == 0, "%s",
                  peft_errmsg(ctx));
    peft_inputs in;
    snprintf(rel, sizeof rel, "hf-peft/%s/inputs.json", cn);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_graph_set_recording(g, 1);
    peft_model_outputs o;
    ck_assert_msg(peft_model_forward(m, g, &mi, &o) == 0, "%s", peft_errmsg(ctx));
    peft_tensor *lt = o.logits ? o.logits : o.start_logits;
    snprintf(rel, sizeof rel, "hf-peft/%s/peft_logits.safetensors", cn);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *le = peft_st_find(f, o.logits ? "logits" : "start_logits");
    ck_assert(le && (int64_t)(le->nbytes / 4) == lt->numel);
    const double dl = tu_max_abs_diff(le->data, peft_f32(lt), lt->numel);
    peft_st_close(f);
    const double dloss = fabs(peft_f32(o.loss)[0] - json_real_value(json_object_get(e, "loss")));
    ck_assert(peft_graph_backward(g, o.loss) == 0);
    peft_state_dict *tp;
    ck_assert(peft_trainable_parameters(m, &tp) == 0);
    snprintf(rel, sizeof rel, "hf-peft/%s/grads.safetensors", cn);
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(tp->n, f->n_entries);
    double dg = 0;
    for (size_t i = 0; i < tp->n; i++) {
        const peft_st_entry *ge = peft_st_find(f, tp->names[i]);
        ck_assert_msg(ge && tp->tensors[i]->grad, "%s: %s", cn, tp->names[i]);
        dg = fmax(dg, tu_max_abs_diff(ge->data, tp->tensors[i]->grad, tp->tensors[i]->numel));
    }
    peft_st_close(f);
    peft_state_dict_free(tp);
    ck_assert(peft_merge_adapter(m, NULL, 0, 1) == 0);
    peft_graph_reset(g);
    peft_graph_set_recording(g, 0);
    ck_assert(peft_model_forward(m, g, &mi, &o) == 0);
    lt = o.logits ? o.logits : o.start_logits;
    snprintf(rel, sizeof rel, "hf-peft/%s/merged_logits.safetensors", cn);
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    le = peft_st_find(f, o.logits ? "logits" : "start_logits");
    const double dm = tu_max_abs_diff(le->data, peft_f32(lt), lt->numel);
    peft_st_close(f);
    fprintf(stderr, "%s vs PEFT: logits %.3g, loss %.3g, grads %.3g, merged logits %.3g\n", cn, dl,
            dloss, dg, dm);
    ck_assert_msg(dl <= 1e-4 && dloss <= 1e-4 && dg <= 1e-4 && dm <= 1e-4, "%s: off", cn);
    peft_graph_free(g);
    peft_inputs_free(&in);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* parameter `name` belongs to a module listed in modules_to_save (its name ends with the entry) */
static int in_mts(const json_t *mts, const char *name)
{
    const char *dot = strrchr(name, '.');
    size_t i;
    json_t *v;
    if (!dot || !json_is_array(mts)) return 0;
    const size_t mlen = (size_t)(dot - name);
    json_array_foreach(mts, i, v) {
        const char *en = json_string_value(v);
        const size_t k = en ? strlen(en) : 0;
        if (k && k <= mlen && !strncmp(name + mlen - k, en, k) &&
            (k == mlen || name[mlen - k - 1] == '.'))
            return 1;
    }
    return 0;
}

/* PiSSA's base IS the residual: disable_adapter() gives PEFT's disabled_adapter_logits (the
 * residual model, not the original), and unload keeps the residual weights (as PEFT does) while
 * every other parameter stays bit-exactly as loaded. (The contract table expects the original
 * base in both places, so the pissa cases run these checks here instead.) */
START_TEST(pissa_disable_unload)
{
    const char *cn = pissa_cases[_i];
    char rel[512], dir[4096];
    json_t *e = index_case(cn);
    peft_ctx *ctx = peft_ctx_new(0);
    snprintf(rel, sizeof rel, "hf-peft/%s", json_string_value(json_object_get(e, "base_model_dir")));
    snprintf(dir, sizeof dir, "%s", tu_fixture(rel));
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, dir, &base) == 0);
    peft_model *m;
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter", cn);
    ck_assert_msg(peft_from_pretrained(ctx, base, tu_fixture(rel), "default", 0, &m) == 0, "%s",
                  peft_errmsg(ctx));
    ck_assert(peft_disable_adapter(m) == 0);
    int64_t n;
    float *dis = run_logits(ctx, m, cn, &n);
    snprintf(rel, sizeof rel, "hf-peft/%s/disabled_adapter_logits.safetensors", cn);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *le = peft_st_find(f, "logits");
    ck_assert_ptr_nonnull(le);
    ck_assert_int_eq((int64_t)(le->nbytes / 4), n);
    double d = tu_max_abs_diff(le->data, dis, n);
    peft_st_close(f);
    fprintf(stderr, "%s: disabled adapter (residual model) vs PEFT: max diff %.3g\n", cn, d);
    ck_assert_msg(d <= 1e-4, "%s: disabled adapter differs from PEFT's by %g", cn, d);
    free(dis);

    peft_base_model *un;
    ck_assert(peft_unload(m, &un) == 0);
    peft_base_model *fresh;
    ck_assert(peft_load_base_model(ctx, dir, &fresh) == 0);
    snprintf(rel, sizeof rel, "hf-peft/%s/pissa_residual_base_weights.safetensors", cn);
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(un->n_params, fresh->n_params);
    size_t n_res = 0;
    for (size_t i = 0; i < un->n_params; i++) {
        peft_tensor *a = un->params[i].t, *b = fresh->params[i].t;
        char key[600];
        const char *pname = un->params[i].name;
        size_t L = strlen(pname);
        snprintf(key, sizeof key, "base_model.model.%.*s.base_layer.weight",
                 L > 7 ? (int)(L - 7) : 0, pname);
        const peft_st_entry *re = L > 7 && !strcmp(pname + L - 7, ".weight") ? peft_st_find(f, key) : NULL;
        if (re) {
            n_res++;
            ck_assert_int_eq((int64_t)(re->nbytes / 4), a->numel);
            double dr = tu_max_abs_diff(re->data, peft_f32(a), a->numel);
            ck_assert_msg(dr <= 1e-5, "%s: unloaded %s differs from PEFT's residual by %g", cn,
                          pname, dr);
            continue;
        }
        if (in_mts(json_object_get(json_object_get(e, "adapter_config"), "modules_to_save"), pname))
            continue; /* as PEFT: the trained modules_to_save copy stays */
        ck_assert_msg(a->dtype == b->dtype && a->numel == b->numel &&
                          memcmp(a->data, b->data, (size_t)a->numel * peft_dtype_size(a->dtype)) == 0,
                      "%s: unload changed %s", cn, pname);
    }
    ck_assert_int_eq(n_res, f->n_entries);
    peft_st_close(f);
    peft_base_model_free(un);
    peft_base_model_free(fresh);
    peft_ctx_free(ctx);
}
END_TEST

static float *run_logits(peft_ctx *ctx, peft_model *m, const char *cn, int64_t *n)
{
    char rel[512];
    peft_inputs in;
    snprintf(rel, sizeof rel, "hf-peft/%s/inputs.json", cn);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_model_outputs o;
    ck_assert_msg(peft_model_forward(m, g, &mi, &o) == 0, "%s", peft_errmsg(ctx));
    peft_tensor *t = o.logits ? o.logits : o.start_logits;
    ck_assert_ptr_nonnull(t);
    float *c = malloc((size_t)t->numel * sizeof *c);
    memcpy(c, t->data, (size_t)t->numel * sizeof *c);
    *n = t->numel;
    peft_graph_free(g);
    peft_inputs_free(&in);
    return c;
}

/* save_pretrained with the conversion: exactly PEFT's adapter_converted_lora (same trained A, B
 * and initial A0, B0), and the converted LoRA on the ORIGINAL base gives the PiSSA model's
 * outputs */
START_TEST(pissa_convert_vs_fixture)
{
    const char *cn = pissa_cases[_i];
    char rel[512], dir[4096], init_dir[4096], path[4200];
    json_t *e = index_case(cn);
    peft_ctx *ctx = peft_ctx_new(0);
    snprintf(rel, sizeof rel, "hf-peft/%s", json_string_value(json_object_get(e, "base_model_dir")));
    snprintf(dir, sizeof dir, "%s", tu_fixture(rel));
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, dir, &base) == 0);
    peft_model *m;
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter", cn);
    ck_assert_msg(peft_from_pretrained(ctx, base, tu_fixture(rel), "default", 0, &m) == 0, "%s",
                  peft_errmsg(ctx));
    int64_t n;
    float *pissa_out = run_logits(ctx, m, cn, &n);

    char *tmp = tu_tmpdir();
    snprintf(rel, sizeof rel, "hf-peft/%s/pissa_init", cn);
    snprintf(init_dir, sizeof init_dir, "%s", tu_fixture(rel));
    ck_assert_msg(peft_save_pretrained_convert(m, tmp, "default", init_dir) == 0, "%s",
                  peft_errmsg(ctx));

    /* tensors: bit-exact */
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", tmp);
    peft_st_file *mine, *theirs;
    ck_assert_msg(peft_st_open(tu_ctx(), path, &mine) == 0, "%s", peft_errmsg(tu_ctx()));
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter_converted_lora/adapter_model.safetensors", cn);
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &theirs) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(mine->n_entries, theirs->n_entries);
    ck_assert_msg(mine->metadata_json && strstr(mine->metadata_json, "\"pt\""), "metadata");
    double worst = 0;
    for (size_t i = 0; i < theirs->n_entries; i++) {
        const peft_st_entry *t = &theirs->entries[i], *me = peft_st_find(mine, t->name);
        ck_assert_msg(me, "%s: converted adapter lacks %s", cn, t->name);
        ck_assert_int_eq(me->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(me->shape[d], t->shape[d]);
        double d = tu_max_abs_diff(me->data, t->data, (int64_t)(t->nbytes / 4));
        if (d > worst) worst = d;
    }
    peft_st_close(mine);
    peft_st_close(theirs);
    ck_assert_msg(worst == 0, "%s: converted tensors differ from PEFT's by %g", cn, worst);

    /* config: PEFT's converted config, field for field (target_modules as a set) */
    snprintf(path, sizeof path, "%s/adapter_config.json", tmp);
    json_t *got = json_load_file(path, 0, NULL), *want = json_object_get(e, "converted_adapter_config");
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(json_object_size(got), json_object_size(want));
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v) {
        json_t *g2 = json_object_get(got, k);
        ck_assert_msg(g2, "%s: converted config lacks %s", cn, k);
        if (!strcmp(k, "base_model_name_or_path") || !strcmp(k, "target_modules") ||
            !strcmp(k, "modules_to_save"))
            continue;
        int eq = json_equal(g2, v) || (json_is_number(g2) && json_is_number(v) &&
                                       fabs(json_number_value(g2) - json_number_value(v)) < 1e-12);
        ck_assert_msg(eq, "%s: converted config field %s differs", cn, k);
    }
    json_decref(got);

    /* the converted LoRA on the original base == the PiSSA model. Not when the adapter has
     * modules_to_save: PEFT 0.13.2 drops those tensors from the converted adapter (its own
     * converted-vs-PiSSA difference is 0.037 on bert_seqcls) and libpeft's loader refuses an
     * adapter file without them */
    if (json_is_array(json_object_get(json_object_get(e, "adapter_config"), "modules_to_save"))) {
        free(pissa_out);
        peft_model_free(m);
        tu_rmtree(tmp);
        free(tmp);
        peft_ctx_free(ctx);
        return;
    }
    peft_base_model *base2;
    ck_assert(peft_load_base_model(ctx, dir, &base2) == 0);
    peft_model *m2;
    ck_assert_msg(peft_from_pretrained(ctx, base2, tmp, "default", 0, &m2) == 0, "%s", peft_errmsg(ctx));
    int64_t n2;
    float *conv_out = run_logits(ctx, m2, cn, &n2);
    ck_assert_int_eq(n, n2);
    double d = tu_max_abs_diff(pissa_out, conv_out, n);
    fprintf(stderr, "%s: converted LoRA on the original base vs PiSSA model: max diff %.3g\n", cn, d);
    double big = 0;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(pissa_out[i]));
    ck_assert_msg(d <= 1e-5 * fmax(1.0, big), "%s: converted LoRA differs from the PiSSA model by "
                  "%g (largest output %g)", cn, d, big);
    free(pissa_out);
    free(conv_out);
    peft_model_free(m2);
    peft_model_free(m);
    tu_rmtree(tmp);
    free(tmp);
    peft_ctx_free(ctx);
}
END_TEST

/* the conversion on GPT-2 (OLoRA is refused on Conv1D, so a plain LoRA stands in): shapes,
 * concatenation, signs, config doubling and the error paths */
START_TEST(convert_plain_lora_gpt2)
{
    peft_ctx *ctx = peft_ctx_new(3);
    json_t *cfg = json_pack("{s:s, s:s, s:i, s:i, s:b, s:[s], s:{s:i}, s:{s:i}}", "peft_type", "LORA",
                            "task_type", "CAUSAL_LM", "r", 2, "lora_alpha", 4, "use_rslora", 0,
                            "target_modules", "c_attn", "rank_pattern", "h.1.attn.c_attn", 3,
                            "alpha_pattern", "h.1.attn.c_attn", 5);
    peft_model *m = model_with_config(ctx, "gpt2__lora_default", cfg);
    json_decref(cfg);
    char *init = tu_tmpdir(), *out = tu_tmpdir(), path[4200];
    ck_assert(peft_save_pretrained(m, init, NULL, 0, 1) == 0);
    /* "train": perturb every tensor */
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, "default", &sd) == 0);
    for (size_t i = 0; i < sd->n; i++)
        for (int64_t j = 0; j < sd->tensors[i]->numel; j++)
            peft_f32(sd->tensors[i])[j] += 0.01f * (float)(j % 7);
    warned[0] = 0;
    peft_set_warning_handler(catch_warning, NULL);
    ck_assert_msg(peft_save_pretrained_convert(m, out, NULL, init) == 0, "%s", peft_errmsg(ctx));
    peft_set_warning_handler(NULL, NULL);
    ck_assert_str_eq(warned, ""); /* init_lora_weights true: no warning */
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", out);
    peft_st_file *f, *f0;
    ck_assert_msg(peft_st_open(tu_ctx(), path, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", init);
    ck_assert_msg(peft_st_open(tu_ctx(), path, &f0) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(f->n_entries, sd->n);
    for (size_t i = 0; i < sd->n; i++) {
        const peft_tensor *t = sd->tensors[i];
        const peft_st_entry *e = peft_st_find(f, sd->names[i]), *e0 = peft_st_find(f0, sd->names[i]);
        ck_assert(e && e0);
        const float *c = e->data, *i0 = e0->data;
        const int64_t rows = t->shape[0], cols = t->shape[1];
        if (strstr(sd->names[i], "lora_A")) {
            ck_assert_int_eq(e->shape[0], 2 * rows);
            ck_assert(memcmp(c, t->data, (size_t)(rows * cols) * 4) == 0);
            ck_assert(memcmp(c + rows * cols, i0, (size_t)(rows * cols) * 4) == 0);
        } else {
            ck_assert_int_eq(e->shape[1], 2 * cols);
            for (int64_t a = 0; a < rows; a++)
                for (int64_t b = 0; b < cols; b++) {
                    ck_assert(c[a * 2 * cols + b] == peft_f32(t)[a * cols + b]);
                    ck_assert(c[a * 2 * cols + cols + b] == -i0[a * cols + b]);
                }
        }
    }
    peft_st_close(f);
    peft_st_close(f0);
    snprintf(path, sizeof path, "%s/adapter_config.json", out);
    json_t *got = json_load_file(path, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "r")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "lora_alpha")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(got, "rank_pattern"), "h.1.attn.c_attn")), 6);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(got, "alpha_pattern"), "h.1.attn.c_attn")), 10);
    ck_assert(json_is_true(json_object_get(got, "init_lora_weights")));
    ck_assert(json_is_true(json_object_get(got, "inference_mode")));
    json_decref(got);

    /* errors: unknown adapter, missing initial adapter, a mismatching initial adapter */
    ck_assert_int_eq(peft_save_pretrained_convert(m, out, "nope", init), PEFT_ENOTFOUND);
    ck_assert_int_eq(peft_save_pretrained_convert(m, out, NULL, "/nonexistent/dir"), PEFT_EIO);
    ck_assert_msg(strstr(peft_errmsg(ctx), "/nonexistent/dir/adapter_model.safetensors"), "%s",
                  peft_errmsg(ctx));
    char *other = tu_tmpdir();
    const int64_t shp[2] = {5, 32};
    float zeros[160] = {0};
    const peft_st_out one = {sd->names[0], PEFT_DTYPE_F32, 2, shp, zeros};
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", other);
    ck_assert(peft_st_write(tu_ctx(), path, &one, 1, NULL) == 0);
    ck_assert_int_eq(peft_save_pretrained_convert(m, out, NULL, other), PEFT_EFORMAT);
    ck_assert_msg(strstr(peft_errmsg(ctx), sd->names[1]) || strstr(peft_errmsg(ctx), sd->names[0]),
                  "%s", peft_errmsg(ctx));
    peft_state_dict_free(sd);
    peft_model_free(m);

    /* rsLoRA + rank_pattern: refused as PEFT does */
    cfg = json_pack("{s:s, s:i, s:b, s:[s], s:{s:i}}", "peft_type", "LORA", "r", 2, "use_rslora", 1,
                    "target_modules", "c_attn", "rank_pattern", "h.1.attn.c_attn", 3);
    m = model_with_config(ctx, "gpt2__lora_default", cfg);
    json_decref(cfg);
    ck_assert_int_eq(peft_save_pretrained_convert(m, out, NULL, init), PEFT_EINVAL);
    ck_assert_msg(strstr(peft_errmsg(ctx), "use_rslora=True"), "%s", peft_errmsg(ctx));
    peft_model_free(m);
    /* rsLoRA alone: alpha times sqrt(2); a gaussian init warns */
    cfg = json_pack("{s:s, s:i, s:i, s:b, s:s, s:[s]}", "peft_type", "LORA", "r", 2, "lora_alpha", 8,
                    "use_rslora", 1, "init_lora_weights", "gaussian", "target_modules", "c_attn");
    m = model_with_config(ctx, "gpt2__lora_default", cfg);
    json_decref(cfg);
    tu_rmtree(init);
    ck_assert(peft_save_pretrained(m, init, NULL, 0, 1) == 0);
    peft_set_warning_handler(catch_warning, NULL);
    ck_assert_msg(peft_save_pretrained_convert(m, out, NULL, init) == 0, "%s", peft_errmsg(ctx));
    peft_set_warning_handler(NULL, NULL);
    ck_assert_msg(strstr(warned, "only works for converting a PiSSA or OLoRA"), "%s", warned);
    snprintf(path, sizeof path, "%s/adapter_config.json", out);
    got = json_load_file(path, 0, NULL);
    ck_assert(fabs(json_number_value(json_object_get(got, "lora_alpha")) - 8 * sqrt(2.0)) < 1e-12);
    json_decref(got);
    peft_model_free(m);
    tu_rmtree(init);
    tu_rmtree(out);
    tu_rmtree(other);
    free(init);
    free(out);
    free(other);
    peft_ctx_free(ctx);
}
END_TEST

static int count(const char *const *l)
{
    int n = 0;
    while (l[n]) n++;
    return n;
}

int main(void)
{
    static const char *all[16];
    int nf = 0;
    for (int i = 0; dora_cases[i]; i++) all[nf++] = dora_cases[i];
    for (int i = 0; pissa_cases[i]; i++) all[nf++] = pissa_cases[i];
    all[nf] = NULL;
    fixture_cases = all;
    static const char *every[16];
    int ne = 0;
    for (int i = 0; dora_cases[i]; i++) every[ne++] = dora_cases[i];
    for (int i = 0; pissa_cases[i]; i++) every[ne++] = pissa_cases[i];
    every[ne] = NULL;
    fixture_cases_all = every;

    Suite *s = suite_create("lora_variants");
    TCase *tk = tcase_create("kernels");
    tcase_add_loop_test(tk, dora_kernel_grads, 0, 3);
    tcase_add_test(tk, dora_kernel_fd_direct);
    tcase_add_loop_test(tk, dora_merge_roundtrip, 0, 2);
    tcase_add_loop_test(tk, olora_init_identity, 0, 3);
    tcase_add_loop_test(tk, pissa_init_identity, 0, 3);
    tcase_add_test(tk, pissa_bf16_residual_rounded);
    tcase_add_test(tk, svd_inits_refusals);
    suite_add_tcase(s, tk);

    TCase *tf = tcase_create("fixtures");
    tcase_set_timeout(tf, 120);
    tcase_add_loop_test(tf, contract_case, 0, nf);
    tcase_add_loop_test(tf, fixture_numbers, 0, ne);
    tcase_add_loop_test(tf, dora_magnitude_init, 0, count(dora_cases));
    if (count(pissa_cases) > 0) {
        tcase_add_loop_test(tf, pissa_init_vs_fixture, 0, count(pissa_cases));
        tcase_add_loop_test(tf, pissa_convert_vs_fixture, 0, count(pissa_cases));
        tcase_add_loop_test(tf, pissa_disable_unload, 0, count(pissa_cases));
    }
    tcase_add_test(tf, convert_plain_lora_gpt2);
    suite_add_tcase(s, tf);

    int failed = tu_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

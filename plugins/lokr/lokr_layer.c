/* lokr_layer.c — one LoKr adapter on one linear site (PEFT 0.13.2 lokr.Linear): shapes and
 * init from update_layer / reset_adapter_parameters, the forward y' = y + x @ delta W^T with
 * rank and module dropout in training, its backward on the host's tape, merge, state dict.
 *
 * Shapes (lokr.h): in = in_m in_n, out = out_l out_k (factorization(., decompose_factor));
 * w1 (out_l, in_m) full unless decompose_both and r < max(out_l, in_m) / 2, then
 * w1_a (out_l, r) @ w1_b (r, in_m); w2 (out_k, in_n) full unless r < max(out_k, in_n) / 2,
 * then w2_a (out_k, r) @ w2_b (r, in_n). delta W[i out_k + k, j in_n + n] = w1[i, j] w2[k, n].
 *
 * GPT-2's Conv1D: PEFT 0.13.2 refuses LoKr on it (only nn.Linear / nn.Conv2d); this plugin
 * accepts it as the nn.Linear it computes (delta W in (out, in) orientation, transposed when
 * merged into the (in, out) weight) and warns that such an adapter does not load in Python. */
#include <math.h>
#include <string.h>

#include "lokr.h"

#define MSG_CONV1D "lokr: GPT-2 Conv1D targets are a libpeft extension (PEFT 0.13.2 supports " \
                   "LoKr on nn.Linear and nn.Conv2d only): this adapter will not load in " \
                   "Python PEFT"

/* ---- inject ------------------------------------------------------------------------------- */

/* kaiming_uniform_(a=sqrt(5)) on (rows, cols): U(-1/sqrt(cols), 1/sqrt(cols)) */
static void kaiming(peft_tensor *t, peft_rng *rng)
{
    peft_pu_fill_uniform(lokr_host, t, 1.0 / sqrt((double)t->shape[1]), rng);
}

static peft_tensor *param(int64_t rows, int64_t cols)
{
    return peft_pu_param2(lokr_host, rows, cols);
}

/* registers tensor t as state-dict entry "<leaf>" / "<leaf>.<adapter>" (leaf "lokr_w1", ...);
 * 0, or -1 on OOM */
static int add_ref(lokr_state *st, peft_tensor *t, const char *leaf, const char *adapter)
{
    int i = st->n_refs++;
    st->refs[i] = (peft_param_ref){.tensor = t, .trainable = 1};
    if (peft_pu_param_names(lokr_host, leaf, NULL, adapter, &st->names[2 * i],
                            &st->names[2 * i + 1]))
        return -1;
    st->refs[i].saved_name = st->names[2 * i];
    st->refs[i].memory_name = st->names[2 * i + 1];
    return 0;
}

/* one factor (rows, cols): full, or a (rows, r) @ b (r, cols) */
static int make_factor(lokr_factor *f, int64_t rows, int64_t cols, int64_t r, int full)
{
    f->rows = rows;
    f->cols = cols;
    if (full) return (f->w = param(rows, cols)) ? 0 : -1;
    f->a = param(rows, r);
    f->b = param(r, cols);
    return f->a && f->b ? 0 : -1;
}

void *lokr_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const lokr_config *c = parsed;
    if (peft_pu_inject_args("lokr", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "lokr", "LoKr", 1, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    /* rank_pattern, LyCORIS's key rule (alpha is not applied by PEFT 0.13.2: see lokr.h) */
    int64_t r = c->r;
    if (peft_pu_rank_alpha(lokr_host, cfg, "lokr", name, 1, &r, NULL, err, errlen)) return NULL;
    if (site->kind == PEFT_SITE_CONV1D) lokr_host->warn(MSG_CONV1D);

    int64_t in_m, in_n, out_l, out_k;
    lokr_factorization(site->in_features, c->decompose_factor, &in_m, &in_n);
    lokr_factorization(site->out_features, c->decompose_factor, &out_l, &out_k);
    const double max1 = (double)(out_l > in_m ? out_l : in_m);
    const double max2 = (double)(out_k > in_n ? out_k : in_n);
    const int use_w1 = !(c->decompose_both && (double)r < max1 / 2);
    const int use_w2 = !((double)r < max2 / 2);

    lokr_state *st = lokr_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in = site->in_features;
    st->out = site->out_features;
    st->r = r;
    st->rank_dropout = c->rank_dropout;
    st->module_dropout = c->module_dropout;
    st->mult = 1.0;
    if (make_factor(&st->f1, out_l, in_m, r, use_w1) || make_factor(&st->f2, out_k, in_n, r, use_w2))
        goto oom;
    /* PEFT's parameter order: lokr_w1 / lokr_w1_a, lokr_w1_b, then lokr_w2 / w2_a, w2_b */
    if (use_w1 ? add_ref(st, st->f1.w, "lokr_w1", adapter_name)
               : add_ref(st, st->f1.a, "lokr_w1_a", adapter_name) ||
                     add_ref(st, st->f1.b, "lokr_w1_b", adapter_name))
        goto oom;
    if (use_w2 ? add_ref(st, st->f2.w, "lokr_w2", adapter_name)
               : add_ref(st, st->f2.a, "lokr_w2_a", adapter_name) ||
                     add_ref(st, st->f2.b, "lokr_w2_b", adapter_name))
        goto oom;

    if (c->init_weights) { /* reset_adapter_parameters: w1 (or w1_a) zeros, the rest kaiming */
        if (!use_w1) kaiming(st->f1.b, rng);
    } else { /* reset_adapter_parameters_random */
        if (use_w1) kaiming(st->f1.w, rng);
        else kaiming(st->f1.a, rng), kaiming(st->f1.b, rng);
    }
    if (use_w2) kaiming(st->f2.w, rng);
    else kaiming(st->f2.a, rng), kaiming(st->f2.b, rng);
    return st;
oom:
    lokr_destroy(st);
    peft_pu_errf(err, errlen, "lokr: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- delta W ------------------------------------------------------------------------------ */

/* dst (rows, cols) = w, or a (rows, r) @ b (r, cols) */
static void factor_value(const lokr_factor *f, int64_t r, float *dst)
{
    if (f->w) {
        memcpy(dst, f->w->data, (size_t)(f->rows * f->cols) * sizeof *dst);
        return;
    }
    peft_pu_gemm(lokr_host, 0, 0, f->rows, f->cols, r, 1.0f, peft_f32(f->a), peft_f32(f->b),
                 0.0f, dst);
}

/* dw (out, in) = s * kron(w1 (out_l, in_m), w2 (out_k, in_n)) */
static void kron(const lokr_state *st, const float *w1, const float *w2, float s, float *dw)
{
    const int64_t L = st->f1.rows, M = st->f1.cols, K = st->f2.rows, N = st->f2.cols;
    for (int64_t i = 0; i < L; i++)
        for (int64_t k = 0; k < K; k++) {
            float *row = dw + (i * K + k) * st->in;
            for (int64_t j = 0; j < M; j++) {
                const float a = s * w1[i * M + j];
                for (int64_t n = 0; n < N; n++) row[j * N + n] = a * w2[k * N + n];
            }
        }
}

/* ---- forward / backward ------------------------------------------------------------------- */

typedef struct lokr_bwd {
    const lokr_state *st;
    peft_tensor *x, *y, *out; /* x (N, in), y and out (N, out) */
    peft_tensor *w1, *w2;     /* factor values (out_l, in_m), (out_k, in_n) */
    peft_tensor *dw;          /* delta W (out, in), scaled by mult */
    peft_tensor *mask;        /* rank dropout row factors (out) or NULL */
    int64_t n;
    float mult;
} lokr_bwd;

/* d factor value g (rows, cols) -> the factor's tensors: w += g; or a += g @ b^T,
 * b += a^T @ g */
static void factor_backward(peft_graph *g, const lokr_factor *f, int64_t r, const float *gv)
{
    if (f->w) {
        peft_pu_grad_add(lokr_host, g, f->w, gv, f->rows * f->cols);
        return;
    }
    float *da = f->a->requires_grad ? lokr_host->grad_of(g, f->a) : NULL;
    float *db = f->b->requires_grad ? lokr_host->grad_of(g, f->b) : NULL;
    if (da) peft_pu_gemm(lokr_host, 0, 1, f->rows, r, f->cols, 1.0f, gv, peft_f32(f->b), 1.0f, da);
    if (db) peft_pu_gemm(lokr_host, 1, 0, r, f->cols, f->rows, 1.0f, peft_f32(f->a), gv, 1.0f, db);
}

static int factor_wants_grad(const lokr_factor *f)
{
    return f->w ? f->w->requires_grad : (f->a->requires_grad || f->b->requires_grad);
}

/* dout (N, out); de = dout * mask (N, out)
 * dy += dout;  dx (N, in) += de @ dW (out, in);  dDW (out, in) = de^T @ x
 * dw1[i, j] = mult * sum_{k, n} dDW[i K + k, j N + n] w2[k, n]
 * dw2[k, n] = mult * sum_{i, j} dDW[i K + k, j N + n] w1[i, j]             */
static void lokr_backward(peft_graph *g, void *vctx)
{
    const lokr_bwd *c = vctx;
    const lokr_state *st = c->st;
    const float *dout = c->out->grad;
    if (!dout) return;
    const int64_t n = c->n, in = st->in, outf = st->out;
    peft_pu_grad_add(lokr_host, g, c->y, dout, n * outf);
    const float *de = dout;
    if (c->mask) {
        const int64_t shape[2] = {n, outf};
        peft_tensor *t = lokr_host->graph_tensor(g, 2, shape);
        if (!t) return;
        float *e = peft_f32(t);
        const float *m = peft_f32(c->mask);
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < outf; o++) e[i * outf + o] = dout[i * outf + o] * m[o];
        de = e;
    }
    if (c->x->requires_grad) {
        float *dx = lokr_host->grad_of(g, c->x);
        if (dx) peft_pu_gemm(lokr_host, 0, 0, n, in, outf, 1.0f, de, peft_f32(c->dw), 1.0f, dx);
    }
    const int want1 = factor_wants_grad(&st->f1), want2 = factor_wants_grad(&st->f2);
    if (!want1 && !want2) return;
    const int64_t shape_dw[2] = {outf, in};
    const int64_t shape1[2] = {st->f1.rows, st->f1.cols}, shape2[2] = {st->f2.rows, st->f2.cols};
    peft_tensor *ddw_t = lokr_host->graph_tensor(g, 2, shape_dw);
    peft_tensor *g1_t = lokr_host->graph_tensor(g, 2, shape1);
    peft_tensor *g2_t = lokr_host->graph_tensor(g, 2, shape2);
    if (!ddw_t || !g1_t || !g2_t) return;
    float *ddw = peft_f32(ddw_t), *g1 = peft_f32(g1_t), *g2 = peft_f32(g2_t);
    peft_pu_gemm(lokr_host, 1, 0, outf, in, n, 1.0f, de, peft_f32(c->x), 0.0f, ddw);
    const int64_t L = st->f1.rows, M = st->f1.cols, K = st->f2.rows, N = st->f2.cols;
    const float *w1 = peft_f32(c->w1), *w2 = peft_f32(c->w2);
    for (int64_t i = 0; i < L; i++)
        for (int64_t k = 0; k < K; k++) {
            const float *row = ddw + (i * K + k) * in;
            for (int64_t j = 0; j < M; j++) {
                float acc1 = 0.0f;
                const float a = w1[i * M + j];
                for (int64_t q = 0; q < N; q++) {
                    const float d = row[j * N + q];
                    acc1 += d * w2[k * N + q];
                    g2[k * N + q] += c->mult * d * a;
                }
                g1[i * M + j] += c->mult * acc1;
            }
        }
    if (want1) factor_backward(g, &st->f1, st->r, g1);
    if (want2) factor_backward(g, &st->f2, st->r, g2);
}

/* x (..., in), y (..., out) -> out (..., out) = y + (x (N, in) @ dW^T (in, out)) * mask (out)
 * In training: the adapter is skipped with probability module_dropout; rank dropout keeps row
 * o of dW when U(0,1) > rank_dropout, rows rescaled by 1 / (the kept fraction). */
peft_tensor *lokr_forward(void *state, peft_graph *g, const peft_site_info *site,
                          peft_tensor *x, peft_tensor *y)
{
    (void)site;
    lokr_state *st = state;
    int64_t n;
    if (!st || !g || peft_pu_site_rows(x, y, st->in, st->out, &n)) return NULL;
    const int training = lokr_host->graph_training(g);
    peft_rng *rng = lokr_host->graph_rng(g);
    if (training && st->module_dropout > 0 && !(lokr_host->rng_uniform(rng) > st->module_dropout))
        return y; /* torch.rand(1) > module_dropout failed: this step runs without the adapter */

    const int64_t s1[2] = {st->f1.rows, st->f1.cols}, s2[2] = {st->f2.rows, st->f2.cols};
    const int64_t sdw[2] = {st->out, st->in}, sxd[2] = {n, st->out};
    peft_tensor *w1 = lokr_host->graph_tensor(g, 2, s1), *w2 = lokr_host->graph_tensor(g, 2, s2);
    peft_tensor *dw = lokr_host->graph_tensor(g, 2, sdw), *xd = lokr_host->graph_tensor(g, 2, sxd);
    peft_tensor *out = lokr_host->graph_tensor(g, y->ndim, y->shape);
    if (!w1 || !w2 || !dw || !xd || !out) return NULL;
    factor_value(&st->f1, st->r, peft_f32(w1));
    factor_value(&st->f2, st->r, peft_f32(w2));
    const float mult = (float)st->mult;
    kron(st, peft_f32(w1), peft_f32(w2), mult, peft_f32(dw));

    peft_tensor *mask = NULL;
    if (training && st->rank_dropout > 0 &&
        !(mask = peft_pu_rank_dropout_mask(lokr_host, g, rng, st->out, st->rank_dropout)))
        return NULL;
    /* xd (N, out) = x (N, in) @ dW^T (in, out) */
    peft_pu_gemm(lokr_host, 0, 1, n, st->out, st->in, 1.0f, peft_f32(x), peft_f32(dw), 0.0f,
                 peft_f32(xd));
    const float *yv = peft_f32(y), *xv = peft_f32(xd), *m = mask ? peft_f32(mask) : NULL;
    float *ov = peft_f32(out);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < st->out; o++)
            ov[i * st->out + o] = yv[i * st->out + o] + (m ? m[o] : 1.0f) * xv[i * st->out + o];

    const int need = lokr_host->graph_recording(g) &&
                     (x->requires_grad || y->requires_grad || factor_wants_grad(&st->f1) ||
                      factor_wants_grad(&st->f2));
    out->requires_grad = need;
    if (need) {
        lokr_bwd *c = lokr_host->tape_push(g, lokr_backward, sizeof *c);
        if (!c) return NULL;
        *c = (lokr_bwd){st, x, y, out, w1, w2, dw, mask, n, mult};
    }
    return out;
}

/* ---- merge, state dict, destroy ----------------------------------------------------------- */

/* weight += sign * mult * dW: (out, in) for nn.Linear, dW^T into (in, out) for Conv1D */
int lokr_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen)
{
    (void)bias;
    lokr_state *st = state;
    if (peft_pu_merge_args("lokr", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("lokr", site, st->in, st->out, err, errlen))
        return -1;
    const size_t n1 = (size_t)(st->f1.rows * st->f1.cols), n2 = (size_t)(st->f2.rows * st->f2.cols);
    float *w1 = lokr_host->alloc(n1 * sizeof(float)), *w2 = lokr_host->alloc(n2 * sizeof(float));
    float *dw = lokr_host->alloc((size_t)(st->in * st->out) * sizeof(float));
    if (!w1 || !w2 || !dw) {
        lokr_host->free(w1);
        lokr_host->free(w2);
        lokr_host->free(dw);
        peft_pu_errf(err, errlen, "lokr merge: out of memory for '%s'", site->name);
        return -1;
    }
    const double mult = sign > 0 ? st->mult : st->merged_mult;
    factor_value(&st->f1, st->r, w1);
    factor_value(&st->f2, st->r, w2);
    kron(st, w1, w2, (float)(sign * mult), dw);
    const int in_out = peft_pu_in_out(site);
    for (int64_t o = 0; o < st->out; o++)
        for (int64_t i = 0; i < st->in; i++)
            weight[in_out ? i * st->out + o : o * st->in + i] += dw[o * st->in + i];
    if (sign > 0) st->merged_mult = st->mult;
    lokr_host->free(w1);
    lokr_host->free(w2);
    lokr_host->free(dw);
    return 0;
}

int lokr_state_dict(void *state, peft_param_ref *out, int max)
{
    lokr_state *st = state;
    return st ? peft_pu_state_refs(out, max, st->refs, st->n_refs) : 0;
}

const char *lokr_module_type(void *state)
{
    (void)state;
    return "lokr.Linear";
}

int lokr_set_scale(void *state, double mult)
{
    lokr_state *st = state;
    if (!isfinite(mult)) return -1;
    st->mult = mult;
    return 0;
}

void lokr_destroy(void *state)
{
    lokr_state *st = state;
    if (!st) return;
    peft_tensor *const ts[6] = {st->f1.w, st->f1.a, st->f1.b, st->f2.w, st->f2.a, st->f2.b};
    peft_pu_free_tensors(lokr_host, ts, 6);
    peft_pu_free_strings(lokr_host, st->names, 8);
    lokr_host->free(st);
}

/* test_combine.c — add_weighted_adapter (core/peft_combine.c + plugins/lora/lora_combine.c) on
 * PEFT 0.13.2's GPT-2 and LLaMA LoRA fixtures, against references computed here in double
 * precision:
 *   linear, ties, magnitude_prune (both sign methods): the new lora_A / lora_B element by element
 *   cat: A and B exactly; and the logits equal those of the sources active together with
 *        runtime scales w_i (sum of w_i * delta_i, computed by the forward pass)
 *   svd, ties_svd, magnitude_prune_svd: B A of the result vs the truncated SVD (LAPACK dgesdd) of
 *        the merged delta weights; svd_clamp vs clamping the unclamped result at the quantile
 *   dare_linear: every element is (sum over kept sources of v_i t_i) / density (which sources
 *        were kept is read back), the kept fraction is ~ density; dare_ties with the same seed
 *        draws the same masks and gives the disjoint merge of those masked tensors exactly
 *   one source with weight 1 reproduces it (rsLoRA too: PEFT's logits of gpt2__lora_rslora)
 *   the new config (r, lora_alpha, union of target_modules), refusals with their messages, and
 *   `peft combine` end to end (the written adapter reloads in `peft forward` with the outputs
 *   expected). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peft/graph.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/combine.h"
#include "core/peft/internal.h"
#include "core/tuner/lapack_fortran.h"
#include "peft/safetensors.h"
#include "testutil.h"

/* ---- models and adapters --------------------------------------------------------------------- */

/* base model of arch with the fixture adapters cases[i] loaded as names[i], seed `seed` */
static peft_model *load(peft_ctx *ctx, const char *arch, const char *const *cases,
                        const char *const *names, int n)
{
    char rel[512];
    snprintf(rel, sizeof rel, "hf-peft/_models/%s", arch);
    peft_base_model *base;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &base) == 0, "%s", peft_errmsg(ctx));
    peft_model *m = NULL;
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "hf-peft/%s/adapter", cases[i]);
        int rc = i == 0 ? peft_from_pretrained(ctx, base, tu_fixture(rel), names[i], 0, &m)
                        : peft_load_adapter(m, tu_fixture(rel), names[i], 0);
        ck_assert_msg(rc == 0, "%s: %s", cases[i], peft_errmsg(ctx));
    }
    return m;
}

/* the adapter's scaling from its config: lora_alpha / r (or / sqrt(r) with use_rslora) */
static double scaling_of(peft_model *m, const char *name)
{
    peft_adapter *a = peft_find_adapter(m, name);
    ck_assert_ptr_nonnull(a);
    double r = json_number_value(json_object_get(a->config, "r"));
    double alpha = json_number_value(json_object_get(a->config, "lora_alpha"));
    return json_is_true(json_object_get(a->config, "use_rslora")) ? alpha / sqrt(r) : alpha / r;
}

/* the adapter's saved state dict (caller frees) */
static peft_state_dict *sd_of(peft_model *m, const char *name)
{
    peft_state_dict *sd;
    ck_assert_msg(peft_get_peft_model_state_dict(m, name, &sd) == 0, "%s",
                  peft_errmsg(peft_model_ctx(m)));
    return sd;
}

/* "<module>.lora_A.weight" / "lora_B" of sd, or NULL */
static const peft_tensor *find_t(const peft_state_dict *sd, const char *module, const char *which)
{
    char key[512];
    snprintf(key, sizeof key, "base_model.model.%s.%s.weight", module, which);
    for (size_t i = 0; i < sd->n; i++)
        if (!strcmp(sd->names[i], key)) return sd->tensors[i];
    return NULL;
}

/* module i of the new adapter's sd (its lora_A keys), into buf; 0 when done */
static int module_at(const peft_state_dict *sd, size_t *i, char *buf, size_t len)
{
    static const char pre[] = "base_model.model.", suf[] = ".lora_A.weight";
    for (; *i < sd->n; (*i)++) {
        const char *k = sd->names[*i];
        size_t n = strlen(k);
        if (n > strlen(pre) + strlen(suf) && !strcmp(k + n - strlen(suf), suf)) {
            snprintf(buf, len, "%.*s", (int)(n - strlen(pre) - strlen(suf)), k + strlen(pre));
            (*i)++;
            return 1;
        }
    }
    return 0;
}

static peft_combine_opts opts_of(const char *type, double density, const char *sign)
{
    peft_combine_opts o;
    peft_combine_opts_init(&o);
    o.combination_type = type;
    o.density = density;
    if (sign) o.majority_sign_method = sign;
    return o;
}

/* ---- the references -------------------------------------------------------------------------- */

/* keeps the k = d n entries of t (n) of largest magnitude, ties to the earlier index, zeroes the
 * rest: the index order sorted by (|t| descending, index ascending), the first k kept (the
 * rank rule "how many are larger, or as large and earlier" < k, in n log n rather than n^2) */
static const double *prune_keys;
static int by_magnitude(const void *a, const void *b)
{
    const int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    const double x = fabs(prune_keys[i]), y = fabs(prune_keys[j]);
    if (x != y) return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

static void ref_prune_magnitude(double *t, int64_t n, double d)
{
    if (d >= 1) return;
    int64_t k = (int64_t)(d * (double)n);
    int64_t *order = malloc((size_t)n * sizeof *order);
    for (int64_t e = 0; e < n; e++) order[e] = e;
    prune_keys = t;
    qsort(order, (size_t)n, sizeof *order, by_magnitude);
    for (int64_t r = k; r < n; r++) t[order[r]] = 0;
    free(order);
}

static double sgn(double x) { return (double)((x > 0) - (x < 0)); }

/* merge_utils on k tensors t[i] (n) with weights v: ties when ties != 0 (after the pruning the
 * caller did), else the weighted sum */
static void ref_merge(double **t, const double *v, int k, int64_t n, int ties, int freq,
                      double *out)
{
    for (int64_t e = 0; e < n; e++) {
        double acc = 0;
        if (!ties) {
            for (int i = 0; i < k; i++) acc += v[i] * t[i][e];
            out[e] = acc;
            continue;
        }
        double s = 0;
        for (int i = 0; i < k; i++) s += freq ? sgn(t[i][e]) : t[i][e];
        double maj = s >= 0 ? 1 : -1;
        int c = 0;
        for (int i = 0; i < k; i++)
            if (sgn(t[i][e]) == maj) {
                acc += v[i] * t[i][e];
                c++;
            }
        out[e] = acc / (c > 1 ? c : 1);
    }
}

/* truncated SVD product of d (rows, cols): sum_{j < rank} s_j u_j v_j^T into p */
static void ref_svd_product(const double *d, int rows, int cols, int rank, double *p)
{
    int k = rows < cols ? rows : cols;
    double *a = malloc(sizeof(double) * rows * cols), *u = malloc(sizeof(double) * rows * k);
    double *s = malloc(sizeof(double) * k), *vt = malloc(sizeof(double) * k * cols);
    memcpy(a, d, sizeof(double) * rows * cols);
    /* a row-major is a^T column-major (cols, rows), whose SVD is V S U^T: LAPACK's u of it is
     * vt row-major (ld cols) and its vt is u row-major (ld k), with no transposition */
    int info = 0, lwork = -1, *iwork = malloc(sizeof(int) * 8 * k);
    double query = 0;
    dgesdd_("S", &cols, &rows, a, &cols, s, vt, &cols, u, &k, &query, &lwork, iwork, &info, 1);
    ck_assert_int_eq(info, 0);
    lwork = (int)query;
    double *work = malloc(sizeof(double) * (lwork > 0 ? lwork : 1));
    dgesdd_("S", &cols, &rows, a, &cols, s, vt, &cols, u, &k, work, &lwork, iwork, &info, 1);
    ck_assert_int_eq(info, 0);
    free(work);
    free(iwork);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            double acc = 0;
            for (int q = 0; q < rank && q < k; q++) acc += u[i * k + q] * s[q] * vt[q * cols + j];
            p[i * cols + j] = acc;
        }
    free(a);
    free(u);
    free(s);
    free(vt);
}

/* s * B (out, r) @ A (r, in) in double */
static void product(const peft_tensor *A, const peft_tensor *B, double s, double *p)
{
    const int64_t r = A->shape[0], in = A->shape[1], out = B->shape[0];
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < in; j++) {
            double acc = 0;
            for (int64_t q = 0; q < r; q++)
                acc += (double)peft_f32(B)[o * r + q] * peft_f32(A)[q * in + j];
            p[o * in + j] = s * acc;
        }
}

static double max_abs(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* ---- linear / ties / magnitude_prune: A and B element by element ----------------------------- */

typedef struct gen_case {
    const char *arch, *type, *sign;
    const char *cases[3];
    double w[3];
    int n;
    double density;
} gen_case;

static const gen_case gen_cases[] = {
    {"gpt2", "linear", NULL, {"gpt2__lora_default", "gpt2__lora_rslora"}, {0.7, 0.4}, 2, NAN},
    {"llama", "linear", NULL, {"llama__lora_default", "llama__lora_targets"}, {1.0, 0.5}, 2, NAN},
    {"gpt2", "ties", "total", {"gpt2__lora_default", "gpt2__lora_rslora", "gpt2__lora_targets"},
     {0.5, 1.0, 0.8}, 3, 0.5},
    {"gpt2", "ties", "frequency", {"gpt2__lora_default", "gpt2__lora_rslora", "gpt2__lora_targets"},
     {0.5, 1.0, 0.8}, 3, 0.3},
    {"llama", "ties", "total", {"llama__lora_default", "llama__lora_targets", "llama__lora_rslora"},
     {1.0, 0.6, 0.3}, 3, 0.7},
    {"gpt2", "magnitude_prune", NULL, {"gpt2__lora_default", "gpt2__lora_rslora"}, {0.7, 0.4}, 2, 0.4},
    {"llama", "magnitude_prune", NULL, {"llama__lora_default", "llama__lora_targets"}, {1, 1}, 2, 0.0},
    {"gpt2", "ties", "total", {"gpt2__lora_default", "gpt2__lora_rslora"}, {0.7, 0.4}, 2, 1.0},
};
#define N_GEN ((int)(sizeof gen_cases / sizeof gen_cases[0]))

static const char *const src_names[3] = {"a", "b", "c"};

START_TEST(generalized_exact)
{
    const gen_case *c = &gen_cases[_i];
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = load(ctx, c->arch, c->cases, src_names, c->n);
    peft_combine_opts o = opts_of(c->type, c->density, c->sign);
    ck_assert_msg(peft_add_weighted_adapter(m, src_names, c->w, c->n, "new", &o) == 0, "%s",
                  peft_errmsg(ctx));
    peft_state_dict *sdn = sd_of(m, "new"), *sds[3];
    double v[3];
    for (int i = 0; i < c->n; i++) {
        sds[i] = sd_of(m, src_names[i]);
        v[i] = sqrt(c->w[i] * scaling_of(m, src_names[i]));
    }
    const double s_new = scaling_of(m, "new");
    ck_assert(fabs(s_new - 1.0) < 1e-12); /* lora_alpha = r; the first source is not rsLoRA */
    char mod[256];
    size_t it = 0;
    int sites = 0;
    double worst = 0;
    while (module_at(sdn, &it, mod, sizeof mod)) {
        sites++;
        for (int part = 0; part < 2; part++) {
            const char *which = part ? "lora_B" : "lora_A";
            const peft_tensor *got = find_t(sdn, mod, which);
            ck_assert_ptr_nonnull(got);
            double *t[3], vv[3];
            int k = 0;
            int64_t n = 0;
            for (int i = 0; i < c->n; i++) {
                const peft_tensor *src = find_t(sds[i], mod, which);
                if (!src) continue;
                n = src->numel;
                ck_assert_int_eq(src->numel, got->numel); /* equal ranks: same shapes */
                t[k] = malloc(sizeof(double) * n);
                for (int64_t e = 0; e < n; e++) t[k][e] = peft_f32(src)[e];
                if (!isnan(c->density) && strcmp(c->type, "linear"))
                    ref_prune_magnitude(t[k], n, c->density);
                vv[k++] = v[i];
            }
            ck_assert_msg(k > 0, "no source on %s", mod);
            double *ref = malloc(sizeof(double) * n);
            ref_merge(t, vv, k, n, !strcmp(c->type, "ties"), c->sign && !strcmp(c->sign, "frequency"), ref);
            double scale = fmax(max_abs(ref, n), 1e-3);
            for (int64_t e = 0; e < n; e++) {
                double d = fabs(peft_f32(got)[e] - ref[e]);
                ck_assert_msg(d <= 1e-6 * scale, "%s %s %s[%lld]: %g vs %g", c->type, mod, which,
                              (long long)e, peft_f32(got)[e], ref[e]);
                worst = fmax(worst, d / scale);
            }
            for (int i = 0; i < k; i++) free(t[i]);
            free(ref);
        }
    }
    ck_assert_int_gt(sites, 0);
    printf("%s %s (%s, density %g): %d modules, max relative diff %.2e\n", c->arch, c->type,
           c->sign ? c->sign : "-", c->density, sites, worst);
    for (int i = 0; i < c->n; i++) peft_state_dict_free(sds[i]);
    peft_state_dict_free(sdn);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* ---- svd types: products --------------------------------------------------------------------- */

typedef struct svd_case {
    const char *arch, *type;
    const char *cases[3];
    double w[3];
    int n, svd_rank;
    double density;
} svd_case;

static const svd_case svd_cases[] = {
    {"gpt2", "svd", {"gpt2__lora_default", "gpt2__lora_rslora"}, {0.7, -0.4}, 2, 0, NAN},
    {"gpt2", "svd", {"gpt2__lora_default", "gpt2__lora_rslora", "gpt2__lora_targets"},
     {0.7, -0.4, 1.2}, 3, 2, NAN},
    {"gpt2", "svd", {"gpt2__lora_default", "gpt2__lora_rslora"}, {0.7, -0.4}, 2, 8, NAN},
    {"llama", "svd", {"llama__lora_default", "llama__lora_targets"}, {1.0, 0.5}, 2, 6, NAN},
    {"gpt2", "ties_svd", {"gpt2__lora_default", "gpt2__lora_rslora"}, {0.7, 0.4}, 2, 32, 0.5},
    {"gpt2", "magnitude_prune_svd", {"gpt2__lora_default", "gpt2__lora_rslora"}, {0.7, 0.4}, 2, 32, 0.3},
    {"llama", "ties_svd", {"llama__lora_default", "llama__lora_targets"}, {1.0, 0.5}, 2, 16, 0.6},
};
#define N_SVD ((int)(sizeof svd_cases / sizeof svd_cases[0]))

START_TEST(svd_products)
{
    const svd_case *c = &svd_cases[_i];
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = load(ctx, c->arch, c->cases, src_names, c->n);
    peft_combine_opts o = opts_of(c->type, c->density, NULL);
    o.svd_rank = c->svd_rank;
    ck_assert_msg(peft_add_weighted_adapter(m, src_names, c->w, c->n, "new", &o) == 0, "%s",
                  peft_errmsg(ctx));
    peft_state_dict *sdn = sd_of(m, "new"), *sds[3];
    for (int i = 0; i < c->n; i++) sds[i] = sd_of(m, src_names[i]);
    const int want_r = c->svd_rank ? c->svd_rank : 4;
    const int ties = !strcmp(c->type, "ties_svd");
    char mod[256];
    size_t it = 0;
    double worst = 0;
    while (module_at(sdn, &it, mod, sizeof mod)) {
        const peft_tensor *A = find_t(sdn, mod, "lora_A"), *B = find_t(sdn, mod, "lora_B");
        ck_assert_int_eq(A->shape[0], want_r);
        const int out = (int)B->shape[0], in = (int)A->shape[1];
        const int64_t n = (int64_t)out * in;
        double *t[3], vv[3], *ref = malloc(sizeof(double) * n), *p = malloc(sizeof(double) * n);
        double *got = malloc(sizeof(double) * n);
        int k = 0;
        for (int i = 0; i < c->n; i++) {
            const peft_tensor *a = find_t(sds[i], mod, "lora_A"), *b = find_t(sds[i], mod, "lora_B");
            if (!a) continue;
            t[k] = malloc(sizeof(double) * n);
            product(a, b, scaling_of(m, src_names[i]), t[k]); /* delta_i = s_i B_i A_i */
            if (!isnan(c->density)) ref_prune_magnitude(t[k], n, c->density);
            vv[k++] = c->w[i];
        }
        ref_merge(t, vv, k, n, ties, 0, ref);
        ref_svd_product(ref, out, in, want_r, p);
        product(A, B, scaling_of(m, "new"), got);
        double scale = max_abs(p, n), d = 0;
        for (int64_t e = 0; e < n; e++) d = fmax(d, fabs(got[e] - p[e]));
        ck_assert_msg(d <= 2e-5 * scale, "%s on %s: |BA - svd| = %g (scale %g)", c->type, mod, d,
                      scale);
        worst = fmax(worst, d / scale);
        for (int i = 0; i < k; i++) free(t[i]);
        free(ref);
        free(p);
        free(got);
    }
    printf("%s %s rank %d: max |BA - truncated svd| / max = %.2e\n", c->arch, c->type, want_r, worst);
    for (int i = 0; i < c->n; i++) peft_state_dict_free(sds[i]);
    peft_state_dict_free(sdn);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* svd_clamp: the factors of the unclamped result, clamped at +-quantile(B ++ A, q) */
START_TEST(svd_clamp_quantile)
{
    const char *cases[2] = {"gpt2__lora_default", "gpt2__lora_targets"};
    const double w[2] = {1.0, 0.6}, q = 0.9;
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = load(ctx, "gpt2", cases, src_names, 2);
    peft_combine_opts o = opts_of("svd", NAN, NULL);
    ck_assert(peft_add_weighted_adapter(m, src_names, w, 2, "plain", &o) == 0);
    o.svd_clamp = q;
    ck_assert_msg(peft_add_weighted_adapter(m, src_names, w, 2, "clamped", &o) == 0, "%s",
                  peft_errmsg(ctx));
    peft_state_dict *s0 = sd_of(m, "plain"), *s1 = sd_of(m, "clamped");
    char mod[256];
    size_t it = 0;
    int clipped = 0;
    while (module_at(s1, &it, mod, sizeof mod)) {
        const peft_tensor *A0 = find_t(s0, mod, "lora_A"), *B0 = find_t(s0, mod, "lora_B");
        const peft_tensor *A1 = find_t(s1, mod, "lora_A"), *B1 = find_t(s1, mod, "lora_B");
        const int64_t na = A0->numel, nb = B0->numel;
        double *dist = malloc(sizeof(double) * (na + nb));
        for (int64_t e = 0; e < nb; e++) dist[e] = peft_f32(B0)[e];
        for (int64_t e = 0; e < na; e++) dist[nb + e] = peft_f32(A0)[e];
        qsort(dist, (size_t)(na + nb), sizeof *dist, cmp_d);
        double pos = q * (double)(na + nb - 1), lo_i = floor(pos);
        double hi = dist[(int64_t)lo_i] + (pos - lo_i) * (dist[(int64_t)ceil(pos)] - dist[(int64_t)lo_i]);
        for (int part = 0; part < 2; part++) {
            const peft_tensor *x0 = part ? B0 : A0, *x1 = part ? B1 : A1;
            for (int64_t e = 0; e < x0->numel; e++) {
                double want = fmin(fmax(peft_f32(x0)[e], -hi), hi);
                clipped += want != peft_f32(x0)[e];
                ck_assert_msg(fabs(peft_f32(x1)[e] - want) <= 1e-7 * fmax(1, fabs(want)),
                              "%s: %g vs %g", mod, peft_f32(x1)[e], want);
            }
        }
        free(dist);
    }
    ck_assert_int_gt(clipped, 0);
    peft_state_dict_free(s0);
    peft_state_dict_free(s1);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* ---- cat, and logits against the sources active together --------------------------------------- */

static float *logits(peft_ctx *ctx, peft_model *m, const char *case_name, int64_t *n)
{
    char rel[512];
    peft_inputs in;
    snprintf(rel, sizeof rel, "hf-peft/%s/inputs.json", case_name);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_model_outputs out;
    ck_assert_msg(peft_model_forward(m, g, &mi, &out) == 0, "%s", peft_errmsg(ctx));
    float *l = malloc(sizeof(float) * out.logits->numel);
    memcpy(l, out.logits->data, sizeof(float) * out.logits->numel);
    *n = out.logits->numel;
    peft_graph_free(g);
    peft_inputs_free(&in);
    return l;
}

/* the logits of the sources active together, each with runtime scale w_i: sum w_i delta_i */
static float *scaled_sum_logits(peft_ctx *ctx, peft_model *m, const char *const *names,
                                const double *w, int n, const char *case_name, int64_t *len)
{
    ck_assert(peft_set_adapters(m, names, n) == 0);
    for (int i = 0; i < n; i++) ck_assert(peft_set_adapter_scale(m, names[i], w[i]) == 0);
    float *l = logits(ctx, m, case_name, len);
    for (int i = 0; i < n; i++) ck_assert(peft_set_adapter_scale(m, names[i], 1.0) == 0);
    return l;
}

START_TEST(cat_exact_and_logits)
{
    static const struct {
        const char *arch, *cases[3];
        double w[3];
        int n;
    } cc[] = {
        {"gpt2", {"gpt2__lora_default", "gpt2__lora_rslora", "gpt2__lora_targets"}, {0.7, -0.4, 1.3}, 3},
        {"llama", {"llama__lora_default", "llama__lora_targets"}, {1.0, 0.5}, 2},
    };
    const int ci = _i;
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = load(ctx, cc[ci].arch, cc[ci].cases, src_names, cc[ci].n);
    peft_combine_opts o = opts_of("cat", NAN, NULL);
    ck_assert_msg(peft_add_weighted_adapter(m, src_names, cc[ci].w, cc[ci].n, "new", &o) == 0,
                  "%s", peft_errmsg(ctx));
    /* the config: r = the sum, lora_alpha = r, target_modules = the union */
    json_t *cfg = peft_find_adapter(m, "new")->config;
    ck_assert_int_eq(json_integer_value(json_object_get(cfg, "r")), 4 * cc[ci].n);
    ck_assert_int_eq(json_integer_value(json_object_get(cfg, "lora_alpha")), 4 * cc[ci].n);
    json_t *tm = json_object_get(cfg, "target_modules");
    ck_assert_int_eq(json_array_size(tm), ci == 0 ? 3 : 7);
    /* A and B */
    peft_state_dict *sdn = sd_of(m, "new"), *sds[3];
    for (int i = 0; i < cc[ci].n; i++) sds[i] = sd_of(m, src_names[i]);
    char mod[256];
    size_t it = 0;
    while (module_at(sdn, &it, mod, sizeof mod)) {
        const peft_tensor *A = find_t(sdn, mod, "lora_A"), *B = find_t(sdn, mod, "lora_B");
        const int64_t R = A->shape[0], in = A->shape[1], out = B->shape[0];
        int64_t off = 0;
        for (int i = 0; i < cc[ci].n; i++) {
            const peft_tensor *a = find_t(sds[i], mod, "lora_A"), *b = find_t(sds[i], mod, "lora_B");
            if (!a) continue;
            const double f = cc[ci].w[i] * scaling_of(m, src_names[i]);
            for (int64_t e = 0; e < a->numel; e++)
                ck_assert(fabs(peft_f32(A)[off * in + e] - f * peft_f32(a)[e]) <= 1e-7);
            for (int64_t r = 0; r < out; r++)
                for (int64_t j = 0; j < a->shape[0]; j++)
                    ck_assert(peft_f32(B)[r * R + off + j] == peft_f32(b)[r * a->shape[0] + j]);
            off += a->shape[0];
        }
        for (int64_t e = off * in; e < R * in; e++) ck_assert(peft_f32(A)[e] == 0.0f); /* padding */
    }
    /* logits: the new adapter alone == the sources active with scales w_i */
    const char *probe = cc[ci].cases[0];
    int64_t n1, n2;
    float *want = scaled_sum_logits(ctx, m, src_names, cc[ci].w, cc[ci].n, probe, &n1);
    ck_assert(peft_set_adapter(m, "new") == 0);
    float *got = logits(ctx, m, probe, &n2);
    ck_assert_int_eq(n1, n2);
    double d = tu_max_abs_diff(want, got, n1);
    printf("%s cat of %d: max |logits - sum of scaled sources| = %.2e\n", cc[ci].arch, cc[ci].n, d);
    ck_assert_msg(d <= 1e-5, "%g", d);
    free(want);
    free(got);
    for (int i = 0; i < cc[ci].n; i++) peft_state_dict_free(sds[i]);
    peft_state_dict_free(sdn);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* svd at a rank that holds the whole sum: the same logits as the scaled sources together */
START_TEST(svd_full_rank_logits)
{
    const char *cases[2] = {"gpt2__lora_default", "gpt2__lora_rslora"};
    const double w[2] = {0.7, -0.4};
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = load(ctx, "gpt2", cases, src_names, 2);
    peft_combine_opts o = opts_of("svd", NAN, NULL);
    o.svd_rank = 8;
    ck_assert(peft_add_weighted_adapter(m, src_names, w, 2, "new", &o) == 0);
    int64_t n1, n2;
    float *want = scaled_sum_logits(ctx, m, src_names, w, 2, cases[0], &n1);
    ck_assert(peft_set_adapter(m, "new") == 0);
    float *got = logits(ctx, m, cases[0], &n2);
    double d = tu_max_abs_diff(want, got, n1);
    printf("gpt2 svd rank 8 of 2 x r4: max |logits - sum of scaled sources| = %.2e\n", d);
    ck_assert_msg(d <= 1e-5, "%g", d);
    free(want);
    free(got);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* one source, weight 1: the adapter itself, whatever the type asked (PEFT: linear); rsLoRA's
 * new config keeps use_rslora (scaling sqrt(4) = 2) and the weights compensate, so the logits
 * are PEFT's for that case */
START_TEST(single_source_identity)
{
    static const char *const fx[2] = {"gpt2__lora_rslora", "llama__lora_default"};
    static const char *const ar[2] = {"gpt2", "llama"};
    peft_ctx *ctx = peft_ctx_new(0);
    const char *cases[1] = {fx[_i]};
    peft_model *m = load(ctx, ar[_i], cases, src_names, 1);
    const double w[1] = {1.0};
    peft_combine_opts o = opts_of("svd", NAN, NULL);
    ck_assert(peft_add_weighted_adapter(m, src_names, w, 1, "new", &o) == 0);
    ck_assert(peft_set_adapter(m, "new") == 0);
    int64_t n;
    float *got = logits(ctx, m, fx[_i], &n);
    char rel[512];
    snprintf(rel, sizeof rel, "hf-peft/%s/peft_logits.safetensors", fx[_i]);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, "logits");
    ck_assert_int_eq((int64_t)(e->nbytes / 4), n);
    double d = tu_max_abs_diff(got, e->data, n);
    printf("%s alone, weight 1: max |logits - PEFT's| = %.2e\n", fx[_i], d);
    ck_assert_msg(d <= 1e-5, "%g", d);
    peft_st_close(f);
    free(got);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* ---- DARE -------------------------------------------------------------------------------- */

/* for dare_linear, which sources each element kept: kept[i] counts, n_el counts elements; the
 * element must be (sum over the kept i of v_i t_i) / d for some subset */
static void dare_read_masks(peft_model *m, const char *newname, double d, const double *w,
                            int64_t kept[2], int64_t *n_el, uint8_t **masks, int64_t *n_masks)
{
    peft_state_dict *sdn = sd_of(m, newname), *s[2] = {sd_of(m, "a"), sd_of(m, "b")};
    double v[2] = {sqrt(w[0] * scaling_of(m, "a")), sqrt(w[1] * scaling_of(m, "b"))};
    char mod[256];
    size_t it = 0;
    *n_el = 0;
    kept[0] = kept[1] = 0;
    uint8_t *mk = NULL;
    int64_t nm = 0;
    while (module_at(sdn, &it, mod, sizeof mod)) {
        for (int part = 0; part < 2; part++) {
            const char *which = part ? "lora_B" : "lora_A";
            const peft_tensor *g = find_t(sdn, mod, which);
            const peft_tensor *t0 = find_t(s[0], mod, which), *t1 = find_t(s[1], mod, which);
            mk = realloc(mk, (size_t)(nm + g->numel));
            for (int64_t e = 0; e < g->numel; e++) {
                double a = v[0] * peft_f32(t0)[e], b = v[1] * peft_f32(t1)[e];
                double cand[4] = {0, a / d, b / d, (a + b) / d}, best = INFINITY;
                int which_c = -1;
                for (int c = 0; c < 4; c++) {
                    double dd = fabs(peft_f32(g)[e] - cand[c]);
                    if (dd < best) { best = dd; which_c = c; }
                }
                ck_assert_msg(best <= 1e-6 * (fabs(a) + fabs(b)) / d + 1e-9,
                              "%s %s[%lld] = %g is no masked sum / density", mod, which,
                              (long long)e, peft_f32(g)[e]);
                kept[0] += which_c & 1;
                kept[1] += (which_c >> 1) & 1;
                mk[nm++] = (uint8_t)which_c;
                (*n_el)++;
            }
        }
    }
    *masks = mk;
    *n_masks = nm;
    peft_state_dict_free(sdn);
    peft_state_dict_free(s[0]);
    peft_state_dict_free(s[1]);
}

static peft_model *dare_model(peft_ctx *ctx, const char *type, double d, const double *w,
                              const char *sign)
{
    const char *cases[2] = {"gpt2__lora_default", "gpt2__lora_rslora"}; /* both on c_attn only */
    peft_model *m = load(ctx, "gpt2", cases, src_names, 2);
    peft_combine_opts o = opts_of(type, d, sign);
    ck_assert_msg(peft_add_weighted_adapter(m, src_names, w, 2, "new", &o) == 0, "%s",
                  peft_errmsg(ctx));
    return m;
}

START_TEST(dare_linear_statistics)
{
    const double dens[2] = {0.5, 0.2}, d = dens[_i], w[2] = {0.8, 0.5};
    peft_ctx *ctx = peft_ctx_new(7);
    peft_model *m = dare_model(ctx, "dare_linear", d, w, NULL);
    int64_t kept[2], n;
    uint8_t *mk;
    int64_t nm;
    dare_read_masks(m, "new", d, w, kept, &n, &mk, &nm);
    for (int i = 0; i < 2; i++) {
        double frac = (double)kept[i] / (double)n, sd = sqrt(d * (1 - d) / (double)n);
        printf("dare_linear density %.2f: source %d kept %.4f of %lld values (5 sd = %.4f)\n", d,
               i, frac, (long long)n, 5 * sd);
        ck_assert_msg(fabs(frac - d) <= 5 * sd, "kept %g, density %g", frac, d);
    }
    /* same seed: the same masks; another seed: others */
    peft_ctx *c2 = peft_ctx_new(7), *c3 = peft_ctx_new(8);
    peft_model *m2 = dare_model(c2, "dare_linear", d, w, NULL), *m3 = dare_model(c3, "dare_linear", d, w, NULL);
    uint8_t *mk2, *mk3;
    int64_t nm2, nm3, k2[2], k3[2], n2, n3;
    dare_read_masks(m2, "new", d, w, k2, &n2, &mk2, &nm2);
    dare_read_masks(m3, "new", d, w, k3, &n3, &mk3, &nm3);
    ck_assert(nm == nm2 && nm == nm3);
    ck_assert(memcmp(mk, mk2, (size_t)nm) == 0);
    ck_assert(memcmp(mk, mk3, (size_t)nm) != 0);
    free(mk);
    free(mk2);
    free(mk3);
    peft_model_free(m);
    peft_model_free(m2);
    peft_model_free(m3);
    peft_ctx_free(ctx);
    peft_ctx_free(c2);
    peft_ctx_free(c3);
}
END_TEST

/* dare_ties draws the masks dare_linear draws with the same seed; given them, it is exact */
START_TEST(dare_ties_exact_given_masks)
{
    const double d = 0.5, w[2] = {0.8, 0.5};
    const char *sign = _i ? "frequency" : "total";
    peft_ctx *c1 = peft_ctx_new(11), *c2 = peft_ctx_new(11);
    peft_model *ml = dare_model(c1, "dare_linear", d, w, NULL);
    peft_model *mt = dare_model(c2, "dare_ties", d, w, sign);
    int64_t kept[2], n, nm;
    uint8_t *mk;
    dare_read_masks(ml, "new", d, w, kept, &n, &mk, &nm);
    peft_state_dict *sdn = sd_of(mt, "new"), *s[2] = {sd_of(mt, "a"), sd_of(mt, "b")};
    double v[2] = {sqrt(w[0] * scaling_of(mt, "a")), sqrt(w[1] * scaling_of(mt, "b"))};
    char mod[256];
    size_t it = 0;
    int64_t at = 0;
    double worst = 0;
    while (module_at(sdn, &it, mod, sizeof mod))
        for (int part = 0; part < 2; part++) {
            const char *which = part ? "lora_B" : "lora_A";
            const peft_tensor *g = find_t(sdn, mod, which);
            const peft_tensor *t0 = find_t(s[0], mod, which), *t1 = find_t(s[1], mod, which);
            for (int64_t e = 0; e < g->numel; e++, at++) {
                double x[2] = {(mk[at] & 1) ? peft_f32(t0)[e] / d : 0,
                               (mk[at] & 2) ? peft_f32(t1)[e] / d : 0};
                double *xp[2] = {&x[0], &x[1]}, want;
                ref_merge(xp, v, 2, 1, 1, _i, &want);
                double dd = fabs(peft_f32(g)[e] - want);
                ck_assert_msg(dd <= 1e-6 * fmax(fabs(want), 1e-3), "%s %s[%lld]: %g vs %g", mod,
                              which, (long long)e, peft_f32(g)[e], want);
                worst = fmax(worst, dd);
            }
        }
    ck_assert_int_eq(at, nm);
    printf("dare_ties (%s) given dare_linear's masks: max diff %.2e over %lld values\n", sign,
           worst, (long long)at);
    free(mk);
    peft_state_dict_free(sdn);
    peft_state_dict_free(s[0]);
    peft_state_dict_free(s[1]);
    peft_model_free(ml);
    peft_model_free(mt);
    peft_ctx_free(c1);
    peft_ctx_free(c2);
}
END_TEST

/* ---- refusals --------------------------------------------------------------------------------- */

static void expect_refusal(peft_model *m, const char *const *names, const double *w, int n,
                           const char *newname, const peft_combine_opts *o, int code,
                           const char *needle)
{
    int before = peft_adapter_count(m);
    int rc = peft_add_weighted_adapter(m, names, w, n, newname, o);
    const char *msg = peft_errmsg(peft_model_ctx(m));
    ck_assert_msg(rc == code, "rc %d (want %d): %s", rc, code, msg);
    ck_assert_msg(strstr(msg, needle), "message '%s' lacks '%s'", msg, needle);
    ck_assert_int_eq(peft_adapter_count(m), before); /* nothing added */
}

START_TEST(refusals)
{
    const char *cases[2] = {"gpt2__lora_default", "gpt2__lora_rslora"};
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = load(ctx, "gpt2", cases, src_names, 2);
    const double w[3] = {1.0, 0.5, 0.5}, neg[2] = {1.0, -0.5};
    peft_combine_opts o = opts_of("linear", NAN, NULL);
    /* an r = 8 adapter */
    ck_assert(peft_add_adapter(m, "r8", "{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, "
                                      "\"target_modules\": [\"c_attn\"], "
                                      "\"init_lora_weights\": false}") == 0);
    const char *ab[2] = {"a", "b"}, *a8[2] = {"a", "r8"}, *missing[2] = {"a", "nope"};
    expect_refusal(m, a8, w, 2, "x", &o, PEFT_EINVAL, "same r value");
    o.combination_type = "ties";
    o.density = 0.5;
    expect_refusal(m, a8, w, 2, "x", &o, PEFT_EINVAL, "'r8' r = 8");
    o.combination_type = "bogus";
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "invalid combination_type 'bogus'");
    o.combination_type = "linear";
    expect_refusal(m, missing, w, 2, "x", &o, PEFT_ENOTFOUND, "adapter 'nope' does not exist");
    expect_refusal(m, ab, neg, 2, "x", &o, PEFT_EINVAL, "weights must be >= 0");
    expect_refusal(m, ab, w, 2, "a", &o, PEFT_EINVAL, "named 'a' already exists");
    o = opts_of("ties", NAN, NULL);
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "needs a density");
    o = opts_of("dare_linear", 0.0, NULL);
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "density must be > 0");
    o = opts_of("ties", 0.5, "median");
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "majority_sign_method");
    o = opts_of("svd", NAN, NULL);
    o.svd_clamp = 1.5;
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "svd_clamp");
    /* svd_rank above min(in, out) = 32 with full matrices, then accepted when reduced */
    o = opts_of("svd", NAN, NULL);
    o.svd_rank = 40;
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "svd_full_matrices");
    o.svd_full_matrices = 0;
    ck_assert_msg(peft_add_weighted_adapter(m, ab, w, 2, "reduced", &o) == 0, "%s", peft_errmsg(ctx));
    /* cat and svd take unequal ranks (and negative weights) */
    o = opts_of("cat", NAN, NULL);
    ck_assert_msg(peft_add_weighted_adapter(m, a8, neg, 2, "cat12", &o) == 0, "%s", peft_errmsg(ctx));
    ck_assert_int_eq(json_integer_value(json_object_get(peft_find_adapter(m, "cat12")->config, "r")), 12);
    o = opts_of("svd", NAN, NULL);
    ck_assert(peft_add_weighted_adapter(m, a8, neg, 2, "svd8", &o) == 0);
    ck_assert_int_eq(json_integer_value(json_object_get(peft_find_adapter(m, "svd8")->config, "r")), 8);
    /* a regex target_modules with a list one */
    ck_assert(peft_add_adapter(m, "rx", "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, "
                                      "\"target_modules\": \".*c_attn\"}") == 0);
    const char *arx[2] = {"a", "rx"};
    o = opts_of("linear", NAN, NULL);
    expect_refusal(m, arx, w, 2, "x", &o, PEFT_EINVAL, "same target modules type");
    peft_model_free(m);

    /* DoRA sources */
    const char *dora[2] = {"gpt2__lora_default", "gpt2__dora"};
    m = load(ctx, "gpt2", dora, src_names, 2);
    o = opts_of("cat", NAN, NULL);
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "DoRA");
    peft_model_free(m);

    /* a non-LoRA source: an IA3 model, and LoRA + IA3 in a mixed model */
    const char *ia3[1] = {"gpt2__ia3"};
    m = load(ctx, "gpt2", ia3, src_names, 1);
    const char *one[1] = {"a"};
    expect_refusal(m, one, w, 1, "x", &o, PEFT_EINVAL, "cannot combine adapters");
    peft_model_free(m);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &base) == 0);
    ck_assert(peft_get_peft_model(ctx, base, "{\"peft_type\": \"LORA\", \"r\": 4, "
                                             "\"target_modules\": [\"c_fc\"]}", "a", 1, &m) == 0);
    ck_assert_msg(peft_load_adapter(m, tu_fixture("hf-peft/gpt2__ia3/adapter"), "b", 0) == 0, "%s",
                  peft_errmsg(ctx));
    expect_refusal(m, ab, w, 2, "x", &o, PEFT_EINVAL, "only adapters of one method");
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* regex target_modules: "(t1)|(t2)" */
START_TEST(regex_targets_joined)
{
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/llama"), &base) == 0);
    peft_model *m;
    ck_assert(peft_get_peft_model(ctx, base, "{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": "
                                             "\".*\\\\.q_proj\", \"init_lora_weights\": false}", "a", 0, &m) == 0);
    ck_assert(peft_add_adapter(m, "b", "{\"peft_type\": \"LORA\", \"r\": 4, \"target_modules\": "
                                       "\".*\\\\.0\\\\.mlp\\\\..*\", \"init_lora_weights\": false}") == 0);
    const char *ab[2] = {"a", "b"};
    const double w[2] = {1, 1};
    peft_combine_opts o = opts_of("linear", NAN, NULL);
    ck_assert_msg(peft_add_weighted_adapter(m, ab, w, 2, "new", &o) == 0, "%s", peft_errmsg(ctx));
    const char *tm = json_string_value(json_object_get(peft_find_adapter(m, "new")->config, "target_modules"));
    ck_assert_str_eq(tm, "(.*\\.q_proj)|(.*\\.0\\.mlp\\..*)");
    peft_state_dict *sd = sd_of(m, "new");
    ck_assert_int_eq(sd->n, 2 * (2 + 3)); /* q_proj x 2 layers + layer 0's 3 mlp linears */
    peft_state_dict_free(sd);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* ---- the command line ------------------------------------------------------------------------- */

START_TEST(cli_end_to_end)
{
    char *tmp = tu_tmpdir(), *out, path[4200];
    char model[4096], fa[4096], fb[4096]; /* tu_fixture's buffers rotate: keep copies */
    snprintf(model, sizeof model, "%s", tu_fixture("hf-peft/_models/gpt2"));
    snprintf(fa, sizeof fa, "%s", tu_fixture("hf-peft/gpt2__lora_default/adapter"));
    snprintf(fb, sizeof fb, "%s", tu_fixture("hf-peft/gpt2__lora_targets/adapter"));
    int rc = tu_run_peft(&out, "combine --model %s --adapter %s:x --adapter %s:y --weights 0.7,-0.4 "
                         "--combination-type cat --output %s/comb", model, fa, fb, tmp);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "combined 2 adapters (cat) into 'default'"), "%s", out);
    free(out);
    /* PEFT's files: r, lora_alpha, the union of targets, the keys */
    snprintf(path, sizeof path, "%s/comb/adapter_config.json", tmp);
    json_t *cfg = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(json_integer_value(json_object_get(cfg, "r")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(cfg, "lora_alpha")), 8);
    ck_assert_str_eq(json_string_value(json_object_get(cfg, "peft_type")), "LORA");
    ck_assert_int_eq(json_array_size(json_object_get(cfg, "target_modules")), 3);
    json_decref(cfg);
    snprintf(path, sizeof path, "%s/comb/adapter_model.safetensors", tmp);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), path, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->shape[0], 8);
    ck_assert_ptr_nonnull(peft_st_find(f, "base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight"));
    peft_st_close(f);

    /* peft forward on the written adapter == the two sources active with scales 0.7, -0.4 */
    rc = tu_run_peft(&out, "forward --model %s --adapter %s/comb --input %s --output %s/o.safetensors",
                     model, tmp, tu_fixture("hf-peft/gpt2__lora_default/inputs.json"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    peft_ctx *ctx = peft_ctx_new(0);
    const char *cases[2] = {"gpt2__lora_default", "gpt2__lora_targets"};
    const double w[2] = {0.7, -0.4};
    peft_model *m = load(ctx, "gpt2", cases, src_names, 2);
    int64_t n;
    float *want = scaled_sum_logits(ctx, m, src_names, w, 2, cases[0], &n);
    snprintf(path, sizeof path, "%s/o.safetensors", tmp);
    ck_assert_msg(peft_st_open(tu_ctx(), path, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    e = peft_st_find(f, "logits");
    ck_assert_int_eq((int64_t)(e->nbytes / 4), n);
    double d = tu_max_abs_diff(want, e->data, n);
    printf("peft combine (cat) -> peft forward: max |logits - sum of scaled sources| = %.2e\n", d);
    ck_assert_msg(d <= 1e-5, "%g", d);
    peft_st_close(f);
    free(want);
    peft_model_free(m);
    peft_ctx_free(ctx);

    /* a named result goes to OUTPUT/NAME; dare with a seed; errors exit non-zero with a message */
    rc = tu_run_peft(&out, "combine --model %s --adapter %s --adapter %s --weights 1,1 --combination-type "
                     "dare_ties --density 0.5 --seed 3 --name mix --output %s/comb2", model, fa, fb, tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/comb2/mix/adapter_config.json", tmp);
    cfg = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(cfg);
    json_decref(cfg);
    rc = tu_run_peft(&out, "combine --model %s --adapter %s --adapter %s --weights 1,1 --combination-type "
                     "nope --output %s/bad", model, fa, fb, tmp);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(out, "invalid combination_type 'nope'"), "%s", out);
    free(out);
    rc = tu_run_peft(&out, "combine --model %s --adapter %s --adapter %s --weights 1 --combination-type "
                     "cat --output %s/bad", model, fa, fb, tmp);
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(out, "1 values for 2 adapters"), "%s", out);
    free(out);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("combine");
    TCase *t = tcase_create("add_weighted_adapter");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, generalized_exact, 0, N_GEN);
    tcase_add_loop_test(t, svd_products, 0, N_SVD);
    tcase_add_test(t, svd_clamp_quantile);
    tcase_add_loop_test(t, cat_exact_and_logits, 0, 2);
    tcase_add_test(t, svd_full_rank_logits);
    tcase_add_loop_test(t, single_source_identity, 0, 2);
    tcase_add_loop_test(t, dare_linear_statistics, 0, 2);
    tcase_add_loop_test(t, dare_ties_exact_given_masks, 0, 2);
    tcase_add_test(t, refusals);
    tcase_add_test(t, regex_targets_joined);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("cli");
    tcase_set_timeout(c, 120);
    tcase_add_test(c, cli_end_to_end);
    suite_add_tcase(s, c);
    int failed = tu_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* lora_combine.c — PEFT's add_weighted_adapter on one site (LoraModel.add_weighted_adapter,
 * _generalized_task_arithmetic_weighted_adapter, _svd_generalized_task_arithmetic_weighted_adapter
 * and peft/utils/merge_utils.py of PEFT 0.13.2): fills the new adapter's freshly injected lora_A
 * / lora_B from the source adapters' on this site.
 *
 * With w_i the user's weights, s_i the sources' scalings (alpha/r or alpha/sqrt(r), times a
 * runtime scale) and s_new the new adapter's own scaling (1 for PEFT's lora_alpha = r):
 *   cat      A = [w_1 s_1 A_1; w_2 s_2 A_2; ...] / s_new  (rows),  B = [B_1, B_2, ...]  (columns)
 *   linear, ties, dare_linear, dare_ties, magnitude_prune (equal ranks): the A's and the B's are
 *            merged separately with weights v_i = sqrt(w_i s_i), each divided by sqrt(s_new)
 *   *svd     the delta weights D_i = s_i B_i A_i (out, in) are merged with weights w_i, then
 *            D ~= U S Vh truncated to the new rank: B = U S / s_new, A = Vh (svd_clamp: both
 *            clamped to +-quantile(U S ++ Vh, svd_clamp) first, as PEFT)
 * Merges (peft/utils/merge_utils.py) of task tensors t_i with weights v_i and density d:
 *   task_arithmetic  sum v_i t_i
 *   magnitude_prune  sum v_i top_d(t_i)        top_d: keeps the int(d n) largest |t|, zeroes
 *                                              the rest
 *   ties             disjoint(top_d(t_i))      disjoint: per element, the majority sign is that
 *   dare_linear      sum v_i bern_d(t_i) / d    of sum t_i ("total") or of sum sign(t_i)
 *   dare_ties        disjoint(bern_d(t_i) / d)  ("frequency"), + when >= 0; the result is the
 *                                              mean of v_i t_i over the t_i of that sign
 *   bern_d: each value kept with probability d (host RNG), else 0
 * The svd_rank of the options is informative: the new rank is the new adapter's r.
 *
 * Departures from PEFT 0.13.2, each a bug PEFT fixed later or one that gives a silently wrong
 * adapter: the svd variants weigh D_i by w_i alone (0.13.2 multiplies by s_i a second time,
 * fixed in PEFT#3111); DARE rescales the kept values by 1/d (0.13.2 discards the division,
 * fixed in PEFT#3152); the result is divided by s_new (0.13.2 inherits use_rslora from the first
 * source and leaves the adapter sqrt(r) times too large, fixed in PEFT#3449); DoRA adapters are
 * refused (0.13.2 drops their magnitude vectors). DARE's masks come from the host RNG, not
 * torch.bernoulli: deterministic per seed, not bit-equal to PEFT. Zero-padding: a site whose
 * result has fewer rows than the new rank (cat of smaller ranks, svd_rank > min(in, out) with
 * svd_full_matrices false) keeps zeros in the rest, so B A is the same as PEFT's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"

/* what each combination_type does */
#define MERGE_TA 0    /* task_arithmetic */
#define MERGE_TIES 1
#define MERGE_DARE_LINEAR 2
#define MERGE_DARE_TIES 3
#define MERGE_MAG 4   /* magnitude_prune */

#define PATH_GEN 0    /* A and B merged separately */
#define PATH_CAT 1
#define PATH_SVD 2

static const struct {
    const char *name;
    int path, merge;
} comb_types[] = {
    {"linear", PATH_GEN, MERGE_TA},
    {"ties", PATH_GEN, MERGE_TIES},
    {"dare_linear", PATH_GEN, MERGE_DARE_LINEAR},
    {"dare_ties", PATH_GEN, MERGE_DARE_TIES},
    {"magnitude_prune", PATH_GEN, MERGE_MAG},
    {"cat", PATH_CAT, MERGE_TA},
    {"svd", PATH_SVD, MERGE_TA},
    {"ties_svd", PATH_SVD, MERGE_TIES},
    {"dare_linear_svd", PATH_SVD, MERGE_DARE_LINEAR},
    {"dare_ties_svd", PATH_SVD, MERGE_DARE_TIES},
    {"magnitude_prune_svd", PATH_SVD, MERGE_MAG},
};
#define N_TYPES ((int)(sizeof comb_types / sizeof comb_types[0]))

typedef struct comb_opts {
    int path, merge;
    double density;    /* NAN: not given */
    int sign_freq;     /* majority_sign_method "frequency" (else "total") */
    double clamp;      /* svd_clamp quantile, NAN: none */
    int full_matrices; /* svd_full_matrices */
} comb_opts;

static int merge_needs_density(int merge) { return merge != MERGE_TA; }
static int merge_is_dare(int merge) { return merge == MERGE_DARE_LINEAR || merge == MERGE_DARE_TIES; }

static int parse_opts(const peft_cfg *c, comb_opts *o, char *err, size_t errlen)
{
    const char *type = lora_host->cfg_str(c, "combination_type");
    o->path = -1;
    for (int i = 0; type && i < N_TYPES; i++)
        if (!strcmp(type, comb_types[i].name)) {
            o->path = comb_types[i].path;
            o->merge = comb_types[i].merge;
        }
    if (o->path < 0) {
        peft_pu_errf(err, errlen, "combination_type '%s' is not one of linear, cat, svd, ties, "
                     "ties_svd, dare_linear, dare_ties, dare_linear_svd, dare_ties_svd, "
                     "magnitude_prune, magnitude_prune_svd", type ? type : "(missing)");
        return -1;
    }
    o->density = NAN;
    int t = lora_host->cfg_type(c, "density");
    if (t != PEFT_CFG_MISSING && t != PEFT_CFG_NULL &&
        (lora_host->cfg_real(c, "density", &o->density) || !isfinite(o->density))) {
        peft_pu_errf(err, errlen, "density must be a finite number");
        return -1;
    }
    if (merge_needs_density(o->merge)) {
        if (isnan(o->density)) {
            peft_pu_errf(err, errlen, "combination_type '%s' needs a density (the fraction of "
                         "values kept, in [0, 1])", type);
            return -1;
        }
        if (o->density < 0 || (merge_is_dare(o->merge) && o->density == 0)) {
            peft_pu_errf(err, errlen, "density must be %s for combination_type '%s', got %g",
                         merge_is_dare(o->merge) ? "> 0 (DARE rescales by 1/density)" : ">= 0",
                         type, o->density);
            return -1;
        }
    }
    const char *sm = lora_host->cfg_str(c, "majority_sign_method");
    if (sm && strcmp(sm, "total") && strcmp(sm, "frequency")) {
        peft_pu_errf(err, errlen, "majority_sign_method must be \"total\" or \"frequency\", got "
                     "\"%s\"", sm);
        return -1;
    }
    o->sign_freq = sm && !strcmp(sm, "frequency");
    o->clamp = NAN;
    t = lora_host->cfg_type(c, "svd_clamp");
    if (t != PEFT_CFG_MISSING && t != PEFT_CFG_NULL &&
        (lora_host->cfg_real(c, "svd_clamp", &o->clamp) || !(o->clamp >= 0 && o->clamp <= 1))) {
        peft_pu_errf(err, errlen, "svd_clamp must be a quantile in [0, 1]");
        return -1;
    }
    o->full_matrices = 1;
    if (lora_host->cfg_type(c, "svd_full_matrices") == PEFT_CFG_BOOL)
        lora_host->cfg_bool(c, "svd_full_matrices", &o->full_matrices);
    return 0;
}

/* ---- merge_utils ------------------------------------------------------------------------ */

typedef struct mag_ix {
    double mag;
    int64_t ix;
} mag_ix;

/* largest magnitude first; equal magnitudes in index order */
static int by_mag_desc(const void *pa, const void *pb)
{
    const mag_ix *a = pa, *b = pb;
    if (a->mag != b->mag) return a->mag < b->mag ? 1 : -1;
    return (a->ix > b->ix) - (a->ix < b->ix);
}

/* magnitude_based_pruning: t (n) keeps its k = int(d n) largest |t|, the rest -> 0 */
static int prune_magnitude(double *t, int64_t n, double d)
{
    if (d >= 1) return 0; /* PEFT: "no pruning will be performed" */
    int64_t k = (int64_t)(d * (double)n);
    mag_ix *ix = malloc((size_t)n * sizeof *ix);
    if (!ix) return -1;
    for (int64_t i = 0; i < n; i++) ix[i] = (mag_ix){fabs(t[i]), i};
    qsort(ix, (size_t)n, sizeof *ix, by_mag_desc);
    for (int64_t i = k; i < n; i++) t[ix[i].ix] = 0.0;
    free(ix);
    return 0;
}

/* random_pruning with rescale: t (n) element kept with probability d (bernoulli(d)) and then
 * divided by d, else 0 */
static void prune_random(double *t, int64_t n, double d, peft_rng *rng)
{
    if (d >= 1) return;
    for (int64_t i = 0; i < n; i++)
        t[i] = lora_host->rng_uniform(rng) < d ? t[i] / d : 0.0;
}

static double sign_of(double x) { return (double)((x > 0) - (x < 0)); }

/* Merges k task tensors t[i] (n each; pruned in place) with weights v (k) into out (n). */
static int merge_tasks(const comb_opts *o, double *const *t, const double *v, int k, int64_t n,
                       peft_rng *rng, double *out)
{
    for (int i = 0; i < k; i++) {
        if (o->merge == MERGE_TIES || o->merge == MERGE_MAG) {
            if (prune_magnitude(t[i], n, o->density)) return -1;
        } else if (merge_is_dare(o->merge)) {
            prune_random(t[i], n, o->density, rng);
        }
    }
    const int ties = o->merge == MERGE_TIES || o->merge == MERGE_DARE_TIES;
    for (int64_t e = 0; e < n; e++) {
        if (!ties) { /* task_arithmetic over the (pruned) tensors */
            double s = 0;
            for (int i = 0; i < k; i++) s += v[i] * t[i][e];
            out[e] = s;
            continue;
        }
        /* calculate_majority_sign_mask on the unweighted tensors, then disjoint_merge */
        double m = 0;
        for (int i = 0; i < k; i++) m += o->sign_freq ? sign_of(t[i][e]) : t[i][e];
        const double maj = m >= 0 ? 1.0 : -1.0;
        double s = 0;
        int kept = 0;
        for (int i = 0; i < k; i++)
            if (sign_of(t[i][e]) == maj) {
                s += v[i] * t[i][e];
                kept++;
            }
        out[e] = s / (kept > 1 ? kept : 1);
    }
    return 0;
}

/* ---- the three paths ------------------------------------------------------------------ */

static double src_scaling(const lora_state *s) { return s->scaling * s->mult; }

/* cat: A rows and B columns side by side */
static int combine_cat(lora_state *dst, lora_state *const *v, const double *w, int k,
                       char *err, size_t errlen)
{
    const int64_t in = dst->in_features, outf = dst->out_features, R = dst->r;
    int64_t total = 0;
    for (int i = 0; i < k; i++) total += v[i]->r;
    if (total > R) {
        peft_pu_errf(err, errlen, "cat: the sources' ranks here sum to %lld, more than the new "
                     "adapter's r = %lld", (long long)total, (long long)R);
        return -1;
    }
    const double s_new = src_scaling(dst);
    float *A = peft_f32(dst->A), *B = peft_f32(dst->B);
    int64_t off = 0;
    for (int i = 0; i < k; i++) {
        const float *a = peft_f32(v[i]->A), *b = peft_f32(v[i]->B);
        const int64_t r = v[i]->r;
        const double f = w[i] * src_scaling(v[i]) / s_new;
        for (int64_t j = 0; j < r * in; j++) A[off * in + j] = (float)(a[j] * f);
        for (int64_t o = 0; o < outf; o++)
            for (int64_t j = 0; j < r; j++) B[o * R + off + j] = b[o * r + j];
        off += r;
    }
    return 0;
}

/* linear / ties / dare_* / magnitude_prune on the A's, then on the B's (equal ranks) */
static int combine_gen(lora_state *dst, lora_state *const *v, const double *w, int k,
                       const comb_opts *o, peft_rng *rng, char *err, size_t errlen)
{
    const int64_t in = dst->in_features, outf = dst->out_features, R = dst->r, r = v[0]->r;
    for (int i = 1; i < k; i++)
        if (v[i]->r != r) {
            peft_pu_errf(err, errlen, "the sources have different ranks here (%lld and %lld): "
                         "this combination_type needs equal ranks (use cat or svd)",
                         (long long)r, (long long)v[i]->r);
            return -1;
        }
    if (r > R) {
        peft_pu_errf(err, errlen, "the sources' rank here (%lld) exceeds the new adapter's "
                     "r = %lld", (long long)r, (long long)R);
        return -1;
    }
    double vw[k];
    for (int i = 0; i < k; i++) {
        const double p = w[i] * src_scaling(v[i]);
        if (!(p >= 0)) {
            peft_pu_errf(err, errlen, "weight %g times scaling %g is negative: this "
                         "combination_type weighs A and B by its square root (use cat or svd for "
                         "negative weights)", w[i], src_scaling(v[i]));
            return -1;
        }
        vw[i] = sqrt(p);
    }
    const double f = 1.0 / sqrt(src_scaling(dst));
    int rc = -1;
    double *buf = malloc((size_t)(k + 1) * (size_t)(r * (in > outf ? in : outf)) * sizeof *buf);
    double *t[k];
    if (!buf) goto oom;
    for (int part = 0; part < 2; part++) { /* 0: lora_A (r, in), 1: lora_B (out, r) */
        const int64_t n = part == 0 ? r * in : outf * r;
        double *res = buf + (size_t)k * (size_t)n;
        for (int i = 0; i < k; i++) {
            t[i] = buf + (size_t)i * (size_t)n;
            const float *src = peft_f32(part == 0 ? v[i]->A : v[i]->B);
            for (int64_t e = 0; e < n; e++) t[i][e] = src[e];
        }
        if (merge_tasks(o, t, vw, k, n, rng, res)) goto oom;
        if (part == 0) {
            float *A = peft_f32(dst->A);
            for (int64_t e = 0; e < n; e++) A[e] = (float)(res[e] * f);
        } else {
            float *B = peft_f32(dst->B);
            for (int64_t oo = 0; oo < outf; oo++)
                for (int64_t j = 0; j < r; j++) B[oo * R + j] = (float)(res[oo * r + j] * f);
        }
    }
    rc = 0;
    goto done;
oom:
    peft_pu_errf(err, errlen, "out of memory combining adapters");
done:
    free(buf);
    return rc;
}

static int cmp_double(const void *pa, const void *pb)
{
    const double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

/* torch.quantile(x, q) (linear interpolation) of x (n), sorted in place */
static double quantile(double *x, int64_t n, double q)
{
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    const double pos = q * (double)(n - 1);
    const int64_t lo = (int64_t)floor(pos), hi = (int64_t)ceil(pos);
    return x[lo] + (pos - (double)lo) * (x[hi] - x[lo]);
}

/* the *svd types: merge the delta weights D_i = s_i B_i A_i (out, in), then a truncated SVD */
/* D (out, in) = s * B (out, r) @ A (r, in), in double: the adapter's delta weight */
static void delta_weight(const lora_state *a, int64_t outf, int64_t in, double *D)
{
    const float *A = peft_f32(a->A), *B = peft_f32(a->B);
    const int64_t r = a->r;
    const double si = src_scaling(a);
    for (int64_t oo = 0; oo < outf; oo++)
        for (int64_t j = 0; j < in; j++) {
            double acc = 0;
            for (int64_t q = 0; q < r; q++) acc += (double)B[oo * r + q] * A[q * in + j];
            D[oo * in + j] = si * acc;
        }
}

static int combine_svd(lora_state *dst, lora_state *const *v, const double *w, int k,
                       const comb_opts *o, peft_rng *rng, char *err, size_t errlen)
{
    const int64_t in = dst->in_features, outf = dst->out_features, R = dst->r;
    const int64_t kk = in < outf ? in : outf, n = outf * in;
    if (!PEFT_PU_HOST_HAS(lora_host, svd, 1)) {
        peft_pu_errf(err, errlen, "the svd combination types need the host's svd entry (ABI 1.1)");
        return -1;
    }
    if (o->full_matrices && R > kk) {
        peft_pu_errf(err, errlen, "the new rank %lld exceeds min(in, out) = %lld: with "
                     "svd_full_matrices (PEFT's default) U[:, :r] @ diag(S) has no such shape; "
                     "pass svd_full_matrices false or a smaller svd_rank", (long long)R,
                     (long long)kk);
        return -1;
    }
    const int64_t t_r = R < kk ? R : kk; /* singular triplets kept */
    int rc = -1;
    double *d = malloc((size_t)(k + 1) * (size_t)n * sizeof *d);
    float *df = malloc((size_t)n * sizeof *df), *u = malloc((size_t)(outf * kk) * sizeof *u);
    float *s = malloc((size_t)kk * sizeof *s), *vt = malloc((size_t)(kk * in) * sizeof *vt);
    double *dist = malloc((size_t)(t_r * (outf + in)) * sizeof *dist);
    double *t[k];
    if (!d || !df || !u || !s || !vt || !dist) goto oom;
    for (int i = 0; i < k; i++) {
        t[i] = d + (size_t)i * (size_t)n;
        delta_weight(v[i], outf, in, t[i]);
    }
    double *res = d + (size_t)k * (size_t)n;
    if (merge_tasks(o, t, w, k, n, rng, res)) goto oom;
    for (int64_t e = 0; e < n; e++) df[e] = (float)res[e];
    if (lora_host->svd((int)outf, (int)in, df, u, s, vt)) {
        peft_pu_errf(err, errlen, "the SVD of the combined (%lld, %lld) delta weight failed "
                     "(LAPACK)", (long long)outf, (long long)in);
        goto done;
    }
    /* US (out, t_r) = U[:, :t_r] diag(S[:t_r]), Vh (t_r, in); the dist PEFT clamps over */
    double *us = dist, *vh = dist + t_r * outf;
    for (int64_t oo = 0; oo < outf; oo++)
        for (int64_t j = 0; j < t_r; j++) us[oo * t_r + j] = (double)u[oo * kk + j] * s[j];
    for (int64_t j = 0; j < t_r; j++)
        for (int64_t c = 0; c < in; c++) vh[j * in + c] = vt[j * in + c];
    double lo = -INFINITY, hi = INFINITY;
    if (!isnan(o->clamp)) {
        const int64_t nd = t_r * (outf + in);
        double *sorted = malloc((size_t)nd * sizeof *sorted);
        if (!sorted) goto oom;
        memcpy(sorted, dist, (size_t)nd * sizeof *sorted);
        hi = quantile(sorted, nd, o->clamp);
        lo = -hi;
        free(sorted);
    }
    /* torch.clamp(x, lo, hi) = min(max(x, lo), hi) */
#define CLAMP(x) fmin(fmax((x), lo), hi)
    const double s_new = src_scaling(dst);
    float *A = peft_f32(dst->A), *B = peft_f32(dst->B);
    memset(A, 0, (size_t)(R * in) * sizeof *A);
    memset(B, 0, (size_t)(outf * R) * sizeof *B);
    for (int64_t oo = 0; oo < outf; oo++)
        for (int64_t j = 0; j < t_r; j++) B[oo * R + j] = (float)(CLAMP(us[oo * t_r + j]) / s_new);
    for (int64_t j = 0; j < t_r; j++)
        for (int64_t c = 0; c < in; c++) A[j * in + c] = (float)CLAMP(vh[j * in + c]);
#undef CLAMP
    rc = 0;
    goto done;
oom:
    peft_pu_errf(err, errlen, "out of memory combining adapters");
done:
    free(d);
    free(df);
    free(u);
    free(s);
    free(vt);
    free(dist);
    return rc;
}

/* ---- the vtable entry ------------------------------------------------------------------- */

int lora_combine(void *dst_state, void *const *srcs, const double *weights, int n,
                 const peft_cfg *opts, const peft_site_info *site, peft_rng *rng, char *err,
                 size_t errlen)
{
    lora_state *dst = dst_state;
    if (!dst || !srcs || !weights || n < 1 || !opts || !site || !rng) {
        peft_pu_errf(err, errlen, "lora combine: missing argument");
        return -1;
    }
    if (n > LORA_COMBINE_MAX) {
        peft_pu_errf(err, errlen, "lora combine: %d source adapters, at most %d", n,
                     LORA_COMBINE_MAX);
        return -1;
    }
    comb_opts o;
    if (parse_opts(opts, &o, err, errlen)) return -1;
    if (dst->magnitude || dst->merged) {
        peft_pu_errf(err, errlen, "the new adapter is %s", dst->magnitude ? "DoRA (use_dora): "
                     "combining DoRA adapters is not supported" : "merged: unmerge it first");
        return -1;
    }
    if (dst->in_features != site->in_features || dst->out_features != site->out_features) {
        peft_pu_errf(err, errlen, "the new adapter's shape does not fit the module");
        return -1;
    }
    /* the sources present on this site, in the order given */
    lora_state *v[n];
    double w[n];
    int k = 0;
    for (int i = 0; i < n; i++) {
        lora_state *s = srcs[i];
        if (!s) continue;
        if (!isfinite(weights[i])) {
            peft_pu_errf(err, errlen, "source %d has a non-finite weight", i);
            return -1;
        }
        if (s->magnitude) {
            peft_pu_errf(err, errlen, "source %d is a DoRA adapter (use_dora): combining DoRA "
                         "adapters is not supported (PEFT 0.13.2 drops the magnitude vector)", i);
            return -1;
        }
        if (s->in_features != dst->in_features || s->out_features != dst->out_features) {
            peft_pu_errf(err, errlen, "source %d was made for (in=%lld, out=%lld), the module is "
                         "(in=%lld, out=%lld)", i, (long long)s->in_features,
                         (long long)s->out_features, (long long)dst->in_features,
                         (long long)dst->out_features);
            return -1;
        }
        v[k] = s;
        w[k++] = weights[i];
    }
    if (k == 0) {
        peft_pu_errf(err, errlen, "none of the source adapters has a LoRA on this module");
        return -1;
    }
    if (!(src_scaling(dst) > 0)) {
        peft_pu_errf(err, errlen, "the new adapter's scaling is %g: it must be positive",
                     src_scaling(dst));
        return -1;
    }
    memset(peft_f32(dst->A), 0, (size_t)dst->A->numel * sizeof(float));
    memset(peft_f32(dst->B), 0, (size_t)dst->B->numel * sizeof(float));
    switch (o.path) {
    case PATH_CAT: return combine_cat(dst, v, w, k, err, errlen);
    case PATH_SVD: return combine_svd(dst, v, w, k, &o, rng, err, errlen);
    default: return combine_gen(dst, v, w, k, &o, rng, err, errlen);
    }
}

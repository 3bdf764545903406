/* lora_init_svd.c — LoRA initialisations that decompose the base weight (PEFT 0.13.2
 * LoraLayer.pissa_init and olora_init): lora_A and lora_B come from an SVD (PiSSA) or a QR
 * (OLoRA) of W (out, in), and the residual W - scaling * B @ A is written back through the host
 * (ABI 1.1 site_weight_writable), after which it IS the base weight (disable_adapter and unload
 * give the residual model, as in PEFT).
 *
 * Only nn.Linear sites: on GPT-2's Conv1D (weight (in, out)) PEFT 0.13.2 decomposes the
 * untransposed weight and fails at the first forward, so both are refused there. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "lora.h"

/* the host has the ABI 1.1 linear-algebra entries */
static int host_has_linalg(void)
{
    return PEFT_PU_HOST_HAS(lora_host, site_weight_writable, 1) &&
           PEFT_PU_HOST_HAS(lora_host, svd, 1) && PEFT_PU_HOST_HAS(lora_host, qr, 1);
}

/* shared refusals; what = "PiSSA" / "OLoRA" */
static int check_site(const lora_state *st, const peft_site_info *site, const char *what,
                      char *err, size_t errlen)
{
    const char *name = site->name ? site->name : "?";
    if (!host_has_linalg()) {
        peft_pu_errf(err, errlen, "lora: %s init of '%s' needs a host with ABI 1.1 (svd, qr, "
                     "site_weight_writable); this host speaks %u.%u", what, name,
                     (unsigned)lora_host->abi_major, (unsigned)lora_host->abi_minor);
        return -1;
    }
    if (site->kind != PEFT_SITE_LINEAR || site->fan_in_fan_out) {
        peft_pu_errf(err, errlen, "lora: init_lora_weights %s is not supported on '%s', a "
                     "transformers Conv1D (weight stored (in, out)): PEFT 0.13.2 decomposes the "
                     "untransposed weight there and fails; target nn.Linear layers only", what,
                     name);
        return -1;
    }
    int64_t k = site->in_features < site->out_features ? site->in_features : site->out_features;
    if (st->r > k) {
        peft_pu_errf(err, errlen, "lora: %s init of '%s': r = %lld exceeds min(in, out) = %lld, "
                     "the rank of the weight (out=%lld, in=%lld)", what, name, (long long)st->r,
                     (long long)k, (long long)site->out_features, (long long)site->in_features);
        return -1;
    }
    if (site->weight->dtype != PEFT_DTYPE_F32 && site->weight->dtype != PEFT_DTYPE_BF16 &&
        site->weight->dtype != PEFT_DTYPE_F16) {
        peft_pu_errf(err, errlen, "lora: %s init of '%s': the base weight must be float32, float16 "
                     "or bfloat16 (dtype code %d)", what, name, (int)site->weight->dtype);
        return -1;
    }
    return 0;
}

/* round x to the stored dtype (PEFT: weight.to(dtype) after computing in float32) */
static float round_to(float x, int32_t dtype)
{
    if (dtype == PEFT_DTYPE_F16) return (float)(_Float16)x;
    if (dtype == PEFT_DTYPE_BF16) {
        union {
            float f;
            uint32_t u;
        } v = {.f = x};
        if ((v.u & 0x7f800000u) == 0x7f800000u) return x; /* Inf / NaN unchanged */
        v.u += 0x7fffu + ((v.u >> 16) & 1u);                /* round to nearest even */
        v.u &= 0xffff0000u;
        return v.f;
    }
    return x;
}

/* W (out, in) -= (s * B) (out, r) @ A (r, in), evaluated in PEFT's order; written to the site as
 * the new base weight. w holds W in float32. */
static int write_residual(lora_state *st, const peft_site_info *site, float *w, char *err,
                          size_t errlen)
{
    const int outf = (int)st->out_features, in = (int)st->in_features, r = (int)st->r;
    const float s = (float)st->scaling;
    const int32_t dtype = site->weight->dtype;
    float *sb = lora_host->alloc((size_t)outf * (size_t)r * sizeof *sb);
    float *d = lora_host->alloc((size_t)outf * (size_t)in * sizeof *d);
    if (!sb || !d) {
        lora_host->free(sb);
        lora_host->free(d);
        peft_pu_errf(err, errlen, "lora: out of memory for the residual of '%s'", site->name);
        return -1;
    }
    const float *b = peft_f32(st->B);
    for (int64_t i = 0; i < (int64_t)outf * r; i++) sb[i] = s * b[i];
    /* d (out, in) = sb (out, r) @ A (r, in) */
    peft_pu_gemm(lora_host, 0, 0, outf, in, r, 1.0f, sb, peft_f32(st->A), 0.0f, d);
    float *base = lora_host->site_weight_writable(site);
    if (!base) {
        lora_host->free(sb);
        lora_host->free(d);
        peft_pu_errf(err, errlen, "lora: cannot rewrite the base weight of '%s' (out of memory, or "
                     "adapters are merged into it)", site->name);
        return -1;
    }
    for (int64_t i = 0; i < (int64_t)outf * in; i++) base[i] = round_to(w[i] - d[i], dtype);
    lora_host->free(sb);
    lora_host->free(d);
    return 0;
}

/* the site's weight (out, in) as a new float32 buffer (host->alloc), NULL on OOM */
static float *weight_f32(const peft_site_info *site)
{
    float *w = lora_host->alloc((size_t)site->weight->numel * sizeof *w);
    if (w) lora_host->tensor_to_f32(site->weight, w);
    return w;
}

/* V, S, Uh = svd(W) (W (out, in), V (out, k), Uh (k, in)); Sr = S[:r] / scaling;
 * A (r, in) = diag(sqrt(Sr)) @ Uh[:r];  B (out, r) = V[:, :r] @ diag(sqrt(Sr));
 * W <- W - scaling * B @ A.
 * niter > 0 ("pissa_niter_<n>", PEFT's randomized svd_lowrank) uses the same exact SVD. */
int lora_init_pissa(lora_state *st, const peft_site_info *site, int niter, char *err,
                    size_t errlen)
{
    (void)niter;
    if (check_site(st, site, "PiSSA", err, errlen)) return -1;
    const int outf = (int)st->out_features, in = (int)st->in_features, r = (int)st->r;
    const int k = outf < in ? outf : in;
    float *w = weight_f32(site);
    float *u = lora_host->alloc((size_t)outf * (size_t)k * sizeof *u);
    float *sv = lora_host->alloc((size_t)k * sizeof *sv);
    float *vt = lora_host->alloc((size_t)k * (size_t)in * sizeof *vt);
    int rc = -1;
    if (!w || !u || !sv || !vt) {
        peft_pu_errf(err, errlen, "lora: out of memory for the PiSSA SVD of '%s'", site->name);
        goto out;
    }
    if (lora_host->svd(outf, in, w, u, sv, vt) != 0) {
        peft_pu_errf(err, errlen, "lora: the SVD of '%s' (%d x %d) failed (LAPACK sgesdd did not "
                     "converge or the weight holds NaN/Inf)", site->name, outf, in);
        goto out;
    }
    float *A = peft_f32(st->A), *B = peft_f32(st->B);
    for (int i = 0; i < r; i++) {
        const float root = sqrtf(sv[i] / (float)st->scaling);
        for (int j = 0; j < in; j++) A[(size_t)i * in + j] = root * vt[(size_t)i * in + j];
        for (int o = 0; o < outf; o++) B[(size_t)o * r + i] = u[(size_t)o * k + i] * root;
    }
    rc = write_residual(st, site, w, err, errlen);
out:
    lora_host->free(w);
    lora_host->free(u);
    lora_host->free(sv);
    lora_host->free(vt);
    return rc;
}

/* Q, R = qr(W) (W (out, in), Q (out, k), R (k, in));
 * A (r, in) = R[:r];  B (out, r) = Q[:, :r];  W <- W - scaling * B @ A. */
int lora_init_olora(lora_state *st, const peft_site_info *site, char *err, size_t errlen)
{
    if (check_site(st, site, "OLoRA", err, errlen)) return -1;
    const int outf = (int)st->out_features, in = (int)st->in_features, r = (int)st->r;
    const int k = outf < in ? outf : in;
    float *w = weight_f32(site);
    float *q = lora_host->alloc((size_t)outf * (size_t)k * sizeof *q);
    float *rr = lora_host->alloc((size_t)k * (size_t)in * sizeof *rr);
    int rc = -1;
    if (!w || !q || !rr) {
        peft_pu_errf(err, errlen, "lora: out of memory for the OLoRA QR of '%s'", site->name);
        goto out;
    }
    if (lora_host->qr(outf, in, w, q, rr) != 0) {
        peft_pu_errf(err, errlen, "lora: the QR decomposition of '%s' (%d x %d) failed (LAPACK)",
                     site->name, outf, in);
        goto out;
    }
    float *A = peft_f32(st->A), *B = peft_f32(st->B);
    memcpy(A, rr, (size_t)r * (size_t)in * sizeof *A);
    for (int o = 0; o < outf; o++)
        memcpy(B + (size_t)o * r, q + (size_t)o * k, (size_t)r * sizeof *B);
    rc = write_residual(st, site, w, err, errlen);
out:
    lora_host->free(w);
    lora_host->free(q);
    lora_host->free(rr);
    return rc;
}

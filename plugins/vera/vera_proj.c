/* vera_proj.c — VeRA's adapter-level state (ABI 1.3): the shared projections vera_A / vera_B,
 * regenerated bit for bit as PEFT 0.13.2 makes them: torch.Generator("cpu").manual_seed(key)
 * (torch's mt19937), then _kaiming_init = uniform_(-bound, bound) with bound =
 * sqrt(3) * sqrt(2) / sqrt(fan_in), first A (r, max_in) then B (max_out, r) from the same
 * generator. torch's float uniform_ draws one 32-bit word per value:
 * u = (word & (2^24 - 1)) * 2^-24, value = u * (to - from) + from in float, the last two as
 * one fused multiply-add (torch's CPU kernels are built for AVX2 + FMA and contract it). */
#include <math.h>
#include <string.h>
#include "vera.h"

/* ---- torch's CPU generator: mt19937 seeded through init_genrand(seed & 0xffffffff) ---- */

typedef struct vera_mt {
    uint32_t s[624];
    int i;
} vera_mt;

static void mt_seed(vera_mt *m, uint64_t seed)
{
    m->s[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < 624; j++)
        m->s[j] = 1812433253u * (m->s[j - 1] ^ (m->s[j - 1] >> 30)) + (uint32_t)j;
    m->i = 624;
}

static uint32_t mt_next(vera_mt *m)
{
    if (m->i >= 624) {
        for (int j = 0; j < 624; j++) {
            uint32_t y = (m->s[j] & 0x80000000u) | (m->s[(j + 1) % 624] & 0x7fffffffu);
            m->s[j] = m->s[(j + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->i = 0;
    }
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

// t (rows, cols) <- kaiming_uniform with fan_in = cols, from generator m
static void kaiming(vera_mt *m, float *t, int64_t rows, int64_t cols)
{
    const double gain = sqrt(2.0), std = gain / sqrt((double)cols), bound = sqrt(3.0) * std;
    const float from = (float)-bound, to = (float)bound, span = to - from;
    const float div = 1.0f / (float)(1u << 24);
    for (int64_t k = 0; k < rows * cols; k++) {
        const float u = (float)(mt_next(m) & 0xffffffu) * div; /* exact: 24 bits times 2^-24 */
        t[k] = fmaf(u, span, from); /* torch's AVX2 kernel build contracts u * span + from */
    }
}

int vera_generate(int64_t key, int64_t r, int64_t max_in, int64_t max_out, float *A, float *B)
{
    vera_mt m;
    mt_seed(&m, (uint64_t)key);
    kaiming(&m, A, r, max_in);
    kaiming(&m, B, max_out, r);
    return 0;
}

void *vera_adapter_init(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                        const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)cfg;
    (void)rng;
    const vera_config *c = parsed;
    (void)cfg;
    (void)rng; /* the projections come from projection_prng_key, not the run's generator */
    if (!c || !info || !adapter_name) {
        peft_pu_errf(err, errlen, "vera adapter_init: missing argument");
        return NULL;
    }
    /* PEFT's _check_new_adapter_config: one key and one save_projection for all adapters */
    for (int i = 0; i < info->n_peers; i++) {
        const vera_proj *p = info->peers[i];
        if (p->key != c->prng_key) {
            peft_pu_errf(err, errlen, "Vera PRNG initialisation key must be the same for all "
                         "adapters. Got config.projection_prng_key=%lld but previous config "
                         "had %lld.", (long long)c->prng_key, (long long)p->key);
            return NULL;
        }
        if (p->save != c->save_projection) {
            peft_pu_errf(err, errlen, "VeRA projection weights must be saved for all adapters "
                         "or none, but got multiple different values: [False, True]");
            return NULL;
        }
    }
    /* PEFT's _find_dim: the largest in and out features over the targeted layers */
    int64_t max_in = 0, max_out = 0;
    for (int i = 0; i < info->n_sites; i++) {
        if (info->sites[i]->in_features > max_in) max_in = info->sites[i]->in_features;
        if (info->sites[i]->out_features > max_out) max_out = info->sites[i]->out_features;
    }
    if (max_in <= 0 || max_out <= 0) {
        peft_pu_errf(err, errlen, "No layers types compatible with VeRA were found. Please "
                     "check `peft_config.target_modules`.");
        return NULL;
    }
    vera_proj *p = vera_host->alloc(sizeof *p);
    if (!p) goto oom;
    *p = (vera_proj){.r = c->r, .max_in = max_in, .max_out = max_out, .key = c->prng_key,
                     .save = c->save_projection};
    p->A = vera_host->tensor_new(2, (const int64_t[]){c->r, max_in});
    p->B = vera_host->tensor_new(2, (const int64_t[]){max_out, c->r});
    p->a_mem = peft_pu_concat(vera_host, "vera_A.", adapter_name, "");
    p->b_mem = peft_pu_concat(vera_host, "vera_B.", adapter_name, "");
    if (!p->A || !p->B || !p->a_mem || !p->b_mem) goto oom;
    vera_generate(c->prng_key, c->r, max_in, max_out, (float *)p->A->data, (float *)p->B->data);
    return p;
oom:
    vera_adapter_destroy(p);
    peft_pu_errf(err, errlen, "vera: out of memory for the projections");
    return NULL;
}

void vera_adapter_destroy(void *adapter_state)
{
    vera_proj *p = adapter_state;
    if (!p) return;
    vera_host->tensor_free(p->A);
    vera_host->tensor_free(p->B);
    vera_host->free(p->a_mem);
    vera_host->free(p->b_mem);
    vera_host->free(p);
}

/* buffers (never trained, not counted), saved as base_model.vera_A / vera_B only with
 * save_projection (PEFT's BufferDict(persistent=save_projection)) */
int vera_adapter_state_dict(void *adapter_state, peft_param_ref *out, int max)
{
    vera_proj *p = adapter_state;
    const int32_t flags = PEFT_PARAM_BUFFER | (p->save ? 0 : PEFT_PARAM_NOT_SAVED);
    peft_param_ref refs[2] = {{"vera_A", p->a_mem, p->A, 0, flags},
                              {"vera_B", p->b_mem, p->B, 0, flags}};
    return peft_pu_state_refs(out, max, refs, 2);
}

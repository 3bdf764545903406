/* adalora_layer.c — one AdaLoRA layer (PEFT's SVDLinear): inject with the rank a saved
 * rank_pattern leaves (PEFT's resize_modules_by_rank_pattern on load: ranknum stays init_r),
 * forward from host ops, merge, state dict (rank-cut copies for saving after an in-memory
 * allocation, as get_peft_model_state_dict cuts them), and taking in what a load wrote. */
#include <stdio.h>
#include <string.h>
#include "adalora.h"

/* rank_pattern["<module>.lora_E"] (or with ".<adapter>") from the config's JSON text: the
 * kept flags (a new array of *n), or NULL when absent; -1 when malformed */
static int pattern_of(peft_cfg *cfg, const char *module, const char *adapter, uint8_t **kept,
                      int64_t *n, char *err, size_t errlen)
{
    *kept = NULL;
    *n = 0;
    if (ada_host->cfg_type(cfg, "rank_pattern") != PEFT_CFG_DICT) return 0;
    char *text = ada_host->cfg_get_json(cfg, "rank_pattern");
    if (!text) return 0;
    char key[1200];
    const char *at = NULL;
    for (int k = 0; k < 2 && !at; k++) {
        snprintf(key, sizeof key, "\"%s.lora_E%s%s\":[", module, k ? "." : "", k ? adapter : "");
        at = strstr(text, key);
    }
    int rc = 0;
    if (at) {
        const char *p = at + strlen(key);
        int64_t cap = 0;
        for (const char *q = p; *q && *q != ']'; q++) cap += *q == ',';
        uint8_t *f = ada_host->alloc((size_t)cap + 2);
        if (!f) {
            rc = -1;
            goto out;
        }
        while (*p && *p != ']') {
            if (!strncmp(p, "true", 4)) f[(*n)++] = 1, p += 4;
            else if (!strncmp(p, "false", 5)) f[(*n)++] = 0, p += 5;
            else if (*p == ',') p++;
            else {
                ada_host->free(f);
                peft_pu_errf(err, errlen, "adalora config: rank_pattern['%s.lora_E'] must be a "
                             "list of booleans", module);
                rc = -1;
                goto out;
            }
        }
        *kept = f;
    }
out:
    ada_host->free(text);
    return rc;
}

void *ada_inject_in(void *adapter_state, const void *parsed, peft_cfg *cfg,
                    const peft_site_info *site, const char *adapter_name, peft_rng *rng,
                    char *err, size_t errlen)
{
    const ada_config *c = parsed;
    ada_adapter *ad = adapter_state;
    if (peft_pu_inject_args("adalora", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "adalora", "AdaLoRA", 1, err, errlen) || !ad)
        return NULL;
    peft_pu_fan_in_fan_out(ada_host, cfg, site);
    uint8_t *kept = NULL;
    int64_t n_kept = 0, r = c->init_r;
    if (pattern_of(cfg, site->name, adapter_name, &kept, &n_kept, err, errlen)) return NULL;
    if (kept) { /* a saved allocation: the layer has the kept ranks only */
        if (n_kept != c->init_r) {
            peft_pu_errf(err, errlen, "adalora config: rank_pattern for '%s' has %lld flags, "
                         "init_r is %lld", site->name, (long long)n_kept, (long long)c->init_r);
            ada_host->free(kept);
            return NULL;
        }
        r = 0;
        for (int64_t i = 0; i < n_kept; i++) r += kept[i];
        ada_host->free(kept);
    }
    ada_layer *l = ada_host->alloc(sizeof *l);
    if (!l) goto oom;
    *l = (ada_layer){.ad = ad, .in = site->in_features, .out = site->out_features, .r = r,
                     .ranknum = (float)c->init_r, .dropout = c->dropout};
    l->scaling = c->lora_alpha > 0 ? c->lora_alpha : (double)r;
    l->site = peft_pu_strdup(ada_host, site->name);
    l->A = peft_pu_param(ada_host, 2, (const int64_t[]){r, l->in});
    l->B = peft_pu_param(ada_host, 2, (const int64_t[]){l->out, r});
    l->E = peft_pu_param(ada_host, 2, (const int64_t[]){r, 1});
    l->rn = ada_host->tensor_new(1, (const int64_t[]){1});
    static const char *const leaf[4] = {"lora_A.", "lora_B.", "lora_E.", "ranknum."};
    for (int k = 0; k < 4; k++) l->mem[k] = peft_pu_concat(ada_host, leaf[k], adapter_name, "");
    if (!l->site || !l->A || !l->B || !l->E || !l->rn || !l->mem[0] || !l->mem[1] || !l->mem[2] ||
        !l->mem[3])
        goto oom;
    ((float *)l->rn->data)[0] = l->ranknum;
    const double std = c->init_weights ? 0.02 : 1.0; /* reset_lora_parameters: E = 0 */
    for (int64_t i = 0; i < l->A->numel; i++) ((float *)l->A->data)[i] = (float)(std * ada_host->rng_normal(rng));
    for (int64_t i = 0; i < l->B->numel; i++) ((float *)l->B->data)[i] = (float)(std * ada_host->rng_normal(rng));
    if (!c->init_weights)
        for (int64_t i = 0; i < l->E->numel; i++) ((float *)l->E->data)[i] = (float)ada_host->rng_normal(rng);
    if (ad->n_layers == ad->cap_layers) {
        int cap = ad->cap_layers ? 2 * ad->cap_layers : 8;
        ada_layer **v = ada_host->alloc((size_t)cap * sizeof *v);
        if (!v) goto oom;
        if (ad->n_layers) memcpy(v, ad->layers, (size_t)ad->n_layers * sizeof *v);
        ada_host->free(ad->layers);
        ad->layers = v;
        ad->cap_layers = cap;
    }
    ad->layers[ad->n_layers++] = l;
    return l;
oom:
    ada_destroy(l);
    peft_pu_errf(err, errlen, "adalora: out of memory on %s", peft_pu_site_name(site));
    return NULL;
}

/* scaling / (ranknum + 1e-5) in float, as PEFT's tensors compute it */
static float factor(const ada_layer *l)
{
    volatile float rn = l->ranknum + 1e-5f;
    return (float)l->scaling / rn;
}

// x (..., in), y (..., out) -> y + ((dropout(x) A^T) * E) B^T * scaling / (ranknum + 1e-5)
peft_tensor *ada_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y)
{
    (void)site;
    ada_layer *l = state;
    if (l->r == 0) return y; /* a layer whose every rank was pruned adds nothing */
    peft_tensor *xd = l->dropout > 0 ? ada_host->op_dropout(g, x, (float)l->dropout) : x;
    peft_tensor *t = xd ? ada_host->op_linear(g, xd, l->A, NULL, 0) : NULL; /* (..., r) */
    t = t ? ada_host->op_mul_lastdim(g, t, l->E) : NULL;
    t = t ? ada_host->op_linear(g, t, l->B, NULL, 0) : NULL; /* (..., out) */
    t = t ? ada_host->op_scale(g, t, factor(l)) : NULL;
    return t ? ada_host->op_add(g, y, t) : NULL;
}

// weight (out, in) (or (in, out) stored transposed) += sign * B (A * E) * scaling / (ranknum+1e-5)
int ada_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen)
{
    (void)bias;
    ada_layer *l = state;
    if (peft_pu_merge_args("adalora", state, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("adalora", site, l->in, l->out, err, errlen))
        return -1;
    if (l->r == 0) return 0;
    float *ae = ada_host->alloc((size_t)(l->r * l->in) * sizeof *ae);
    if (!ae) {
        peft_pu_errf(err, errlen, "adalora merge: out of memory");
        return -1;
    }
    const float *A = (const float *)l->A->data, *E = (const float *)l->E->data;
    for (int64_t k = 0; k < l->r; k++)
        for (int64_t i = 0; i < l->in; i++) ae[k * l->in + i] = A[k * l->in + i] * E[k];
    const float s = (float)sign * factor(l);
    if (peft_pu_in_out(site)) /* W (in, out) += s ae^T B^T */
        ada_host->sgemm(1, 1, (int)l->in, (int)l->out, (int)l->r, s, ae, (int)l->in,
                        (const float *)l->B->data, (int)l->r, 1.0f, weight, (int)l->out);
    else /* W (out, in) += s B ae */
        ada_host->sgemm(0, 0, (int)l->out, (int)l->in, (int)l->r, s, (const float *)l->B->data,
                        (int)l->r, ae, (int)l->in, 1.0f, weight, (int)l->in);
    ada_host->free(ae);
    return 0;
}

void ada_destroy(void *state)
{
    ada_layer *l = state;
    if (!l) return;
    /* the adapter state outlives its layers; take this one off its list */
    for (int i = 0; l->ad && i < l->ad->n_layers; i++)
        if (l->ad->layers[i] == l) {
            memmove(&l->ad->layers[i], &l->ad->layers[i + 1],
                    (size_t)(l->ad->n_layers - i - 1) * sizeof *l->ad->layers);
            l->ad->n_layers--;
            break;
        }
    peft_tensor *ts[7] = {l->A, l->B, l->E, l->rn, l->cut[0], l->cut[1], l->cut[2]};
    for (int k = 0; k < 7; k++) ada_host->tensor_free(ts[k]);
    for (int k = 0; k < 3; k++) {
        ada_host->free(l->ipt_avg[k]);
        ada_host->free(l->ipt_unc[k]);
    }
    for (int k = 0; k < 4; k++) ada_host->free(l->mem[k]);
    ada_host->free(l->kept);
    ada_host->free(l->site);
    ada_host->free(l);
}

int ada_layer_set_pattern(ada_layer *l, uint8_t *kept)
{
    int64_t n = 0;
    for (int64_t i = 0; i < l->r; i++) n += kept[i] != 0;
    for (int k = 0; k < 3; k++) ada_host->tensor_free(l->cut[k]);
    l->cut[0] = ada_host->tensor_new(2, (const int64_t[]){n, l->in});
    l->cut[1] = ada_host->tensor_new(2, (const int64_t[]){l->out, n});
    l->cut[2] = ada_host->tensor_new(2, (const int64_t[]){n, 1});
    ada_host->free(l->kept);
    l->kept = kept;
    return l->cut[0] && l->cut[1] && l->cut[2] ? 0 : -1;
}

/* the kept rows of A and E, columns of B, into the cut copies */
static void cut_copies(ada_layer *l)
{
    const float *A = (const float *)l->A->data, *B = (const float *)l->B->data,
                *E = (const float *)l->E->data;
    float *a = (float *)l->cut[0]->data, *b = (float *)l->cut[1]->data, *e = (float *)l->cut[2]->data;
    const int64_t n = l->cut[2]->shape[0];
    for (int64_t k = 0, j = 0; k < l->r; k++) {
        if (!l->kept[k]) continue;
        memcpy(a + j * l->in, A + k * l->in, (size_t)l->in * sizeof *a);
        e[j] = E[k];
        for (int64_t o = 0; o < l->out; o++) b[o * n + j] = B[o * l->r + k];
        j++;
    }
}

int ada_state_dict(void *state, peft_param_ref *out, int max)
{
    ada_layer *l = state;
    const int cut = l->kept && l->cut[0];
    const int32_t mem_only = cut ? PEFT_PARAM_NOT_SAVED : 0;
    /* ranknum: a frozen parameter PEFT counts but never saves (rebuilt as init_r) */
    peft_param_ref refs[7] = {{"lora_A", l->mem[0], l->A, 1, mem_only},
                              {"lora_B", l->mem[1], l->B, 1, mem_only},
                              {"lora_E", l->mem[2], l->E, 1, mem_only},
                              {"ranknum", l->mem[3], l->rn, 0, PEFT_PARAM_NOT_SAVED}};
    int n = 4;
    if (cut) { /* get_peft_model_state_dict's resize_state_dict_by_rank_pattern */
        cut_copies(l);
        refs[n++] = (peft_param_ref){"lora_A", "", l->cut[0], 0, PEFT_PARAM_SAVE_ONLY};
        refs[n++] = (peft_param_ref){"lora_B", "", l->cut[1], 0, PEFT_PARAM_SAVE_ONLY};
        refs[n++] = (peft_param_ref){"lora_E", "", l->cut[2], 0, PEFT_PARAM_SAVE_ONLY};
    }
    return peft_pu_state_refs(out, max, refs, n);
}

/* a load wrote the cut copies: scatter them back to the kept ranks */
int ada_loaded(void *adapter_state, void *site_state, char *err, size_t errlen)
{
    (void)adapter_state;
    (void)err;
    (void)errlen;
    ada_layer *l = site_state;
    if (!l || !l->kept || !l->cut[0]) return 0;
    float *A = (float *)l->A->data, *B = (float *)l->B->data, *E = (float *)l->E->data;
    const float *a = (const float *)l->cut[0]->data, *b = (const float *)l->cut[1]->data,
                *e = (const float *)l->cut[2]->data;
    const int64_t n = l->cut[2]->shape[0];
    for (int64_t k = 0, j = 0; k < l->r; k++) {
        if (!l->kept[k]) continue;
        memcpy(A + k * l->in, a + j * l->in, (size_t)l->in * sizeof *A);
        E[k] = e[j];
        for (int64_t o = 0; o < l->out; o++) B[o * l->r + k] = b[o * n + j];
        j++;
    }
    return 0;
}

const char *ada_module_type(void *state)
{
    (void)state;
    return "adalora.SVDLinear";
}

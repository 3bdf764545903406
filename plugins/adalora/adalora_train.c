/* adalora_train.c — AdaLoRA's adapter-level state (ABI 1.3) and its training hooks:
 * loss_term: orth_reg_weight * mean over the layers' lora_A and lora_B of ||P P^T - I||_F
 *   (lora_A: A A^T, lora_B: B^T B), with its backward d/dP = 2 G P (A) or 2 P G (B),
 *   G = (C - I) / ||C - I||_F;
 * step_end: PEFT 0.13.2's AdaLoraModel.update_and_allocate with its RankAllocator: importance
 *   |p * grad| smoothed (beta1) with its uncertainty (beta2), the cubic budget schedule between
 *   tinit and total_step - tfinal, the triplets (E_i, row i of A, column i of B) whose score
 *   falls at or below the (init_bgt - budget)-th smallest masked (lora_E set to 0), the kept
 *   ranks written to the config's rank_pattern (saved with the adapter, tensors cut to them). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adalora.h"

void *ada_adapter_init(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                       const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)adapter_name;
    (void)cfg;
    (void)rng;
    const ada_config *c = parsed;
    /* PEFT: "AdaLoraModel supports only 1 trainable adapter" */
    if (!c->inference_mode)
        for (int i = 0; i < info->n_peers; i++) {
            const ada_adapter *p = info->peers[i];
            if (!p->c.inference_mode) {
                peft_pu_errf(err, errlen, "AdaLoraModel supports only 1 trainable adapter. When "
                             "using multiple adapters, set inference_mode to True for all "
                             "adapters except the one you want to train.");
                return NULL;
            }
        }
    ada_adapter *ad = ada_host->alloc(sizeof *ad);
    if (!ad) {
        peft_pu_errf(err, errlen, "adalora: out of memory");
        return NULL;
    }
    ad->c = *c;
    return ad;
}

void ada_adapter_destroy(void *adapter_state)
{
    ada_adapter *ad = adapter_state;
    if (!ad) return;
    ada_host->free(ad->layers);
    ada_host->free(ad);
}

/* ---- the orthogonal regulariser ---- */

typedef struct orth_ctx {
    ada_adapter *ad;
    peft_tensor *out;
    double coef; /* orth_reg_weight / num_param */
} orth_ctx;

/* C = P P^T (a: P (r, n)) or P^T P (b: P (n, r)) minus I into c (r, r); returns ||C - I||_F */
static double cov_minus_i(const float *p, int64_t r, int64_t n, int rows, double *c)
{
    double norm = 0;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < r; j++) {
            double s = 0;
            for (int64_t k = 0; k < n; k++)
                s += rows ? (double)p[i * n + k] * p[j * n + k] : (double)p[k * r + i] * p[k * r + j];
            c[i * r + j] = s - (i == j);
            norm += c[i * r + j] * c[i * r + j];
        }
    return sqrt(norm);
}

// dterm (1) -> dA (r, in) += coef dterm 2 G A, dB (out, r) += coef dterm 2 B G
static void orth_backward(peft_graph *g, void *vc)
{
    orth_ctx *o = vc;
    if (!o->out->grad) return;
    const double d = o->out->grad[0] * o->coef;
    for (int i = 0; i < o->ad->n_layers; i++) {
        ada_layer *l = o->ad->layers[i];
        if (l->r == 0) continue;
        double *c = ada_host->alloc((size_t)(l->r * l->r) * sizeof *c);
        if (!c) {
            ada_host->graph_set_error(g, "adalora: out of memory in the regulariser's backward");
            return;
        }
        for (int which = 0; which < 2; which++) {
            peft_tensor *p = which ? l->B : l->A;
            float *gp = ada_host->grad_of(g, p);
            if (!gp) continue;
            const int64_t n = which ? l->out : l->in;
            const float *pd = (const float *)p->data;
            double norm = cov_minus_i(pd, l->r, n, !which, c);
            if (norm == 0) continue;
            for (int64_t k = 0; k < l->r * l->r; k++) c[k] /= norm;
            if (!which) /* A (r, in): 2 G A */
                for (int64_t i2 = 0; i2 < l->r; i2++)
                    for (int64_t k = 0; k < n; k++) {
                        double s = 0;
                        for (int64_t j = 0; j < l->r; j++) s += c[i2 * l->r + j] * pd[j * n + k];
                        gp[i2 * n + k] += (float)(2 * d * s);
                    }
            else /* B (out, r): 2 B G */
                for (int64_t k = 0; k < n; k++)
                    for (int64_t j = 0; j < l->r; j++) {
                        double s = 0;
                        for (int64_t i2 = 0; i2 < l->r; i2++) s += pd[k * l->r + i2] * c[i2 * l->r + j];
                        gp[k * l->r + j] += (float)(2 * d * s);
                    }
        }
        ada_host->free(c);
    }
}

int ada_loss_term(void *adapter_state, peft_graph *g, peft_tensor **term)
{
    ada_adapter *ad = adapter_state;
    *term = NULL;
    if (!ad || ad->n_layers == 0) return 0;
    double sum = 0;
    int num = 0, grad = 0;
    for (int i = 0; i < ad->n_layers; i++) {
        ada_layer *l = ad->layers[i];
        num += 2; /* PEFT counts every lora_A / lora_B, zero-rank ones too (their norm is 0) */
        grad |= l->A->requires_grad || l->B->requires_grad;
        if (l->r == 0) continue;
        double *c = ada_host->alloc((size_t)(l->r * l->r) * sizeof *c);
        if (!c) {
            ada_host->graph_set_error(g, "adalora: out of memory in the regulariser");
            return -1;
        }
        sum += cov_minus_i((const float *)l->A->data, l->r, l->in, 1, c);
        sum += cov_minus_i((const float *)l->B->data, l->r, l->out, 0, c);
        ada_host->free(c);
    }
    peft_tensor *t = ada_host->graph_tensor(g, 1, (const int64_t[]){1});
    if (!t) {
        ada_host->graph_set_error(g, "adalora: out of memory in the step arena");
        return -1;
    }
    const double coef = ad->c.orth_reg_weight / num;
    ((float *)t->data)[0] = (float)(coef * sum);
    t->requires_grad = ada_host->graph_recording(g) && grad;
    if (t->requires_grad) {
        orth_ctx *o = ada_host->tape_push(g, orth_backward, sizeof *o);
        if (o) *o = (orth_ctx){ad, t, coef};
    }
    *term = t;
    return 0;
}

/* ---- the rank allocator ---- */

static peft_tensor *tensor_k(ada_layer *l, int k) { return k == 0 ? l->A : k == 1 ? l->B : l->E; }

/* update_ipt: exp_avg_ipt = b1 avg + (1 - b1) |p g|; exp_avg_unc = b2 unc + (1 - b2) |ipt - avg| */
static int update_ipt(ada_adapter *ad)
{
    const float b1 = (float)ad->c.beta1, b2 = (float)ad->c.beta2;
    const float c1 = (float)(1 - ad->c.beta1), c2 = (float)(1 - ad->c.beta2);
    for (int i = 0; i < ad->n_layers; i++) {
        ada_layer *l = ad->layers[i];
        for (int k = 0; k < 3; k++) {
            peft_tensor *p = tensor_k(l, k);
            if (!l->ipt_avg[k]) {
                l->ipt_avg[k] = ada_host->alloc((size_t)(p->numel ? p->numel : 1) * sizeof(float));
                l->ipt_unc[k] = ada_host->alloc((size_t)(p->numel ? p->numel : 1) * sizeof(float));
                if (!l->ipt_avg[k] || !l->ipt_unc[k]) return -1;
            }
            const float *w = (const float *)p->data, *gr = p->grad;
            for (int64_t j = 0; j < p->numel; j++) {
                const float ipt = fabsf(w[j] * (gr ? gr[j] : 0.0f));
                const float avg = b1 * l->ipt_avg[k][j] + c1 * ipt;
                l->ipt_avg[k][j] = avg;
                l->ipt_unc[k][j] = b2 * l->ipt_unc[k][j] + c2 * fabsf(ipt - avg);
            }
        }
    }
    ad->have_ipt = 1;
    return 0;
}

static void reset_ipt(ada_adapter *ad)
{
    for (int i = 0; i < ad->n_layers; i++)
        for (int k = 0; k < 3; k++) {
            ada_host->free(ad->layers[i]->ipt_avg[k]);
            ada_host->free(ad->layers[i]->ipt_unc[k]);
            ad->layers[i]->ipt_avg[k] = ad->layers[i]->ipt_unc[k] = NULL;
        }
    ad->have_ipt = 0;
}

static void budget_schedule(const ada_adapter *ad, int64_t step, int64_t total, int64_t *budget,
                            int *mask)
{
    const ada_config *c = &ad->c;
    if (step <= c->tinit) {
        *budget = ad->init_bgt;
        *mask = 0;
    } else if (step > total - c->tfinal) {
        *budget = ad->target_bgt;
        *mask = 1;
    } else {
        const double span = (double)(total - c->tfinal - c->tinit);
        const double mul = span > 0 ? 1 - (double)(step - c->tinit) / span : 0;
        *budget = (int64_t)((double)(ad->init_bgt - ad->target_bgt) * (mul * mul * mul) + (double)ad->target_bgt);
        *mask = step % c->delta_t == 0;
    }
}

static float score_at(const ada_layer *l, int k, int64_t j)
{
    return l->ipt_avg[k] ? l->ipt_avg[k][j] * l->ipt_unc[k][j] : 0.0f;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* the config's rank_pattern from each layer's kept flags */
static int write_pattern(ada_adapter *ad, peft_cfg *cfg)
{
    size_t cap = 16;
    for (int i = 0; i < ad->n_layers; i++) cap += strlen(ad->layers[i]->site) + 16 + 7 * (size_t)ad->layers[i]->r;
    char *s = ada_host->alloc(cap), *p = s;
    if (!s) return -1;
    *p++ = '{';
    for (int i = 0; i < ad->n_layers; i++) {
        ada_layer *l = ad->layers[i];
        p += sprintf(p, "%s\"%s.lora_E\":[", i ? "," : "", l->site);
        for (int64_t k = 0; k < l->r; k++) p += sprintf(p, "%s%s", k ? "," : "", l->kept && !l->kept[k] ? "false" : "true");
        *p++ = ']';
    }
    *p++ = '}';
    *p = 0;
    int rc = ada_host->cfg_set_json(cfg, "rank_pattern", s);
    ada_host->free(s);
    return rc;
}

/* mask_to_budget: score each triplet, mask those at or below the (init_bgt - budget)-th
 * smallest score, record the kept ranks */
static int mask_to_budget(ada_adapter *ad, int64_t budget)
{
    int64_t total = 0;
    for (int i = 0; i < ad->n_layers; i++) total += ad->layers[i]->r;
    float *all = ada_host->alloc((size_t)(total ? total : 1) * sizeof *all);
    float *sorted = ada_host->alloc((size_t)(total ? total : 1) * sizeof *sorted);
    if (!all || !sorted) {
        ada_host->free(all);
        ada_host->free(sorted);
        return -1;
    }
    int64_t o = 0;
    for (int i = 0; i < ad->n_layers; i++) {
        ada_layer *l = ad->layers[i];
        for (int64_t k = 0; k < l->r; k++) {
            double sa = 0, sb = 0; /* torch.mean of A's row k, B's column k */
            for (int64_t j = 0; j < l->in; j++) sa += score_at(l, 0, k * l->in + j);
            for (int64_t j = 0; j < l->out; j++) sb += score_at(l, 1, j * l->r + k);
            const float ma = (float)(sa / (double)l->in), mb = (float)(sb / (double)l->out);
            all[o++] = score_at(l, 2, k) + (ma + mb);
        }
    }
    int64_t kth = ad->init_bgt - budget;
    if (kth < 1) kth = 1;
    if (kth > total) kth = total;
    memcpy(sorted, all, (size_t)total * sizeof *sorted);
    qsort(sorted, (size_t)total, sizeof *sorted, cmp_float);
    const float thr = total ? sorted[kth - 1] : 0;
    o = 0;
    int rc = 0;
    for (int i = 0; i < ad->n_layers && !rc; i++) {
        ada_layer *l = ad->layers[i];
        uint8_t *kept = ada_host->alloc((size_t)(l->r ? l->r : 1));
        if (!kept) {
            rc = -1;
            break;
        }
        for (int64_t k = 0; k < l->r; k++, o++) {
            kept[k] = !(all[o] <= thr);
            if (!kept[k]) ((float *)l->E->data)[k] = 0.0f;
        }
        rc = ada_layer_set_pattern(l, kept);
    }
    ada_host->free(all);
    ada_host->free(sorted);
    return rc;
}

static void mask_using_pattern(ada_adapter *ad)
{
    for (int i = 0; i < ad->n_layers; i++) {
        ada_layer *l = ad->layers[i];
        for (int64_t k = 0; l->kept && k < l->r; k++)
            if (!l->kept[k]) ((float *)l->E->data)[k] = 0.0f;
    }
}

int ada_step_end(void *adapter_state, peft_cfg *cfg, int64_t step, int64_t total_steps, char *err,
                 size_t errlen)
{
    ada_adapter *ad = adapter_state;
    if (!ad || ad->c.inference_mode) return 0;
    const int64_t total = ad->c.total_step > 0 ? ad->c.total_step : total_steps;
    if (total <= 0) {
        peft_pu_errf(err, errlen, "adalora: rank allocation needs total_step (set it in the "
                     "config, or train with a known number of steps)");
        return -1;
    }
    if (ad->init_bgt == 0) { /* RankAllocator._set_budget_scheduler, on first use */
        for (int i = 0; i < ad->n_layers; i++) ad->init_bgt += ad->layers[i]->r;
        ad->target_bgt = ad->c.target_r * ad->n_layers;
    }
    const int64_t final_step = total - ad->c.tfinal;
    int64_t budget;
    int mask;
    int rc = 0;
    if (step < final_step) {
        if (update_ipt(ad)) goto oom;
        budget_schedule(ad, step, total, &budget, &mask);
        if (mask) rc = mask_to_budget(ad, budget) || write_pattern(ad, cfg);
    } else if (step == final_step) {
        budget_schedule(ad, step, total, &budget, &mask);
        rc = mask_to_budget(ad, budget) || write_pattern(ad, cfg);
        reset_ipt(ad);
    } else {
        mask_using_pattern(ad);
    }
    if (rc) goto oom;
    return 0;
oom:
    peft_pu_errf(err, errlen, "adalora: out of memory in the rank allocation");
    return -1;
}

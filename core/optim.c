/* optim.c — AdamW (torch.optim.AdamW semantics: p -= lr*wd*p, then the Adam step with bias
 * correction) over the parameters that require grad. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "optim.h"
#include "peft_internal.h"

struct peft_adamw {
    peft_adamw_config cfg;
    size_t n;
    peft_tensor **params; /* borrowed from the model */
    float **m, **v;       /* owned moments, one per param */
    int64_t t;
};

peft_adamw *peft_adamw_new(peft_model *model, const peft_adamw_config *cfg)
{
    peft_state_dict *sd;
    if (peft_trainable_parameters(model, &sd)) return NULL;
    peft_adamw *o = calloc(1, sizeof *o);
    if (!o) goto oom;
    o->cfg = *cfg;
    o->n = sd->n;
    o->params = calloc(sd->n + 1, sizeof *o->params);
    o->m = calloc(sd->n + 1, sizeof *o->m);
    o->v = calloc(sd->n + 1, sizeof *o->v);
    if (!o->params || !o->m || !o->v) goto oom;
    for (size_t i = 0; i < sd->n; i++) {
        peft_tensor *p = sd->tensors[i];
        o->params[i] = p;
        o->m[i] = calloc((size_t)p->numel, sizeof(float));
        o->v[i] = calloc((size_t)p->numel, sizeof(float));
        if (!o->m[i] || !o->v[i] || !peft_tensor_ensure_grad(p)) goto oom;
    }
    peft_state_dict_free(sd);
    return o;
oom:
    peft_state_dict_free(sd);
    peft_adamw_free(o);
    peft_set_error(peft_model_ctx(model), PEFT_ENOMEM, "out of memory for the optimizer");
    return NULL;
}

void peft_adamw_free(peft_adamw *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->n; i++) {
        if (o->m) free(o->m[i]);
        if (o->v) free(o->v[i]);
    }
    free(o->m);
    free(o->v);
    free(o->params);
    free(o);
}

void peft_adamw_zero_grad(peft_adamw *o)
{
    for (size_t i = 0; i < o->n; i++) peft_tensor_zero_grad(o->params[i]);
}

double peft_adamw_clip_grad_norm(peft_adamw *o, double max_norm)
{
    double ss = 0;
    for (size_t i = 0; i < o->n; i++)
        for (int64_t j = 0; j < o->params[i]->numel; j++) ss += (double)o->params[i]->grad[j] * o->params[i]->grad[j];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < o->n; i++)
            for (int64_t j = 0; j < o->params[i]->numel; j++) o->params[i]->grad[j] *= s;
    }
    return norm;
}

void peft_adamw_step(peft_adamw *o, double lr)
{
    if (lr <= 0) lr = o->cfg.lr;
    o->t++;
    double b1 = o->cfg.beta1, b2 = o->cfg.beta2;
    double bc1 = 1.0 - pow(b1, (double)o->t), bc2 = 1.0 - pow(b2, (double)o->t);
    double step = lr / bc1, decay = 1.0 - lr * o->cfg.weight_decay;
    for (size_t i = 0; i < o->n; i++) {
        peft_tensor *p = o->params[i];
        float *w = peft_f32(p), *g = p->grad, *m = o->m[i], *v = o->v[i];
        for (int64_t j = 0; j < p->numel; j++) {
            m[j] = (float)(b1 * m[j] + (1 - b1) * g[j]);
            v[j] = (float)(b2 * v[j] + (1 - b2) * (double)g[j] * g[j]);
            double denom = sqrt(v[j] / bc2) + o->cfg.eps;
            w[j] = (float)(w[j] * decay - step * m[j] / denom);
        }
    }
    peft_adamw_zero_grad(o);
}

size_t peft_adamw_state_bytes(const peft_adamw *o)
{
    size_t b = 0;
    for (size_t i = 0; i < o->n; i++) b += 2 * (size_t)o->params[i]->numel * sizeof(float);
    return b;
}

/* optim.h — AdamW over a PEFT model's trainable parameters (decoupled weight decay, as
 * torch.optim.AdamW), and gradient-norm clipping. */
#ifndef PEFT_OPTIM_H
#define PEFT_OPTIM_H

#include "peft.h"

typedef struct peft_adamw peft_adamw;

typedef struct peft_adamw_config {
    double lr;           /* 1e-3 */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0.01 */
} peft_adamw_config;

/* Binds to the parameters that require grad now (call after set_adapter / training setup).
 * Returns NULL with the ctx error set. Free with peft_adamw_free. */
peft_adamw *peft_adamw_new(peft_model *m, const peft_adamw_config *cfg);
void peft_adamw_free(peft_adamw *o);
/* one update from the accumulated grads, then zeroes them; lr overrides cfg.lr if > 0 */
void peft_adamw_step(peft_adamw *o, double lr);
void peft_adamw_zero_grad(peft_adamw *o);
/* scales grads so their global L2 norm is at most max_norm; returns the norm before */
double peft_adamw_clip_grad_norm(peft_adamw *o, double max_norm);
/* bytes of optimizer state (m and v) */
size_t peft_adamw_state_bytes(const peft_adamw *o);

#endif

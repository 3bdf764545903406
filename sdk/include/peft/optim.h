/* optim.h — AdamW over a PEFT model's trainable parameters (decoupled weight decay, as
 * torch.optim.AdamW) or over an explicit tensor list (full-parameter training), gradient-norm
 * clipping and scaling (gradient accumulation), learning-rate schedules with warm-up
 * (transformers' get_{constant,linear,cosine}_schedule_with_warmup), and the optimizer's state
 * saved to / restored from one safetensors file for resuming a run. */
#ifndef PEFT_OPTIM_H
#define PEFT_OPTIM_H

#include "peft/export.h"

#include "peft/peft.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct peft_adamw peft_adamw;

typedef struct peft_adamw_config {
    double lr;           /* 1e-3 */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0.01 */
} peft_adamw_config;

/* Binds to the parameters that require grad now (call after set_adapter / training setup).
 * Returns NULL with the ctx error set. Free with peft_adamw_free. */
PEFT_API peft_adamw *peft_adamw_new(peft_model *m, const peft_adamw_config *cfg);
/* Binds to params[0..n) (borrowed; each an owned, writable f32 tensor, e.g. base weights made
 * trainable with peft_tensor_make_f32_owned for pretraining); gives each a gradient buffer.
 * NULL with the ctx error set (a non-f32 tensor is refused, naming its index). */
PEFT_API peft_adamw *peft_adamw_new_params(peft_ctx *ctx, peft_tensor *const *params, size_t n,
                                           const peft_adamw_config *cfg);
PEFT_API void peft_adamw_free(peft_adamw *o);
/* one update from the accumulated grads, then zeroes them; lr overrides cfg.lr if > 0 */
PEFT_API void peft_adamw_step(peft_adamw *o, double lr);
/* the update alone, gradients kept (for peft_model_step_end between the update and
 * peft_adamw_zero_grad, as PEFT's optimizer.step(); update_and_allocate(); zero_grad()) */
PEFT_API void peft_adamw_update(peft_adamw *o, double lr);
PEFT_API void peft_adamw_zero_grad(peft_adamw *o);
/* scales grads so their global L2 norm is at most max_norm; returns the norm before */
PEFT_API double peft_adamw_clip_grad_norm(peft_adamw *o, double max_norm);
/* multiplies every gradient by s (e.g. 1/accumulation_steps) */
PEFT_API void peft_adamw_scale_grads(peft_adamw *o, double s);
/* bytes of optimizer state (m and v) */
PEFT_API size_t peft_adamw_state_bytes(const peft_adamw *o);
/* updates done so far */
PEFT_API int64_t peft_adamw_steps_done(const peft_adamw *o);
/* number of bound parameters and parameter i (borrowed) */
PEFT_API size_t peft_adamw_n_params(const peft_adamw *o);
PEFT_API peft_tensor *peft_adamw_param(const peft_adamw *o, size_t i);
/* the context the optimizer was made with, where its calls leave their errors (borrowed) */
PEFT_API peft_ctx *peft_adamw_ctx(const peft_adamw *o);

/* ---- resuming ---- */
/* Writes the parameter values, both moments and the step count to path (safetensors, f32,
 * keys "param.<i>", "exp_avg.<i>", "exp_avg_sq.<i>", metadata "adamw_step"), atomically, with
 * extra metadata pairs meta_kv (key0, val0, ..., NULL; may be NULL). PEFT_OK, or PEFT_EIO (the
 * file could not be written) / PEFT_ENOMEM with the message, naming the path, on the context
 * the optimizer was made with. */
PEFT_API int peft_adamw_save_state(const peft_adamw *o, const char *path, const char *const *meta_kv);
/* Restores what peft_adamw_save_state wrote into an optimizer bound to parameters of the same
 * count and shapes (anything else is refused, naming the key and both shapes). When meta_key is
 * not NULL, *meta_value receives a malloc'd copy of that metadata value (NULL if absent; the
 * caller frees it). PEFT_OK, or PEFT_EIO (missing, unreadable), PEFT_EFORMAT (not a safetensors
 * file, or a state that does not fit: count, key, shape, step), PEFT_ENOMEM, with the message
 * naming the file on the optimizer's context. Nothing is changed on failure. */
PEFT_API int peft_adamw_load_state(peft_adamw *o, const char *path, const char *meta_key,
                                   char **meta_value);

/* ---- learning-rate schedules (transformers' semantics) ---- */
#define PEFT_SCHED_CONSTANT 0 /* warm-up, then constant */
#define PEFT_SCHED_LINEAR 1   /* warm-up, then linear decay to 0 at total */
#define PEFT_SCHED_COSINE 2   /* warm-up, then half a cosine to 0 at total */
/* The learning rate of the optimizer update number `step` (0-based, as the scheduler's
 * last_epoch): base_lr * step / warmup during warm-up (so update 0 has lr 0 when warmup > 0,
 * as transformers), then the decay over the remaining total - warmup updates. */
PEFT_API double peft_lr_at(int schedule, double base_lr, int64_t step, int64_t total, int64_t warmup);

#ifdef __cplusplus
}
#endif
#endif

/* precision.c — PEFT's cast_mixed_precision_params: frozen parameters to bf16 or f16 (kernels
 * convert them back to f32 as they read), trainable ones in f32, quantized ones untouched; the
 * cast costs no extra memory (owned f32 narrows in place, mapped file pages are released). */
#include <stdlib.h>
#include "peft/dtype.h"
#include "peft/quant.h"
#include "core/model/storage.h"
#include "core/peft/internal.h"

int peft_cast_mixed_precision_params(peft_model *m, int32_t dtype)
{
    if (dtype != PEFT_DTYPE_BF16 && dtype != PEFT_DTYPE_F16 && dtype != PEFT_DTYPE_F32)
        return peft_set_error(m->ctx, PEFT_EINVAL, "cast_mixed_precision_params: dtype must be bf16, f16 or f32");
    peft_base_model *b = m->base;
    if (b->meta) return PEFT_OK;
    for (size_t i = 0; i < b->n_sites; i++)
        if (b->sites[i]->n_merged > 0)
            return peft_set_error(m->ctx, PEFT_ESTATE,
                                  "cast_mixed_precision_params: %s has merged adapters; unmerge first",
                                  b->sites[i]->info.name);
    for (size_t i = 0; i < b->n_params; i++) {
        peft_tensor *t = b->params[i].t;
        int is_mts = 0;
        for (int k = 0; k < m->n_mts; k++) is_mts |= m->mts[k].param == &b->params[i];
        /* trainable: stays f32; quantized: stays quantized (prepare_model_for_kbit_training) */
        if (is_mts || t->requires_grad || t->dtype == dtype || peft_dtype_is_quantized(t->dtype))
            continue;
        size_t es = dtype == PEFT_DTYPE_F32 ? 4 : 2;
        if (t->dtype == PEFT_DTYPE_F32 && (t->flags & PEFT_T_OWNS_DATA)) {
            /* narrowing an owned f32 buffer: converted in place (element i's 2 bytes land below
             * element i's 4), then the buffer shrinks: no second copy */
            peft_convert_from_f32(dtype, peft_f32(t), t->data, t->numel);
            void *nd = realloc(t->data, (size_t)t->numel * es + 1);
            if (nd) t->data = nd;
            t->dtype = dtype;
            continue;
        }
        void *nd = malloc((size_t)t->numel * es + 1);
        float *f = t->dtype == PEFT_DTYPE_F32 || dtype == PEFT_DTYPE_F32
                       ? NULL : malloc((size_t)t->numel * sizeof *f + 1);
        if (!nd || (t->dtype != PEFT_DTYPE_F32 && dtype != PEFT_DTYPE_F32 && !f)) {
            free(nd);
            free(f);
            return peft_set_error(m->ctx, PEFT_ENOMEM, "cast_mixed_precision_params: out of memory at %s",
                                  b->params[i].name);
        }
        if (dtype == PEFT_DTYPE_F32) {
            peft_tensor_to_f32(t, nd);
        } else if (t->dtype == PEFT_DTYPE_F32) {
            peft_convert_from_f32(dtype, peft_f32(t), nd, t->numel);
        } else { /* f16 <-> bf16 */
            peft_tensor_to_f32(t, f);
            peft_convert_from_f32(dtype, f, nd, t->numel);
        }
        free(f);
        if (t->flags & PEFT_T_OWNS_DATA) free(t->data);
        else peft_storage_release_mapped(t->data, (size_t)t->numel * peft_dtype_size(t->dtype));
        t->data = nd;
        t->dtype = dtype;
        t->flags |= PEFT_T_OWNS_DATA;
    }
    return PEFT_OK;
}

void peft_gradient_checkpointing_enable(peft_base_model *b, int on)
{
    if (!b) return;
    b->gradient_checkpointing = on != 0;
    b->chunked_loss = on != 0;
}

void peft_chunked_loss_enable(peft_base_model *b, int on)
{
    if (b) b->chunked_loss = on != 0;
}

int peft_prepare_model_for_kbit_training(peft_ctx *ctx, peft_base_model *b,
                                         int use_gradient_checkpointing)
{
    if (!b) return peft_set_error(ctx, PEFT_EINVAL, "prepare_model_for_kbit_training: no model");
    for (size_t i = 0; i < b->n_params; i++) {
        peft_tensor *t = b->params[i].t;
        t->requires_grad = 0;
        if (b->meta || t->ndim != 1 || t->dtype == PEFT_DTYPE_F32 || peft_dtype_is_quantized(t->dtype))
            continue;
        /* norms (and biases) in f32, as PEFT casts every non-quantized half-precision param */
        void *old;
        int32_t odt;
        int owned;
        if (peft_tensor_make_f32_owned(t, &old, &odt, &owned))
            return peft_set_error(ctx, PEFT_ENOMEM, "prepare_model_for_kbit_training: out of "
                                  "memory at %s", b->params[i].name);
        if (owned) free(old);
    }
    if (use_gradient_checkpointing) {
        b->embed_outputs_require_grad = 1;
        peft_gradient_checkpointing_enable(b, 1);
    }
    return PEFT_OK;
}

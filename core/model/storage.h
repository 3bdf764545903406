/* storage.h — how a base model's weights are held (core-internal, used by model.c): the load
 * dtype (torch_dtype), quantization at load (quantization_config / load options), weights drawn
 * in memory for benchmarks. */
#ifndef PEFT_STORAGE_H
#define PEFT_STORAGE_H

#include "core/model/model_internal.h"

/* reads the options and config.json's quantization_config into m (after config.json, before
 * build). 0, or PEFT_EINVAL (an unknown option) / PEFT_EFORMAT (a bad field) with err naming it. */
int peft_storage_setup(peft_base_model *m, const peft_load_options *o, char *err, size_t errlen);
/* a weight just wrapped from its file: converted to m->load_dtype if asked (the file's pages
 * released). 0 or -1 with err. */
int peft_storage_take(peft_base_model *m, const char *name, peft_tensor *t, char *err, size_t errlen);
/* random_init: a new owned tensor with that shape drawn per the init rules; NULL on OOM */
peft_tensor *peft_storage_random(peft_base_model *m, const char *name, int ndim,
                                 const int64_t *shape);
/* a linear site just registered: its weight quantized when m->quant_dtype says so and the site
 * is not the output head nor skipped. 0 or -1 with err. */
int peft_storage_site(peft_base_model *m, peft_site *s, char *err, size_t errlen);
/* gives the pages of a file-mapped range back to the kernel (they are re-read if touched) */
void peft_storage_release_mapped(const void *p, size_t bytes);

#endif

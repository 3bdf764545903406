/* attn.h — the base model's attention modules, core-internal part (registration is public:
 * peft_model_add_attn in peft/model.h). */
#ifndef PEFT_MODEL_ATTN_H
#define PEFT_MODEL_ATTN_H
#include "core/model/model_internal.h"
/* frees m's attention module records (peft_base_model_free) */
void peft_model_free_attn(peft_base_model *m);
#endif

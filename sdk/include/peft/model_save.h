/* model_save.h — write a base model back as a Hugging Face model directory (config.json +
 * model.safetensors), e.g. after merge_and_unload. */
#ifndef PEFT_MODEL_SAVE_H
#define PEFT_MODEL_SAVE_H

#include "peft/export.h"

#include <stddef.h>
#include "peft/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes dir/config.json (the loaded config, "torch_dtype" set to the dtype written) and
 * dir/model.safetensors (every parameter once under its Hugging Face name, tied weights once,
 * metadata {"format": "pt"}), atomically as a set: both are written to "<dir>.tmp.<pid>",
 * which then replaces dir in one swap (other files of dir are kept; leftovers of killed saves
 * are removed); creates dir. dtype: PEFT_DTYPE_F32, _BF16 or
 * _F16 for every tensor (merged weights are f32 in memory). Meta (weight-free) models are
 * refused. PEFT_OK, or PEFT_EINVAL (a meta model, a dtype, a path too long), PEFT_EIO (dir or a
 * file could not be written; dir keeps its old contents) or PEFT_ENOMEM, with the message on
 * ctx (may be NULL: the code alone). */
PEFT_API int peft_base_model_save(peft_ctx *ctx, const peft_base_model *m, const char *dir,
                                  int32_t dtype);

#ifdef __cplusplus
}
#endif
#endif

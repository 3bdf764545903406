/* safetensors.h (core) — the safetensors reader and writer with an error buffer, for the core's
 * own callers (model loading, adapter io, the host's file service), which compose the message
 * into their own. Applications use peft/safetensors.h: the same calls, errors on the context. */
#ifndef PEFT_CORE_SAFETENSORS_H
#define PEFT_CORE_SAFETENSORS_H

#include <stddef.h>
#include "peft/safetensors.h"

/* peft_st_open with "<path>: <what>" in err (err may be NULL): PEFT_OK, PEFT_EIO, PEFT_EFORMAT,
 * PEFT_ENOMEM or PEFT_EINVAL; *out as peft_st_open's (caller frees with peft_st_close) */
int peft_st_open_buf(const char *path, peft_st_file **out, char *err, size_t errlen);
/* peft_st_write with the message in err: PEFT_OK, PEFT_EINVAL (a tensor or metadata refused),
 * PEFT_EIO (the file could not be written; path untouched) or PEFT_ENOMEM */
int peft_st_write_buf(const char *path, const peft_st_out *tensors, size_t n,
                      const char *const *meta_kv, char *err, size_t errlen);

#endif

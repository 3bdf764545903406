/* safetensors.h — read (mmap, zero-copy, fully validated) and write (atomic) .safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the byte buffer. Reading validates every field: a known
 * dtype, non-negative shape, numel * dtype size == end - begin, ranges inside the buffer and not
 * overlapping, a sane header length (<= 100 MB and inside the file), valid UTF-8/JSON.
 * Errors: a status code (peft/status.h) and a message naming the file, the tensor and what was
 * expected, left on the context (peft_errmsg / peft_errcode; ctx may be NULL: the code alone).
 */
#ifndef PEFT_SAFETENSORS_H
#define PEFT_SAFETENSORS_H

#include "peft/export.h"

#include <stddef.h>
#include <stdint.h>
#include "peft/status.h"
#include "peft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct peft_ctx peft_ctx; /* peft/peft.h */

typedef struct peft_st_entry {
    char *name;       /* owned by the file */
    int32_t dtype;    /* PEFT_DTYPE_* (F32, F16, BF16, I32); other dtypes are refused */
    int ndim;
    int64_t shape[PEFT_MAX_DIMS];
    const void *data; /* points into the mapping: borrowed, valid until peft_st_close */
    size_t nbytes;
} peft_st_entry;

typedef struct peft_st_file {
    char *path;
    void *map;
    size_t map_len;
    peft_st_entry *entries; /* sorted by name */
    size_t n_entries;
    char *metadata_json;    /* the __metadata__ object as JSON text, or NULL */
} peft_st_file;

/* Opens and validates path. PEFT_OK and *out (caller frees with peft_st_close), or PEFT_EIO
 * (missing or unreadable), PEFT_EFORMAT (not a valid safetensors file), PEFT_ENOMEM or
 * PEFT_EINVAL (NULL argument), with the message on ctx. */
PEFT_API int peft_st_open(peft_ctx *ctx, const char *path, peft_st_file **out);
PEFT_API void peft_st_close(peft_st_file *f);
/* entry by name (binary search) or NULL; borrowed */
PEFT_API const peft_st_entry *peft_st_find(const peft_st_file *f, const char *name);

/* A tensor to write. data: numel elements of dtype (f32, f16, bf16 or i32). */
typedef struct peft_st_out {
    const char *name;
    int32_t dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} peft_st_out;

/* Writes tensors (any order; written sorted by name, offsets contiguous and aligned to 8 like
 * the reference writer) with metadata pairs (meta_kv: key0, val0, key1, val1, ..., NULL) to
 * path atomically: path.tmp.<pid>, fsync, rename. On failure the old file (if any) is untouched
 * and no temporary remains. PEFT_OK, or PEFT_EINVAL (a bad argument, tensor or metadata pair:
 * nothing is written), PEFT_EIO (the file could not be written) or PEFT_ENOMEM, with the
 * message on ctx. */
PEFT_API int peft_st_write(peft_ctx *ctx, const char *path, const peft_st_out *tensors, size_t n,
                           const char *const *meta_kv);

#ifdef __cplusplus
}
#endif
#endif

/* peft/util.h — the file and text helpers that libpeft uses itself and offers to applications
 * (the peft command, the runner): directories, whole-file reads, atomic writes, and the one
 * "did you mean" rule every error message uses. The file calls return PEFT_OK / a pointer, or
 * a PEFT_E* code / NULL with the code and a message naming the path on ctx (peft_errmsg /
 * peft_errcode; ctx may be NULL: the code alone): PEFT_EIO (the file system refused: the
 * message says why), PEFT_ENOMEM, PEFT_EINVAL (a NULL argument). */
#ifndef PEFT_UTIL_H
#define PEFT_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include "peft/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct peft_ctx peft_ctx; /* peft/peft.h */

/* mkdir -p: creates dir and its missing parents (0777 & ~umask); fails when a component
 * exists and is not a directory. */
PEFT_API int peft_mkdirs(peft_ctx *ctx, const char *dir);

/* The whole file, NUL-terminated (*len, when len != NULL, gets its size without the NUL).
 * Returned buffer owned by the caller: free(). */
PEFT_API char *peft_read_file(peft_ctx *ctx, const char *path, size_t *len);

/* Atomic replacement of one file: a reader sees the old file or the new one, never a mix, and
 * an interrupted write leaves only "<path>.tmp.<pid>" behind. Writes go to that temporary name
 * (af->f), commit flushes, fsyncs, renames over path and fsyncs the directory. */
typedef struct peft_atomic_file {
    FILE *f;    /* write here between begin and commit/abort */
    char *tmp;  /* owned: "<path>.tmp.<pid>" */
    char *path; /* owned copy of path */
} peft_atomic_file;
PEFT_API int peft_atomic_begin(peft_ctx *ctx, peft_atomic_file *af, const char *path);
/* closes af (always); on failure the temporary file is removed and path is untouched
 * (PEFT_ESTATE: af was not open) */
PEFT_API int peft_atomic_commit(peft_ctx *ctx, peft_atomic_file *af);
/* closes af and removes the temporary file (NULL-safe, idempotent) */
PEFT_API void peft_atomic_abort(peft_atomic_file *af);
/* begin + write n bytes + commit */
PEFT_API int peft_write_file_atomic(peft_ctx *ctx, const char *path, const void *data, size_t n);

/* "<dir>/<name>" into out (size bytes): 0, or -1 when it does not fit (out then holds a
 * truncated, NUL-terminated prefix that must not be used as a path). */
PEFT_API int peft_path_join(char *out, size_t size, const char *dir, const char *name);

/* The candidate closest to s by edit distance (Levenshtein with
 * adjacent transpositions), or NULL when none is close enough
 * to be a typo: at most 1 edit for words of up to 3 letters, at most 3 otherwise. Returns a
 * pointer into cand (borrowed). */
PEFT_API const char *peft_did_you_mean(const char *s, const char *const *cand, size_t n);

#ifdef __cplusplus
}
#endif
#endif

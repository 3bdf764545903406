/* peft/util.h — the file and text helpers that libpeft uses itself and offers to applications
 * (the peft command, the runner): directories, whole-file reads, atomic writes, and the one
 * "did you mean" rule every error message uses. Each returns 0 / a pointer on success; on
 * failure -1 / NULL with a message (naming the path) in err. */
#ifndef PEFT_UTIL_H
#define PEFT_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include "peft/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mkdir -p: creates dir and its missing parents (0777 & ~umask); fails when a component
 * exists and is not a directory. */
PEFT_API int peft_mkdirs(const char *dir, char *err, size_t errlen);

/* The whole file, NUL-terminated (*len, when len != NULL, gets its size without the NUL).
 * Returned buffer owned by the caller: free(). */
PEFT_API char *peft_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* Atomic replacement of one file: a reader sees the old file or the new one, never a mix, and
 * an interrupted write leaves only "<path>.tmp.<pid>" behind. Writes go to that temporary name
 * (af->f), commit flushes, fsyncs, renames over path and fsyncs the directory. */
typedef struct peft_atomic_file {
    FILE *f;    /* write here between begin and commit/abort */
    char *tmp;  /* owned: "<path>.tmp.<pid>" */
    char *path; /* owned copy of path */
} peft_atomic_file;
PEFT_API int peft_atomic_begin(peft_atomic_file *af, const char *path, char *err, size_t errlen);
/* closes af (always); on failure the temporary file is removed and path is untouched */
PEFT_API int peft_atomic_commit(peft_atomic_file *af, char *err, size_t errlen);
/* closes af and removes the temporary file (NULL-safe, idempotent) */
PEFT_API void peft_atomic_abort(peft_atomic_file *af);
/* begin + write n bytes + commit */
PEFT_API int peft_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);

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

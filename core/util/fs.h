/* fs.h (core) — peft/util.h's file helpers with an error buffer, for the core's own writers,
 * which compose the message into their own: PEFT_OK or a PEFT_E* code (PEFT_EIO, PEFT_ENOMEM;
 * peft_atomic_commit_buf on a file not open: PEFT_ESTATE) with "<path>: <what>" in err (err may
 * be NULL). Applications use peft/util.h: the same calls, errors on the context. */
#ifndef PEFT_CORE_FS_H
#define PEFT_CORE_FS_H

#include <stddef.h>
#include "peft/util.h"

int peft_mkdirs_buf(const char *dir, char *err, size_t errlen);
/* NULL on failure; the buffer (NUL-terminated, *len without the NUL) is the caller's: free() */
char *peft_read_file_buf(const char *path, size_t *len, char *err, size_t errlen);
int peft_atomic_begin_buf(peft_atomic_file *af, const char *path, char *err, size_t errlen);
int peft_atomic_commit_buf(peft_atomic_file *af, char *err, size_t errlen);
int peft_write_file_atomic_buf(const char *path, const void *data, size_t n, char *err, size_t errlen);

#endif

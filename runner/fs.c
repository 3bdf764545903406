/* fs.c — the runner's own file helpers (mkdir -p, reads and atomic writes are peft/util.h's). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "peft/peft.h"
#include "peft/util.h"
#include "runner/runner.h"

/* a context for one call, its message copied into err */
static peft_ctx *fs_ctx(char *err, size_t errlen)
{
    peft_ctx *c = peft_ctx_new(0);
    if (!c && err && errlen) snprintf(err, errlen, "out of memory");
    return c;
}

static int fs_done(peft_ctx *c, int rc, char *err, size_t errlen)
{
    if (rc && err && errlen) snprintf(err, errlen, "%s", peft_errmsg(c));
    peft_ctx_free(c);
    return rc ? -1 : 0;
}

int runner_mkdirs(const char *dir, char *err, size_t errlen)
{
    peft_ctx *c = fs_ctx(err, errlen);
    return c ? fs_done(c, peft_mkdirs(c, dir), err, errlen) : -1;
}

char *runner_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    peft_ctx *c = fs_ctx(err, errlen);
    if (!c) return NULL;
    char *s = peft_read_file(c, path, len);
    fs_done(c, s ? 0 : -1, err, errlen);
    return s;
}

int runner_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    peft_ctx *c = fs_ctx(err, errlen);
    return c ? fs_done(c, peft_write_file_atomic(c, path, data, n), err, errlen) : -1;
}

int runner_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int64_t runner_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

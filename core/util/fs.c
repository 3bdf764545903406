/* fs.c — the one implementation of mkdir -p, whole-file reads and atomic file replacement
 * (temporary name, fsync, rename, fsync of the directory) that every writer in the tree uses,
 * so that no save can leave a half-written file behind. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util/fs.h"
#include "peft/peft.h"
#include "peft/util.h"

#define ERR(...) (err && errlen ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

int peft_mkdirs_buf(const char *dir, char *err, size_t errlen)
{
    size_t n = strlen(dir);
    char *p = strdup(dir);
    if (!p) return ERR("%s: out of memory", dir), PEFT_ENOMEM;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            ERR("%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return PEFT_EIO;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            ERR("%s: exists and is not a directory", p);
            free(p);
            return PEFT_EIO;
        }
        p[i] = c;
    }
    free(p);
    return 0;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen, int *code);

char *peft_read_file_buf(const char *path, size_t *len, char *err, size_t errlen)
{
    return read_file(path, len, err, errlen, NULL);
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen, int *code)
{
    if (code) *code = PEFT_EIO;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ERR("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *b = cap < ((size_t)1 << 34) ? realloc(buf, cap *= 2) : NULL;
            if (!b) free(buf);
            buf = b;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        if (code && !bad) *code = PEFT_ENOMEM;
        free(buf);
        ERR("%s: cannot read (%s)", path, bad ? "I/O error" : "out of memory");
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* best effort: makes a rename durable */
static void fsync_parent(const char *path)
{
    char *p = strdup(path);
    if (!p) return;
    int fd = open(dirname(p), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(p);
}

int peft_atomic_begin_buf(peft_atomic_file *af, const char *path, char *err, size_t errlen)
{
    memset(af, 0, sizeof *af);
    size_t tl = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(tl);
    if (!af->path || !af->tmp) {
        peft_atomic_abort(af);
        return ERR("%s: out of memory", path), PEFT_ENOMEM;
    }
    snprintf(af->tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && !(af->f = fdopen(fd, "wb"))) close(fd);
    if (!af->f) {
        ERR("%s: cannot create: %s", af->tmp, strerror(errno));
        peft_atomic_abort(af);
        return PEFT_EIO;
    }
    return 0;
}

int peft_atomic_commit_buf(peft_atomic_file *af, char *err, size_t errlen)
{
    if (!af->f) return ERR("%s: not open", af->path ? af->path : "?"), PEFT_ESTATE;
    int ok = !ferror(af->f) && fflush(af->f) == 0 && fsync(fileno(af->f)) == 0;
    int e = errno;
    if (fclose(af->f) != 0 && ok) ok = 0, e = errno;
    af->f = NULL;
    int renamed = 1;
    if (ok && rename(af->tmp, af->path) != 0) ok = renamed = 0, e = errno;
    if (!ok) {
        if (!renamed) ERR("%s: cannot rename %s into place: %s", af->path, af->tmp, strerror(e));
        else ERR("%s: cannot write: %s", af->path, strerror(e ? e : EIO));
        peft_atomic_abort(af);
        return PEFT_EIO;
    }
    fsync_parent(af->path);
    free(af->tmp);
    free(af->path);
    af->tmp = af->path = NULL;
    return 0;
}

void peft_atomic_abort(peft_atomic_file *af)
{
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int peft_write_file_atomic_buf(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    peft_atomic_file af;
    int rc = peft_atomic_begin_buf(&af, path, err, errlen);
    if (rc) return rc;
    if (n && fwrite(data, 1, n, af.f) != n) {
        ERR("%s: cannot write: %s", path, strerror(errno));
        peft_atomic_abort(&af);
        return PEFT_EIO;
    }
    return peft_atomic_commit_buf(&af, err, errlen);
}

int peft_path_join(char *out, size_t size, const char *dir, const char *name)
{
    int k = snprintf(out, size, "%s/%s", dir, name);
    return k < 0 || (size_t)k >= size ? -1 : 0;
}

/* ---- the public calls: the same, with the code and the message on the context ---- */
#define ON_CTX(call)                                                  \
    do {                                                              \
        char err_[8192] = "";                                         \
        char *err = err_;                                             \
        size_t errlen = sizeof err_;                                  \
        int rc_ = (call);                                             \
        return rc_ ? peft_set_error(ctx, rc_, "%s", err_) : PEFT_OK;  \
    } while (0)

int peft_mkdirs(peft_ctx *ctx, const char *dir)
{
    if (!dir || !*dir) return peft_set_error(ctx, PEFT_EINVAL, "peft_mkdirs: no directory");
    ON_CTX(peft_mkdirs_buf(dir, err, errlen));
}

char *peft_read_file(peft_ctx *ctx, const char *path, size_t *len)
{
    if (!path) return peft_set_error(ctx, PEFT_EINVAL, "peft_read_file: no path"), NULL;
    char err[8192] = "";
    int code = PEFT_EIO;
    char *s = read_file(path, len, err, sizeof err, &code);
    if (!s) peft_set_error(ctx, code, "%s", err);
    return s;
}

int peft_atomic_begin(peft_ctx *ctx, peft_atomic_file *af, const char *path)
{
    if (!af || !path) return peft_set_error(ctx, PEFT_EINVAL, "peft_atomic_begin: NULL argument");
    ON_CTX(peft_atomic_begin_buf(af, path, err, errlen));
}

int peft_atomic_commit(peft_ctx *ctx, peft_atomic_file *af)
{
    if (!af) return peft_set_error(ctx, PEFT_EINVAL, "peft_atomic_commit: NULL argument");
    ON_CTX(peft_atomic_commit_buf(af, err, errlen));
}

int peft_write_file_atomic(peft_ctx *ctx, const char *path, const void *data, size_t n)
{
    if (!path || (n && !data))
        return peft_set_error(ctx, PEFT_EINVAL, "peft_write_file_atomic: NULL argument");
    ON_CTX(peft_write_file_atomic_buf(path, data, n, err, errlen));
}
#undef ON_CTX

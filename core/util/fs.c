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
#include "peft/util.h"

#define ERR(...) (err && errlen ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

int peft_mkdirs(const char *dir, char *err, size_t errlen)
{
    size_t n = strlen(dir);
    char *p = strdup(dir);
    if (!p) return ERR("%s: out of memory", dir), -1;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            ERR("%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            ERR("%s: exists and is not a directory", p);
            free(p);
            return -1;
        }
        p[i] = c;
    }
    free(p);
    return 0;
}

char *peft_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
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

int peft_atomic_begin(peft_atomic_file *af, const char *path, char *err, size_t errlen)
{
    memset(af, 0, sizeof *af);
    size_t tl = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(tl);
    if (!af->path || !af->tmp) {
        peft_atomic_abort(af);
        return ERR("%s: out of memory", path), -1;
    }
    snprintf(af->tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && !(af->f = fdopen(fd, "wb"))) close(fd);
    if (!af->f) {
        ERR("%s: cannot create: %s", af->tmp, strerror(errno));
        peft_atomic_abort(af);
        return -1;
    }
    return 0;
}

int peft_atomic_commit(peft_atomic_file *af, char *err, size_t errlen)
{
    if (!af->f) return ERR("%s: not open", af->path ? af->path : "?"), -1;
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
        return -1;
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

int peft_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    peft_atomic_file af;
    if (peft_atomic_begin(&af, path, err, errlen)) return -1;
    if (n && fwrite(data, 1, n, af.f) != n) {
        ERR("%s: cannot write: %s", path, strerror(errno));
        peft_atomic_abort(&af);
        return -1;
    }
    return peft_atomic_commit(&af, err, errlen);
}

int peft_path_join(char *out, size_t size, const char *dir, const char *name)
{
    int k = snprintf(out, size, "%s/%s", dir, name);
    return k < 0 || (size_t)k >= size ? -1 : 0;
}

/* dirsave.c — staged directory saves swapped in atomically (see dirsave.h). */
#define _GNU_SOURCE
#include "core/io/dirsave.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int rename_exchange(const char *a, const char *b)
{
#ifdef SYS_renameat2
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
#else
    errno = ENOSYS;
    return -1;
#endif
}

int peft_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    char p[4608];
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rc |= peft_rmtree(p);
    }
    closedir(d);
    return rmdir(path) | rc;
}

/* name ends in ".tmp.<pid>" (or ".old.<pid>"); *pid set */
static int leftover_pid(const char *name, const char *tag, long *pid)
{
    const char *t = strstr(name, tag);
    if (!t) return 0;
    const char *last = t;
    while ((t = strstr(t + 1, tag))) last = t; /* the last occurrence */
    const char *num = last + strlen(tag);
    if (!*num) return 0;
    char *end;
    long v = strtol(num, &end, 10);
    if (*end || v <= 0) return 0;
    *pid = v;
    return 1;
}

static int dead(long pid)
{
    return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* in folder `in`: remove entries "<prefix>.tmp.<pid>" / "<prefix>.old.<pid>" (prefix NULL: any
 * "*.tmp.<pid>") whose process is gone */
static void clean_leftovers(const char *in, const char *prefix)
{
    DIR *d = opendir(in);
    if (!d) return;
    struct dirent *e;
    char p[4608];
    size_t pl = prefix ? strlen(prefix) : 0;
    while ((e = readdir(d))) {
        long pid;
        if (prefix && (strncmp(e->d_name, prefix, pl) || e->d_name[pl] != '.')) continue;
        const char *rest = prefix ? e->d_name + pl : e->d_name;
        int hit = prefix ? ((!strncmp(rest, ".tmp.", 5) || !strncmp(rest, ".old.", 5)) &&
                            leftover_pid(rest, rest[1] == 't' ? ".tmp." : ".old.", &pid))
                         : leftover_pid(rest, ".tmp.", &pid);
        if (!hit || !dead(pid)) continue;
        snprintf(p, sizeof p, "%s/%s", in, e->d_name);
        peft_rmtree(p);
    }
    closedir(d);
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return -1;
    return 0;
}

/* dir's parent and base name */
static void split(const char *dir, char *parent, size_t plen, const char **base)
{
    const char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(parent, plen, ".");
        *base = dir;
    } else if (slash == dir) {
        snprintf(parent, plen, "/");
        *base = slash + 1;
    } else {
        snprintf(parent, plen, "%.*s", (int)(slash - dir), dir);
        *base = slash + 1;
    }
}

int peft_dirsave_begin(peft_dirsave *s, const char *dir, char *err, size_t errlen)
{
    size_t n = dir ? strlen(dir) : 0;
    while (n > 1 && dir[n - 1] == '/') n--;
    if (n == 0 || n >= sizeof s->dir - 32) {
        snprintf(err, errlen, "save: the directory path is empty or too long");
        return -1;
    }
    snprintf(s->dir, sizeof s->dir, "%.*s", (int)n, dir);
    char parent[4096];
    const char *base;
    split(s->dir, parent, sizeof parent, &base);
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
        snprintf(err, errlen, "%s: save needs a directory name (not '.' or '..')", dir);
        return -1;
    }
    if (mkdir_p(parent)) {
        snprintf(err, errlen, "%s: cannot create directory: %s", parent, strerror(errno));
        return -1;
    }
    clean_leftovers(parent, base); /* staging / old sets of killed saves */
    clean_leftovers(s->dir, NULL); /* *.tmp.<pid> files written in place by older versions */
    snprintf(s->stage, sizeof s->stage, "%s.tmp.%ld", s->dir, (long)getpid());
    peft_rmtree(s->stage);
    if (mkdir(s->stage, 0755) != 0) {
        snprintf(err, errlen, "%s: cannot create directory: %s", s->stage, strerror(errno));
        return -1;
    }
    return 0;
}

void peft_dirsave_abort(peft_dirsave *s)
{
    if (s->stage[0]) peft_rmtree(s->stage);
}

/* hard-links (folders: recreates and recurses) every entry of `from` that `to` lacks, except
 * leftovers "*.tmp.<pid>" */
static int carry_over(const char *from, const char *to)
{
    DIR *d = opendir(from);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char a[4608], b[4608];
    int rc = 0;
    while ((e = readdir(d)) && rc == 0) {
        long pid;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            leftover_pid(e->d_name, ".tmp.", &pid))
            continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        struct stat sa, sb;
        if (lstat(a, &sa) != 0) continue;
        int have = lstat(b, &sb) == 0;
        if (S_ISDIR(sa.st_mode)) {
            if (have && !S_ISDIR(sb.st_mode)) continue; /* the new save wrote a file there */
            if (!have && mkdir(b, sa.st_mode & 07777) != 0) rc = -1;
            else rc = carry_over(a, b);
        } else if (!have) {
            if (S_ISLNK(sa.st_mode)) {
                char target[4096];
                ssize_t n = readlink(a, target, sizeof target - 1);
                if (n < 0) rc = -1;
                else {
                    target[n] = 0;
                    rc = symlink(target, b);
                }
            } else if (link(a, b) != 0) {
                rc = -1;
            }
        }
    }
    closedir(d);
    return rc;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int peft_dirsave_commit(peft_dirsave *s, char *err, size_t errlen)
{
    char parent[4096];
    const char *base;
    split(s->dir, parent, sizeof parent, &base);
    struct stat st;
    int exists = lstat(s->dir, &st) == 0;
    if (exists && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: exists and is not a directory", s->dir);
        peft_dirsave_abort(s);
        return -1;
    }
    if (exists && carry_over(s->dir, s->stage) != 0) {
        snprintf(err, errlen, "%s: cannot carry its other files over to the new save (%s): %s",
                 s->dir, s->stage, strerror(errno));
        peft_dirsave_abort(s);
        return -1;
    }
    fsync_dir(s->stage);
    if (!exists) {
        if (rename(s->stage, s->dir) != 0) {
            snprintf(err, errlen, "%s: rename from %s failed: %s", s->dir, s->stage, strerror(errno));
            peft_dirsave_abort(s);
            return -1;
        }
    } else if (rename_exchange(s->stage, s->dir) != 0) {
        /* no RENAME_EXCHANGE on this filesystem: move the old set aside, then the new one in
         * (a reader may find no directory for a moment, never a mix) */
        char old[4200];
        snprintf(old, sizeof old, "%s.old.%ld", s->dir, (long)getpid());
        peft_rmtree(old);
        if (rename(s->dir, old) != 0 || rename(s->stage, s->dir) != 0) {
            snprintf(err, errlen, "%s: cannot swap in the new save %s: %s", s->dir, s->stage,
                     strerror(errno));
            if (access(s->dir, F_OK) != 0) rename(old, s->dir);
            peft_dirsave_abort(s);
            return -1;
        }
        peft_rmtree(old);
        s->stage[0] = 0;
        fsync_dir(parent);
        return 0;
    }
    fsync_dir(parent);
    if (exists) peft_rmtree(s->stage); /* the old set, now under the staging name */
    s->stage[0] = 0;
    return 0;
}

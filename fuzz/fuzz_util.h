/* fuzz_util.h — shared by the fuzz targets (the fuzz_*.c files here, libFuzzer): the input
 * handed to the loaders (they read paths) as an in-memory file, a scratch directory in memory,
 * and the fixture directory compiled in (FUZZ_FIXTURES).
 *
 * Speed: an input written to a file on disk and reopened costs ~2 ms an execution on ext4
 * (truncating and rewriting a file makes the kernel write it back: `auto_da_alloc`), which
 * capped the targets at ~100 executions/s. The input now goes to a memfd (memfd_create) opened
 * by the loaders as /proc/self/fd/N: the same open/fstat/mmap/read path, no disk. */
#ifndef PEFT_FUZZ_UTIL_H
#define PEFT_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FUZZ_FIXTURES
#define FUZZ_FIXTURES "tests/fixtures"
#endif

static char fuzz_dir_path[512];

static void fuzz_dir_remove(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (system(cmd) != 0) return;
}

/* a per-process scratch dir (made once, removed at exit): "$FUZZ_SCRATCH/peft-fuzz-<pid>", by
 * default in /dev/shm (tmpfs: no disk writes), else in $TMPDIR or /tmp */
static const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *t = getenv("FUZZ_SCRATCH");
        struct stat st;
        if (!t || !*t) t = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : getenv("TMPDIR");
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/peft-fuzz-%ld", t && *t ? t : "/tmp",
                 (long)getpid());
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", fuzz_dir_path);
        if (system(cmd) != 0) abort();
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* data as the whole content of an in-memory file named name (one memfd per name, kept open and
 * rewritten each execution); returns its path "/proc/self/fd/N" (static, per name) */
static const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static struct { const char *name; int fd; char path[64]; } files[4];
    size_t i = 0;
    while (i < 4 && files[i].name && strcmp(files[i].name, name) != 0) i++;
    if (i == 4) abort();
    if (!files[i].name) {
        files[i].fd = memfd_create(name, MFD_CLOEXEC);
        if (files[i].fd < 0) abort();
        files[i].name = name;
        snprintf(files[i].path, sizeof files[i].path, "/proc/self/fd/%d", files[i].fd);
    }
    int fd = files[i].fd;
    if (ftruncate(fd, 0) != 0) abort();
    for (size_t o = 0; o < size;) {
        ssize_t w = pwrite(fd, data + o, size - o, (off_t)o);
        if (w <= 0) abort();
        o += (size_t)w;
    }
    return files[i].path;
}

/* a NUL-terminated copy (caller frees) */
static char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

#endif

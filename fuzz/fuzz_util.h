/* fuzz_util.h — shared by the fuzz targets (the fuzz_*.c files here, libFuzzer): the input
 * written to a file (the loaders read paths) and the fixture directory compiled in
 * (FUZZ_FIXTURES). */
#ifndef PEFT_FUZZ_UTIL_H
#define PEFT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef FUZZ_FIXTURES
#define FUZZ_FIXTURES "tests/fixtures"
#endif

/* a per-process scratch dir "$TMPDIR/peft-fuzz-<pid>" (made once) */
static const char *fuzz_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/peft-fuzz-%ld", t && *t ? t : "/tmp", (long)getpid());
        char cmd[600];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
        if (system(cmd) != 0) abort();
    }
    return dir;
}

/* writes data to fuzz_dir()/name; returns the path (static) */
static const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

/* a NUL-terminated copy (caller frees) */
static char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    for (size_t i = 0; i < size; i++) s[i] = (char)data[i];
    s[size] = 0;
    return s;
}

#endif

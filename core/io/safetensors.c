/* safetensors.c — reads .safetensors files through mmap (zero-copy, every header field validated
 * so that hostile input gets a clear error and never a crash or an out-of-bounds read) and writes
 * them atomically (temporary file, fsync, rename) in the layout of the reference writer.
 */
#define _GNU_SOURCE
#include "core/util/fs.h"
#include "core/io/safetensors.h"
#include "peft/peft.h"
#include "peft/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ULL /* same limit as the reference implementation */
#define ST_META_KEY "__metadata__"

/* ---- errors ---------------------------------------------------------------------------------- */

typedef struct st_ctx {
    const char *path;
    char *err;
    size_t errlen;
    int *oom; /* set to 1 when the failure is out of memory (st_oom); may be NULL */
} st_ctx;

/* "<path>: <message>" into ctx->err; always returns -1 */
static int st_vfail(const st_ctx *c, const char *fmt, va_list ap)
{
    if (!c->err || c->errlen == 0) return -1;
    int k = snprintf(c->err, c->errlen, "%s: ", c->path ? c->path : "(null)");
    if (k < 0 || (size_t)k >= c->errlen) return -1;
    vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
    return -1;
}

static int st_fail(const st_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int st_fail(const st_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_vfail(c, fmt, ap);
    va_end(ap);
    return -1;
}

/* as st_fail, and the call's code becomes PEFT_ENOMEM */
static int st_oom(const st_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int st_oom(const st_ctx *c, const char *fmt, ...)
{
    if (c->oom) *c->oom = 1;
    va_list ap;
    va_start(ap, fmt);
    st_vfail(c, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- dtypes ---------------------------------------------------------------------------------- */

static const struct { const char *name; int32_t code; } st_supported[] = {
    {"F32", PEFT_DTYPE_F32}, {"F16", PEFT_DTYPE_F16}, {"BF16", PEFT_DTYPE_BF16},
    {"I32", PEFT_DTYPE_I32},
};

/* valid safetensors dtypes that libpeft does not compute with */
static const char *const st_unsupported[] = {
    "F64", "I64", "U64", "U32", "I16", "U16", "I8", "U8", "BOOL", "F8_E5M2", "F8_E4M3",
    "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
};

static size_t st_dtype_size(int32_t dt)
{
    switch (dt) {
    case PEFT_DTYPE_F32: case PEFT_DTYPE_I32: return 4;
    case PEFT_DTYPE_F16: case PEFT_DTYPE_BF16: return 2;
    default: return 0;
    }
}

static const char *st_dtype_name(int32_t dt)
{
    for (size_t i = 0; i < sizeof st_supported / sizeof st_supported[0]; i++)
        if (st_supported[i].code == dt) return st_supported[i].name;
    return NULL;
}

/* 0 and *dt, or -1 with an "unsupported dtype" / "unknown dtype" message */
static int st_dtype_parse(const st_ctx *c, const char *tname, const char *s, int32_t *dt)
{
    for (size_t i = 0; i < sizeof st_supported / sizeof st_supported[0]; i++)
        if (strcmp(s, st_supported[i].name) == 0) { *dt = st_supported[i].code; return 0; }
    for (size_t i = 0; i < sizeof st_unsupported / sizeof st_unsupported[0]; i++)
        if (strcmp(s, st_unsupported[i]) == 0)
            return st_fail(c, "tensor '%s': unsupported dtype \"%s\" (expected F32, F16, BF16 or I32)",
                           tname, s);
    return st_fail(c, "tensor '%s': unknown dtype \"%.32s\" (expected F32, F16, BF16 or I32)", tname, s);
}

/* ---- reading: one header entry --------------------------------------------------------------- */

/* a parsed entry's byte range in the data buffer, for the overlap check */
typedef struct st_range {
    uint64_t begin, end;
    const char *name;
} st_range;

static int st_parse_shape(const st_ctx *c, const char *tname, json_t *js, peft_st_entry *e,
                          uint64_t *numel)
{
    if (!json_is_array(js))
        return st_fail(c, "tensor '%s': \"shape\" must be an array of integers", tname);
    size_t nd = json_array_size(js);
    if (nd > PEFT_MAX_DIMS)
        return st_fail(c, "tensor '%s': shape has %zu dims, at most %d are supported",
                       tname, nd, PEFT_MAX_DIMS);
    uint64_t n = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return st_fail(c, "tensor '%s': shape[%zu] must be an integer", tname, i);
        json_int_t v = json_integer_value(d);
        if (v < 0)
            return st_fail(c, "tensor '%s': shape[%zu] is negative (%lld), expected >= 0",
                           tname, i, (long long)v);
        if (__builtin_mul_overflow(n, (uint64_t)v, &n))
            return st_fail(c, "tensor '%s': shape product overflows", tname);
        e->shape[i] = (int64_t)v;
    }
    for (size_t i = nd; i < PEFT_MAX_DIMS; i++) e->shape[i] = 1;
    e->ndim = (int)nd;
    *numel = n;
    return 0;
}

static int st_parse_offsets(const st_ctx *c, const char *tname, json_t *jo, uint64_t buflen,
                            st_range *r)
{
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return st_fail(c, "tensor '%s': \"data_offsets\" must be an array [begin, end]", tname);
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je))
        return st_fail(c, "tensor '%s': \"data_offsets\" must hold two integers", tname);
    json_int_t b = json_integer_value(jb), e = json_integer_value(je);
    if (b < 0 || e < 0)
        return st_fail(c, "tensor '%s': negative data_offsets [%lld, %lld]", tname,
                       (long long)b, (long long)e);
    if (b > e)
        return st_fail(c, "tensor '%s': data_offsets begin %lld > end %lld", tname,
                       (long long)b, (long long)e);
    if ((uint64_t)e > buflen)
        return st_fail(c, "tensor '%s': data_offsets end %lld is past the data buffer of %llu bytes "
                       "(file truncated?)", tname, (long long)e, (unsigned long long)buflen);
    r->begin = (uint64_t)b;
    r->end = (uint64_t)e;
    return 0;
}

/* refuses any field other than dtype, shape and data_offsets, and any missing one */
static int st_check_fields(const st_ctx *c, const char *tname, json_t *jv)
{
    const char *k;
    json_t *v;
    json_object_foreach(jv, k, v) {
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return st_fail(c, "tensor '%s': unknown field \"%.64s\" (expected dtype, shape, "
                           "data_offsets)", tname, k);
    }
    static const char *const need[] = {"dtype", "shape", "data_offsets"};
    for (int i = 0; i < 3; i++)
        if (!json_object_get(jv, need[i]))
            return st_fail(c, "tensor '%s': missing field \"%s\"", tname, need[i]);
    return 0;
}

static int st_parse_entry(const st_ctx *c, const char *tname, json_t *jv, const uint8_t *buf,
                          uint64_t buflen, peft_st_entry *e, st_range *r)
{
    if (!json_is_object(jv))
        return st_fail(c, "tensor '%s': entry must be an object {dtype, shape, data_offsets}", tname);
    if (st_check_fields(c, tname, jv)) return -1;
    json_t *jd = json_object_get(jv, "dtype");
    if (!json_is_string(jd)) return st_fail(c, "tensor '%s': \"dtype\" must be a string", tname);
    if (st_dtype_parse(c, tname, json_string_value(jd), &e->dtype)) return -1;
    uint64_t numel = 0, nbytes = 0;
    if (st_parse_shape(c, tname, json_object_get(jv, "shape"), e, &numel)) return -1;
    if (st_parse_offsets(c, tname, json_object_get(jv, "data_offsets"), buflen, r)) return -1;
    if (__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(e->dtype), &nbytes))
        return st_fail(c, "tensor '%s': byte size overflows", tname);
    if (nbytes != r->end - r->begin)
        return st_fail(c, "tensor '%s': shape and dtype %s need %llu bytes but data_offsets "
                       "[%llu, %llu] span %llu", tname, json_string_value(jd),
                       (unsigned long long)nbytes, (unsigned long long)r->begin,
                       (unsigned long long)r->end, (unsigned long long)(r->end - r->begin));
    if (!(e->name = strdup(tname))) return st_oom(c, "out of memory");
    e->data = buf + r->begin;
    e->nbytes = (size_t)nbytes;
    r->name = e->name;
    return 0;
}

/* ---- reading: whole header ------------------------------------------------------------------- */

static int st_parse_metadata(const st_ctx *c, json_t *jm, peft_st_file *f)
{
    if (!json_is_object(jm))
        return st_fail(c, "\"__metadata__\" must be an object of string to string");
    const char *k;
    json_t *v;
    json_object_foreach(jm, k, v) {
        if (!json_is_string(v))
            return st_fail(c, "\"__metadata__\" value for key \"%.64s\" must be a string", k);
    }
    f->metadata_json = json_dumps(jm, JSON_COMPACT);
    return f->metadata_json ? 0 : st_oom(c, "out of memory");
}

static int st_cmp_range(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int st_cmp_entry(const void *a, const void *b)
{
    return strcmp(((const peft_st_entry *)a)->name, ((const peft_st_entry *)b)->name);
}

/* sorts r by begin; refuses two non-empty ranges that share a byte */
static int st_check_overlaps(const st_ctx *c, st_range *r, size_t n)
{
    qsort(r, n, sizeof *r, st_cmp_range);
    const st_range *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (r[i].begin == r[i].end) continue;
        if (prev && r[i].begin < prev->end)
            return st_fail(c, "tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap in the data "
                           "buffer", prev->name, (unsigned long long)prev->begin,
                           (unsigned long long)prev->end, r[i].name,
                           (unsigned long long)r[i].begin, (unsigned long long)r[i].end);
        if (!prev || r[i].end > prev->end) prev = &r[i];
    }
    return 0;
}

/* r sorted by begin: the tensors fill the data buffer in order from byte 0 to its end with no
 * gap (as the reference reader requires: a hole is bytes no tensor accounts for) */
static int st_check_contiguous(const st_ctx *c, const st_range *r, size_t n, uint64_t buflen)
{
    uint64_t at = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (r[i].begin == r[i].end) continue;
        if (r[i].begin != at)
            return st_fail(c, "tensor '%s' starts at byte %llu of the data buffer, but %s ends at "
                           "%llu: %llu bytes belong to no tensor (the tensors must fill the buffer "
                           "in order)", r[i].name, (unsigned long long)r[i].begin,
                           prev ? prev : "the buffer's start", (unsigned long long)at,
                           (unsigned long long)(r[i].begin - at));
        at = r[i].end;
        prev = r[i].name;
    }
    if (at != buflen)
        return st_fail(c, "the data buffer has %llu bytes after the last tensor (%s ends at %llu "
                       "of %llu)", (unsigned long long)(buflen - at), prev ? prev : "none",
                       (unsigned long long)at, (unsigned long long)buflen);
    return 0;
}

static int st_parse_entries(const st_ctx *c, json_t *root, const uint8_t *buf, uint64_t buflen,
                            peft_st_file *f)
{
    size_t n = json_object_size(root);
    f->entries = calloc(n ? n : 1, sizeof *f->entries);
    st_range *r = calloc(n ? n : 1, sizeof *r);
    if (!f->entries || !r) { free(r); return st_oom(c, "out of memory"); }
    const char *k;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, k, v) {
        if (strcmp(k, ST_META_KEY) == 0) rc = st_parse_metadata(c, v, f);
        else if (!(rc = st_parse_entry(c, k, v, buf, buflen, &f->entries[f->n_entries], &r[f->n_entries])))
            f->n_entries++;
        if (rc) break;
    }
    if (!rc) rc = st_check_overlaps(c, r, f->n_entries);
    if (!rc) rc = st_check_contiguous(c, r, f->n_entries, buflen);
    free(r);
    if (!rc) qsort(f->entries, f->n_entries, sizeof *f->entries, st_cmp_entry);
    return rc;
}

/* reads the 8-byte length prefix and checks it against the file size */
static int st_header_len(const st_ctx *c, const uint8_t *map, size_t size, uint64_t *n)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | map[i];
    if (v == 0) return st_fail(c, "header length is 0, expected a JSON header");
    if (v > ST_MAX_HEADER)
        return st_fail(c, "header length %llu is too large (limit %llu)",
                       (unsigned long long)v, ST_MAX_HEADER);
    if (v > size - 8)
        return st_fail(c, "header length %llu runs past the end of the file (%zu bytes)",
                       (unsigned long long)v, size);
    *n = v;
    return 0;
}

/* Legal files may place a tensor at an offset that is not a multiple of its element size;
 * reading such data as float from the mapping is undefined behaviour (a misaligned load). Then
 * the file is copied once into anonymous memory where every such tensor gets an aligned copy
 * after the file's bytes (f->map / f->map_len become that mapping), never cast in place. */
static int st_align(const st_ctx *c, peft_st_file *f)
{
    size_t extra = 0;
    for (size_t i = 0; i < f->n_entries; i++) {
        const peft_st_entry *e = &f->entries[i];
        size_t a = st_dtype_size(e->dtype);
        if (e->nbytes && a > 1 && (uintptr_t)e->data % a) extra += e->nbytes + 8;
    }
    if (!extra) return 0;
    size_t base = (f->map_len + 7) & ~(size_t)7, len = base + extra;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return st_oom(c, "out of memory copying misaligned tensors");
    memcpy(m, f->map, f->map_len);
    size_t at = base;
    for (size_t i = 0; i < f->n_entries; i++) {
        peft_st_entry *e = &f->entries[i];
        size_t a = st_dtype_size(e->dtype), off = (size_t)((const uint8_t *)e->data - (const uint8_t *)f->map);
        if (e->nbytes && a > 1 && (uintptr_t)e->data % a) {
            memcpy(m + at, m + off, e->nbytes);
            e->data = m + at;
            at += (e->nbytes + 7) & ~(size_t)7;
        } else {
            e->data = m + off;
        }
    }
    munmap(f->map, f->map_len);
    mprotect(m, len, PROT_READ);
    f->map = m;
    f->map_len = len;
    return 0;
}

static int st_parse_header(const st_ctx *c, peft_st_file *f)
{
    const uint8_t *map = f->map;
    uint64_t n = 0;
    if (st_header_len(c, map, f->map_len, &n)) return -1;
    json_error_t je;
    json_t *root = json_loadb((const char *)map + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return st_fail(c, "header is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                       je.column);
    int rc;
    if (!json_is_object(root)) rc = st_fail(c, "header is not a JSON object");
    else rc = st_parse_entries(c, root, map + 8 + n, f->map_len - 8 - n, f);
    json_decref(root);
    if (!rc) rc = st_align(c, f);
    return rc;
}

/* opens, stats and maps path into f->map (read-only, private): 0, PEFT_EIO (cannot be read) or
 * PEFT_EFORMAT (too short to be a safetensors file) */
static int st_map(const st_ctx *c, peft_st_file *f)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return st_fail(c, "cannot open: %s", strerror(errno)), PEFT_EIO;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) rc = (st_fail(c, "cannot stat: %s", strerror(errno)), PEFT_EIO);
    else if (!S_ISREG(st.st_mode)) rc = (st_fail(c, "not a regular file"), PEFT_EIO);
    else if (st.st_size < 8)
        rc = (st_fail(c, "file is %lld bytes, shorter than the 8-byte header length",
                      (long long)st.st_size), PEFT_EFORMAT);
    else if ((uint64_t)st.st_size > SIZE_MAX) rc = (st_fail(c, "file too large to map"), PEFT_EIO);
    if (!rc) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) rc = (st_fail(c, "cannot mmap: %s", strerror(errno)), PEFT_EIO);
        else { f->map = m; f->map_len = (size_t)st.st_size; }
    }
    close(fd);
    return rc;
}

int peft_st_open_buf(const char *path, peft_st_file **out, char *err, size_t errlen)
{
    int oom = 0;
    st_ctx c = {path, err, errlen, &oom};
    if (out) *out = NULL;
    if (!path || !out) return st_fail(&c, "peft_st_open: NULL argument"), PEFT_EINVAL;
    peft_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return st_oom(&c, "out of memory"), PEFT_ENOMEM;
    }
    int rc = st_map(&c, f);
    if (!rc && st_parse_header(&c, f)) rc = oom ? PEFT_ENOMEM : PEFT_EFORMAT;
    if (rc) {
        peft_st_close(f);
        return rc;
    }
    *out = f;
    return PEFT_OK;
}

int peft_st_open(peft_ctx *ctx, const char *path, peft_st_file **out)
{
    char err[1024] = "";
    int rc = peft_st_open_buf(path, out, err, sizeof err);
    return rc ? peft_set_error(ctx, rc, "%s", err) : PEFT_OK;
}

void peft_st_close(peft_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_entries; i++) free(f->entries[i].name);
    free(f->entries);
    free(f->metadata_json);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

static int st_cmp_key(const void *key, const void *e)
{
    return strcmp(key, ((const peft_st_entry *)e)->name);
}

const peft_st_entry *peft_st_find(const peft_st_file *f, const char *name)
{
    if (!f || !name || !f->n_entries) return NULL;
    return bsearch(name, f->entries, f->n_entries, sizeof *f->entries, st_cmp_key);
}

/* ---- writing: validation and layout ---------------------------------------------------------- */

/* one tensor to write, with its place in the data buffer */
typedef struct st_plan {
    const peft_st_out *t;
    uint64_t nbytes, begin;
} st_plan;

static int st_out_nbytes(const st_ctx *c, const peft_st_out *t, uint64_t *nbytes)
{
    size_t es = st_dtype_size(t->dtype);
    if (!es) return st_fail(c, "tensor '%s': unknown dtype code %d", t->name, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > PEFT_MAX_DIMS)
        return st_fail(c, "tensor '%s': ndim %d, expected 0..%d", t->name, t->ndim, PEFT_MAX_DIMS);
    if (t->ndim > 0 && !t->shape) return st_fail(c, "tensor '%s': shape is NULL", t->name);
    uint64_t n = es;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0)
            return st_fail(c, "tensor '%s': shape[%d] is negative (%lld)", t->name, i,
                           (long long)t->shape[i]);
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[i], &n) || n > INT64_MAX)
            return st_fail(c, "tensor '%s': byte size overflows", t->name);
    }
    if (n > 0 && !t->data) return st_fail(c, "tensor '%s': data is NULL", t->name);
    *nbytes = n;
    return 0;
}

static int st_cmp_plan_name(const void *a, const void *b)
{
    return strcmp(((const st_plan *)a)->t->name, ((const st_plan *)b)->t->name);
}

/* data order of the reference writer: larger elements first, then by name, so that every tensor
 * starts aligned to its element size (the header is padded to 8) */
static int st_cmp_plan_layout(const void *a, const void *b)
{
    const peft_st_out *x = ((const st_plan *)a)->t, *y = ((const st_plan *)b)->t;
    size_t sx = st_dtype_size(x->dtype), sy = st_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* validates names (non-empty, unique, not __metadata__), dtypes and shapes; assigns offsets;
 * leaves p sorted by data offset */
static int st_plan_outs(const st_ctx *c, const peft_st_out *t, size_t n, st_plan *p)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0]) return st_fail(c, "tensor %zu has an empty name", i);
        if (strcmp(t[i].name, ST_META_KEY) == 0)
            return st_fail(c, "tensor name \"%s\" is reserved", ST_META_KEY);
        if (st_out_nbytes(c, &t[i], &p[i].nbytes)) return -1;
        p[i].t = &t[i];
    }
    qsort(p, n, sizeof *p, st_cmp_plan_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(p[i - 1].t->name, p[i].t->name) == 0)
            return st_fail(c, "tensor name '%s' appears twice", p[i].t->name);
    qsort(p, n, sizeof *p, st_cmp_plan_layout);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].begin = off;
        if (__builtin_add_overflow(off, p[i].nbytes, &off) || off > INT64_MAX)
            return st_fail(c, "total data size overflows");
    }
    return 0;
}

/* ---- writing: header ------------------------------------------------------------------------- */

static int st_meta_json(const st_ctx *c, const char *const *kv, json_t *root)
{
    if (!kv || !kv[0]) return 0;
    json_t *m = json_object();
    if (!m || json_object_set_new(root, ST_META_KEY, m)) return st_oom(c, "out of memory");
    for (size_t i = 0; kv[i]; i += 2) {
        if (!kv[i + 1]) return st_fail(c, "metadata key '%s' has no value", kv[i]);
        if (json_object_get(m, kv[i])) return st_fail(c, "metadata key '%s' appears twice", kv[i]);
        if (json_object_set_new(m, kv[i], json_string(kv[i + 1])))
            return st_fail(c, "metadata '%s' is not valid UTF-8", kv[i]);
    }
    return 0;
}

static int st_entry_json(const st_ctx *c, json_t *root, const st_plan *p)
{
    const peft_st_out *t = p->t;
    json_t *shape = json_array();
    for (int i = 0; shape && i < t->ndim; i++)
        if (json_array_append_new(shape, json_integer(t->shape[i]))) { json_decref(shape); shape = NULL; }
    json_t *e = json_pack("{s:s, s:o, s:[II]}", "dtype", st_dtype_name(t->dtype), "shape", shape,
                          "data_offsets", (json_int_t)p->begin, (json_int_t)(p->begin + p->nbytes));
    if (!e) return st_oom(c, "tensor '%s': out of memory building the header", t->name);
    if (json_object_set_new(root, t->name, e))
        return st_fail(c, "tensor name '%s' is not valid UTF-8", t->name);
    return 0;
}

/* header text for p (sorted by name here), padded with spaces to a multiple of 8; caller frees */
static char *st_build_header(const st_ctx *c, st_plan *p, size_t n, const char *const *meta_kv,
                             size_t *hlen)
{
    json_t *root = json_object();
    char *s = NULL;
    int rc = root ? st_meta_json(c, meta_kv, root) : st_oom(c, "out of memory");
    qsort(p, n, sizeof *p, st_cmp_plan_name);
    for (size_t i = 0; !rc && i < n; i++) rc = st_entry_json(c, root, &p[i]);
    if (!rc && !(s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        st_oom(c, "out of memory building the header");
    json_decref(root);
    if (!s) return NULL;
    size_t len = strlen(s), padded = (len + 7) & ~(size_t)7;
    char *out = realloc(s, padded + 1);
    if (!out) { free(s); st_oom(c, "out of memory"); return NULL; }
    memset(out + len, ' ', padded - len);
    out[padded] = 0;
    *hlen = padded;
    return out;
}

/* ---- writing: the file ----------------------------------------------------------------------- */

static int st_cmp_plan_begin(const void *a, const void *b)
{
    const st_plan *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* length prefix, header, data (p sorted by offset), flushed and fsync'd */
static int st_write_stream(FILE *fp, const char *hdr, size_t hlen, const st_plan *p, size_t n)
{
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (fwrite(len8, 1, 8, fp) != 8 || fwrite(hdr, 1, hlen, fp) != hlen) return -1;
    for (size_t i = 0; i < n; i++)
        if (p[i].nbytes && fwrite(p[i].t->data, 1, p[i].nbytes, fp) != p[i].nbytes) return -1;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) return -1;
    return 0;
}

/* writes everything to a temporary file and renames it over path (peft/util.h's atomic
 * file); on failure the temporary file is removed and path is untouched */
static int st_commit(const st_ctx *c, const char *hdr, size_t hlen, const st_plan *p, size_t n)
{
    peft_atomic_file af;
    if (peft_atomic_begin_buf(&af, c->path, c->err, c->errlen)) return -1;
    if (st_write_stream(af.f, hdr, hlen, p, n)) {
        int e = errno;
        peft_atomic_abort(&af);
        return st_fail(c, "cannot write: %s", strerror(e ? e : EIO));
    }
    return peft_atomic_commit_buf(&af, c->err, c->errlen) ? -1 : 0;
}

int peft_st_write_buf(const char *path, const peft_st_out *tensors, size_t n,
                      const char *const *meta_kv, char *err, size_t errlen)
{
    int oom = 0;
    st_ctx c = {path, err, errlen, &oom};
    if (!path || !*path || (n && !tensors))
        return st_fail(&c, "peft_st_write: invalid argument"), PEFT_EINVAL;
    st_plan *p = calloc(n ? n : 1, sizeof *p);
    if (!p) return st_oom(&c, "out of memory"), PEFT_ENOMEM;
    size_t hlen = 0;
    char *hdr = NULL;
    int rc = st_plan_outs(&c, tensors, n, p) ? PEFT_EINVAL : PEFT_OK;
    if (!rc && !(hdr = st_build_header(&c, p, n, meta_kv, &hlen))) rc = PEFT_EINVAL;
    if (rc && oom) rc = PEFT_ENOMEM;
    if (!rc) {
        qsort(p, n, sizeof *p, st_cmp_plan_begin);
        if (st_commit(&c, hdr, hlen, p, n)) rc = PEFT_EIO;
    }
    free(hdr);
    free(p);
    return rc;
}

int peft_st_write(peft_ctx *ctx, const char *path, const peft_st_out *tensors, size_t n,
                  const char *const *meta_kv)
{
    char err[1024] = "";
    int rc = peft_st_write_buf(path, tensors, n, meta_kv, err, sizeof err);
    return rc ? peft_set_error(ctx, rc, "%s", err) : PEFT_OK;
}

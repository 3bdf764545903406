/* test_safetensors.c — the safetensors reader and writer: round trips, the real PEFT fixtures,
 * hostile files (each refused with a clear message, never a crash), truncation/bit-flip fuzzing
 * and the atomicity of writes. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peft/peft.h"
#include "peft/safetensors.h"
#include "testutil.h"

static char *tmpdir;

static void setup(void) { tmpdir = tu_tmpdir(); ck_assert_ptr_nonnull(tmpdir); peft_clear_error(tu_ctx()); }
static void teardown(void) { tu_rmtree(tmpdir); free(tmpdir); tmpdir = NULL; }

/* "<tmpdir>/<name>" in a rotating static buffer */
static const char *tpath(const char *name)
{
    static char bufs[4][4096];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

/* number of directory entries in dir whose name contains ".tmp." */
static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* writes a safetensors file by hand: length prefix hlen (as given), header text, ndata zero bytes */
static const char *raw_file(const char *name, uint64_t hlen, const char *hdr, size_t ndata)
{
    size_t hl = strlen(hdr), len = 8 + hl + ndata;
    unsigned char *b = calloc(1, len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, hdr, hl);
    const char *p = tpath(name);
    ck_assert_int_eq(tu_write_file(p, b, len), 0);
    free(b);
    return p;
}

static const char *hdr_file(const char *name, const char *hdr, size_t ndata)
{
    return raw_file(name, strlen(hdr), hdr, ndata);
}

/* the file is refused (PEFT_EIO when it cannot be read, PEFT_EFORMAT for its content), with a
 * message naming it and containing phrase */
static void expect_refused(const char *path, const char *phrase)
{
    peft_st_file *f = (peft_st_file *)1;
    peft_clear_error(tu_ctx());
    int rc = peft_st_open(tu_ctx(), path, &f);
    ck_assert_msg(rc == PEFT_EIO || rc == PEFT_EFORMAT, "code %d", rc);
    ck_assert_int_eq(rc, strstr(phrase, "No such file") || strstr(phrase, "not a regular file")
                             ? PEFT_EIO : PEFT_EFORMAT);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(peft_errmsg(tu_ctx()), path) != NULL, "message does not name the file: %s", peft_errmsg(tu_ctx()));
    ck_assert_msg(strstr(peft_errmsg(tu_ctx()), phrase) != NULL, "expected \"%s\" in: %s", phrase, peft_errmsg(tu_ctx()));
}

/* ---- round trip ------------------------------------------------------------------------------ */

START_TEST(test_round_trip)
{
    float a[6] = {1, -2, 3.5f, 4, 5, 6}, s = 42.0f;
    uint16_t bf[5] = {0x3f80, 0x4000, 0xbf80, 0x0000, 0x7f80}, hf[3] = {0x3c00, 0x4000, 0xc000};
    int32_t ids[4] = {7, -1, 0, 2147483647};
    int64_t sa[2] = {2, 3}, sbf[1] = {5}, sid[1] = {4}, sz[2] = {0, 3}, shf[1] = {3};
    peft_st_out t[] = {
        {"w.bf16", PEFT_DTYPE_BF16, 1, sbf, bf},
        {"a.f32", PEFT_DTYPE_F32, 2, sa, a},
        {"ids", PEFT_DTYPE_I32, 1, sid, ids},
        {"scalar", PEFT_DTYPE_F32, 0, NULL, &s},
        {"empty", PEFT_DTYPE_F32, 2, sz, NULL},
        {"h.f16", PEFT_DTYPE_F16, 1, shf, hf},
    };
    const char *meta[] = {"format", "pt", "note", "r\u00e9sum\u00e9 \"quoted\"", NULL};
    const char *p = tpath("rt.safetensors");
    ck_assert_msg(peft_st_write(tu_ctx(), p, t, 6, meta) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(count_tmp_files(tmpdir), 0);

    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_uint_eq(f->n_entries, 6);
    ck_assert_str_eq(f->metadata_json, "{\"format\":\"pt\",\"note\":\"r\u00e9sum\u00e9 \\\"quoted\\\"\"}");
    for (size_t i = 1; i < f->n_entries; i++)
        ck_assert_int_lt(strcmp(f->entries[i - 1].name, f->entries[i].name), 0);
    /* header: padded to 8, metadata first */
    uint64_t hlen = 0;
    memcpy(&hlen, f->map, 8);
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert(strncmp((const char *)f->map + 8, "{\"__metadata__\":", 16) == 0);

    for (int i = 0; i < 6; i++) {
        const peft_st_entry *e = peft_st_find(f, t[i].name);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e->name, t[i].name);
        ck_assert_int_eq(e->dtype, t[i].dtype);
        ck_assert_int_eq(e->ndim, t[i].ndim);
        size_t numel = 1, es = t[i].dtype == PEFT_DTYPE_F32 || t[i].dtype == PEFT_DTYPE_I32 ? 4 : 2;
        for (int d = 0; d < e->ndim; d++) { ck_assert_int_eq(e->shape[d], t[i].shape[d]); numel *= (size_t)t[i].shape[d]; }
        for (int d = e->ndim; d < PEFT_MAX_DIMS; d++) ck_assert_int_eq(e->shape[d], 1);
        ck_assert_uint_eq(e->nbytes, numel * es);
        ck_assert_uint_eq((uintptr_t)e->data % es, 0); /* zero-copy pointers are aligned */
        if (numel) ck_assert(memcmp(e->data, t[i].data, e->nbytes) == 0);
    }
    ck_assert_ptr_null(peft_st_find(f, "missing"));
    ck_assert_ptr_null(peft_st_find(f, ""));
    peft_st_close(f);

    /* without metadata, and with no tensors at all */
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, t, 2, NULL), 0);
    ck_assert_int_eq(peft_st_open(tu_ctx(), p, &f), 0);
    ck_assert_ptr_null(f->metadata_json);
    ck_assert_uint_eq(f->n_entries, 2);
    peft_st_close(f);
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, NULL, 0, NULL), 0);
    ck_assert_int_eq(peft_st_open(tu_ctx(), p, &f), 0);
    ck_assert_uint_eq(f->n_entries, 0);
    ck_assert_ptr_null(peft_st_find(f, "a.f32"));
    peft_st_close(f);
    peft_st_close(NULL);
}
END_TEST

/* ---- real PEFT fixtures ---------------------------------------------------------------------- */

START_TEST(test_fixture_gpt2)
{
    const char *p = tu_fixture("hf-peft/_models/gpt2/model.safetensors");
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_uint_eq(f->n_entries, 28);
    const peft_st_entry *e = peft_st_find(f, "transformer.wte.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->dtype, PEFT_DTYPE_F32);
    ck_assert_int_eq(e->ndim, 2);
    ck_assert_int_eq(e->shape[0], 128);
    ck_assert_int_eq(e->shape[1], 32);
    ck_assert_uint_eq(e->nbytes, 128 * 32 * 4);
    ck_assert((const char *)e->data >= (const char *)f->map &&
              (const char *)e->data + e->nbytes <= (const char *)f->map + f->map_len);
    for (size_t i = 0; i < f->n_entries; i++) /* every entry is reachable by name */
        ck_assert_ptr_eq(peft_st_find(f, f->entries[i].name), &f->entries[i]);
    peft_st_close(f);
}
END_TEST

START_TEST(test_fixture_adapter)
{
    const char *p = tu_fixture("hf-peft/gpt2__lora_default/adapter/adapter_model.safetensors");
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_str_eq(f->metadata_json, "{\"format\":\"pt\"}");
    const peft_st_entry *e = peft_st_find(f, "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->shape[0], 4);
    ck_assert_int_eq(e->shape[1], 32);

    /* rewriting the tensors gives back the bytes Python PEFT wrote */
    peft_st_out *t = calloc(f->n_entries, sizeof *t);
    for (size_t i = 0; i < f->n_entries; i++)
        t[i] = (peft_st_out){f->entries[i].name, f->entries[i].dtype, f->entries[i].ndim,
                             f->entries[i].shape, f->entries[i].data};
    const char *meta[] = {"format", "pt", NULL}, *q = tpath("copy.safetensors");
    ck_assert_msg(peft_st_write(tu_ctx(), q, t, f->n_entries, meta) == 0, "%s", peft_errmsg(tu_ctx()));
    size_t la = 0, lb = 0;
    char *a = tu_read_file(p, &la), *b = tu_read_file(q, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert(memcmp(a, b, la) == 0);
    free(a);
    free(b);
    free(t);
    peft_st_close(f);
}
END_TEST

/* ---- hostile files --------------------------------------------------------------------------- */

#define T(name, dtype, shape, offs) "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

START_TEST(test_hostile_length)
{
    const char *p = tpath("empty");
    ck_assert_int_eq(tu_write_file(p, "", 0), 0);
    expect_refused(p, "shorter than the 8-byte");
    p = tpath("seven");
    ck_assert_int_eq(tu_write_file(p, "\x10\0\0\0\0\0\0", 7), 0);
    expect_refused(p, "shorter than the 8-byte");
    expect_refused(raw_file("zero", 0, "", 0), "header length is 0");
    expect_refused(raw_file("huge", 100000001ULL, "{}", 0), "too large");
    expect_refused(raw_file("huge2", UINT64_MAX, "{}", 0), "too large");
    expect_refused(raw_file("pasteof", 64, "{}", 0), "past the end of the file");
    expect_refused(hdr_file("trunc", "{" T("a", "F32", "[4]", "[0,16]") "}", 12), "past the data buffer");
}
END_TEST

START_TEST(test_hostile_json)
{
    expect_refused(hdr_file("badjson", "{\"a\": {\"dtype\": ", 0), "not valid JSON");
    expect_refused(hdr_file("garbage", "{} trailing", 0), "not valid JSON");
    expect_refused(hdr_file("badutf8", "{\"\xff\xfe\":{}}", 0), "not valid JSON");
    expect_refused(hdr_file("array", "[1,2,3]", 0), "not a JSON object");
    expect_refused(hdr_file("dup", "{" T("a", "F32", "[1]", "[0,4]") "," T("a", "F32", "[1]", "[4,8]") "}", 8),
                   "duplicate");
    expect_refused(hdr_file("notobj", "{\"a\": 5}", 0), "entry must be an object");
    expect_refused(hdr_file("unkfield", "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],"
                            "\"extra\":1}}", 4), "unknown field \"extra\"");
    expect_refused(hdr_file("nodtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                   "missing field \"dtype\"");
    expect_refused(hdr_file("meta", "{\"__metadata__\":{\"format\":1}}", 0), "must be a string");
    expect_refused(hdr_file("meta2", "{\"__metadata__\":[\"pt\"]}", 0), "must be an object");
}
END_TEST

START_TEST(test_hostile_entries)
{
    expect_refused(hdr_file("unkdt", "{" T("w", "F31", "[1]", "[0,4]") "}", 4), "unknown dtype");
    expect_refused(hdr_file("f64", "{" T("w", "F64", "[1]", "[0,8]") "}", 8), "unsupported dtype");
    expect_refused(hdr_file("u8", "{" T("w", "U8", "[1]", "[0,1]") "}", 1), "unsupported dtype");
    expect_refused(hdr_file("dtnum", "{\"w\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                   "\"dtype\" must be a string");
    expect_refused(hdr_file("mismatch", "{" T("w", "F32", "[2,3]", "[0,16]") "}", 16),
                   "need 24 bytes");
    expect_refused(hdr_file("overlap", "{" T("a", "F32", "[4]", "[0,16]") "," T("b", "F32", "[2]", "[12,20]") "}", 20),
                   "overlap");
    expect_refused(hdr_file("overlap2", "{" T("a", "F32", "[8]", "[0,32]") "," T("b", "F32", "[1]", "[8,12]") ","
                            T("c", "F32", "[1]", "[20,24]") "}", 32), "overlap");
    expect_refused(hdr_file("negshape", "{" T("w", "F32", "[-1,4]", "[0,16]") "}", 16), "negative");
    expect_refused(hdr_file("fshape", "{" T("w", "F32", "[1.0]", "[0,4]") "}", 4), "must be an integer");
    expect_refused(hdr_file("beginend", "{" T("w", "F32", "[0]", "[8,4]") "}", 8), "begin 8 > end 4");
    expect_refused(hdr_file("negoff", "{" T("w", "F32", "[0]", "[-4,0]") "}", 8), "negative data_offsets");
    expect_refused(hdr_file("floatoff", "{" T("w", "F32", "[1]", "[0.0,4.0]") "}", 4), "two integers");
    expect_refused(hdr_file("stroff", "{" T("w", "F32", "[1]", "[\"0\",\"4\"]") "}", 4), "two integers");
    expect_refused(hdr_file("offlen", "{" T("w", "F32", "[1]", "[0,4,8]") "}", 8), "[begin, end]");
    expect_refused(hdr_file("dims", "{" T("w", "F32", "[1,1,1,1,1]", "[0,4]") "}", 4), "at most 4");
    expect_refused(hdr_file("ovf", "{" T("w", "F32", "[4294967296,4294967296,4]", "[0,4]") "}", 4), "overflows");
    expect_refused(hdr_file("ovf2", "{" T("w", "F32", "[4611686018427387904]", "[0,4]") "}", 4), "overflows");
    expect_refused(hdr_file("shapeobj", "{" T("w", "F32", "{}", "[0,4]") "}", 4), "\"shape\" must be an array");
    /* bytes no tensor accounts for (issue 16.7): at the front, in the middle, at the end */
    expect_refused(hdr_file("gapfront", "{" T("w", "F32", "[1]", "[4,8]") "}", 8),
                   "tensor 'w' starts at byte 4 of the data buffer, but the buffer's start ends at 0");
    expect_refused(hdr_file("gapmid", "{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[8,12]") "}", 12),
                   "4 bytes belong to no tensor");
    expect_refused(hdr_file("gapend", "{" T("a", "F32", "[1]", "[0,4]") "}", 12), "8 bytes after the last tensor");
}
END_TEST

/* a legal file whose F32 tensor is not 4-byte aligned (after a BF16 of one element): the data
 * is copied to aligned memory, never read as float in place (issue 16.2, UBSan clean) */
START_TEST(test_misaligned_tensor_copied)
{
    const char *hdr = "{" T("a", "BF16", "[1]", "[0,2]") "," T("b", "F32", "[2]", "[2,10]") "}";
    size_t hl = strlen(hdr), pad = (8 - hl % 8) % 8, len = 8 + hl + pad + 10;
    unsigned char *buf = calloc(1, len);
    uint64_t H = hl + pad;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(H >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', pad);
    float v[2] = {1.5f, -2.25f};
    uint16_t one = 0x3f80;
    memcpy(buf + 8 + H, &one, 2);
    memcpy(buf + 8 + H + 2, v, 8);
    const char *p = tpath("misaligned");
    ck_assert_int_eq(tu_write_file(p, buf, len), 0);
    free(buf);
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *b = peft_st_find(f, "b");
    ck_assert((uintptr_t)b->data % 4 == 0);
    const float *bf = b->data;
    ck_assert(bf[0] == 1.5f && bf[1] == -2.25f);
    ck_assert(*(const uint16_t *)peft_st_find(f, "a")->data == 0x3f80);
    peft_st_close(f);
}
END_TEST

START_TEST(test_hostile_accepted_edge_cases)
{
    /* zero-length tensors anywhere, scalars and trailing spaces are fine (gaps are not: issue 16) */
    const char *p = hdr_file("edges", "{" T("a", "F32", "[0]", "[4,4]") "," T("b", "F32", "[]", "[0,4]") ","
                             T("c", "BF16", "[2,0]", "[2,2]") "," T("d", "I32", "[1]", "[4,8]") "}   ", 8);
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_uint_eq(f->n_entries, 4);
    ck_assert_int_eq(peft_st_find(f, "b")->ndim, 0);
    ck_assert_uint_eq(peft_st_find(f, "b")->nbytes, 4);
    ck_assert_uint_eq(peft_st_find(f, "c")->nbytes, 0);
    peft_st_close(f);
}
END_TEST

START_TEST(test_missing_and_dir)
{
    const char *p = tpath("does-not-exist.safetensors");
    expect_refused(p, "No such file");
    expect_refused(tmpdir, "not a regular file");
    peft_st_file *f = (peft_st_file *)1;
    ck_assert_int_eq(peft_st_open(NULL, p, &f), PEFT_EIO); /* no context: the code alone */
    ck_assert_ptr_null(f);
    ck_assert_int_eq(peft_st_open(tu_ctx(), p, &f), PEFT_EIO);
    ck_assert_int_eq(peft_errcode(tu_ctx()), PEFT_EIO);
}
END_TEST

/* ---- fuzz-ish: truncations and header bit flips ---------------------------------------------- */

/* opens p; if it is accepted, reads every byte of every tensor (ASan/valgrind catch strays) */
static void open_and_touch(const char *p)
{
    peft_st_file *f = NULL;
    if (peft_st_open(tu_ctx(), p, &f) != 0) {
        ck_assert_ptr_null(f);
        ck_assert(peft_errmsg(tu_ctx())[0] != 0);
        return;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < f->n_entries; i++)
        for (size_t j = 0; j < f->entries[i].nbytes; j++) sum += ((const unsigned char *)f->entries[i].data)[j];
    if (f->metadata_json) sum += (unsigned)strlen(f->metadata_json);
    (void)sum;
    peft_st_close(f);
}

START_TEST(test_fuzz)
{
    float a[12];
    uint16_t b[3] = {1, 2, 3};
    int64_t sa[2] = {3, 4}, sb[1] = {3};
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    peft_st_out t[] = {{"alpha", PEFT_DTYPE_F32, 2, sa, a}, {"beta", PEFT_DTYPE_BF16, 1, sb, b}};
    const char *meta[] = {"format", "pt", NULL}, *src = tpath("valid.safetensors"), *p = tpath("fuzz");
    ck_assert_int_eq(peft_st_write(tu_ctx(), src, t, 2, meta), 0);
    size_t len = 0;
    unsigned char *orig = (unsigned char *)tu_read_file(src, &len);
    uint64_t hlen = 0;
    memcpy(&hlen, orig, 8);

    for (size_t cut = 0; cut < len; cut++) {
        ck_assert_int_eq(tu_write_file(p, orig, cut), 0);
        peft_st_file *f = NULL;
        ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == PEFT_EFORMAT, "accepted a file cut at %zu", cut);
    }
    unsigned char *buf = malloc(len);
    srand(12345);
    for (int it = 0; it < 600; it++) {
        memcpy(buf, orig, len);
        int flips = 1 + rand() % 3;
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)rand() % (size_t)(8 + hlen);
            buf[at] = it % 2 ? (unsigned char)(buf[at] ^ (1u << (rand() % 8))) : (unsigned char)rand();
        }
        ck_assert_int_eq(tu_write_file(p, buf, len), 0);
        open_and_touch(p);
    }
    free(buf);
    free(orig);
}
END_TEST

/* ---- writer: validation and atomicity -------------------------------------------------------- */

START_TEST(test_write_validation)
{
    float a[2] = {1, 2};
    int64_t s2[1] = {2}, sneg[1] = {-2};
    const char *p = tpath("v.safetensors");
    peft_st_out bad[][2] = {
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {"a", PEFT_DTYPE_F32, 1, s2, a}},
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {"", PEFT_DTYPE_F32, 1, s2, a}},
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {NULL, PEFT_DTYPE_F32, 1, s2, a}},
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {"b", 99, 1, s2, a}},
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {"b", PEFT_DTYPE_F32, 1, sneg, a}},
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {"b", PEFT_DTYPE_F32, 5, s2, a}},
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {"b", PEFT_DTYPE_F32, 1, s2, NULL}},
        {{"a", PEFT_DTYPE_F32, 1, s2, a}, {"__metadata__", PEFT_DTYPE_F32, 1, s2, a}},
    };
    const char *phrase[] = {"appears twice", "empty name", "empty name", "unknown dtype", "negative",
                            "ndim 5", "data is NULL", "reserved"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        peft_clear_error(tu_ctx());
        ck_assert_int_eq(peft_st_write(tu_ctx(), p, bad[i], 2, NULL), PEFT_EINVAL);
        ck_assert_int_eq(peft_errcode(tu_ctx()), PEFT_EINVAL);
        ck_assert_msg(strstr(peft_errmsg(tu_ctx()), phrase[i]) && strstr(peft_errmsg(tu_ctx()), p), "case %zu: %s", i, peft_errmsg(tu_ctx()));
        ck_assert_int_eq(access(p, F_OK), -1);
    }
    const char *m1[] = {"format", NULL, NULL}, *m2[] = {"k", "v", "k", "w", NULL};
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, bad[0], 1, m1), PEFT_EINVAL);
    ck_assert_ptr_nonnull(strstr(peft_errmsg(tu_ctx()), "no value"));
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, bad[0], 1, m2), PEFT_EINVAL);
    ck_assert_ptr_nonnull(strstr(peft_errmsg(tu_ctx()), "appears twice"));
    ck_assert_int_eq(count_tmp_files(tmpdir), 0);
    ck_assert_int_eq(access(p, F_OK), -1);
}
END_TEST

START_TEST(test_write_atomic)
{
    float a[2] = {1, 2}, b[3] = {3, 4, 5};
    int64_t s2[1] = {2}, s3[1] = {3};
    peft_st_out good = {"a", PEFT_DTYPE_F32, 1, s2, a};
    peft_st_out bad[2] = {{"b", PEFT_DTYPE_F32, 1, s3, b}, {"c", 17, 1, s2, a}};

    /* into a directory that does not exist: an error naming the path, nothing created */
    const char *nd = tpath("nodir/x.safetensors");
    ck_assert_int_eq(peft_st_write(tu_ctx(), nd, &good, 1, NULL), PEFT_EIO);
    ck_assert_msg(strstr(peft_errmsg(tu_ctx()), nd) && strstr(peft_errmsg(tu_ctx()), "No such file"), "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(access(tpath("nodir"), F_OK), -1);

    /* a failed overwrite leaves the old file byte-identical */
    const char *p = tpath("keep.safetensors");
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, &good, 1, NULL), 0);
    size_t l0 = 0, l1 = 0;
    char *before = tu_read_file(p, &l0);
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, bad, 2, NULL), PEFT_EINVAL);
    ck_assert_ptr_nonnull(strstr(peft_errmsg(tu_ctx()), "unknown dtype"));
    char *after = tu_read_file(p, &l1);
    ck_assert_uint_eq(l0, l1);
    ck_assert(memcmp(before, after, l0) == 0);
    free(after);

    /* a failure after the data is written (rename onto a directory) removes the temporary */
    const char *d = tpath("adir");
    ck_assert_int_eq(mkdir(d, 0755), 0);
    ck_assert_int_eq(peft_st_write(tu_ctx(), d, &good, 1, NULL), PEFT_EIO);
    ck_assert_msg(strstr(peft_errmsg(tu_ctx()), "rename") && strstr(peft_errmsg(tu_ctx()), d), "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(count_tmp_files(tmpdir), 0);

    /* a successful overwrite replaces the contents */
    ck_assert_int_eq(peft_st_write(tu_ctx(), p, bad, 1, NULL), 0);
    peft_st_file *f = NULL;
    ck_assert_int_eq(peft_st_open(tu_ctx(), p, &f), 0);
    ck_assert_ptr_null(peft_st_find(f, "a"));
    ck_assert_ptr_nonnull(peft_st_find(f, "b"));
    peft_st_close(f);
    ck_assert_int_eq(count_tmp_files(tmpdir), 0);
    free(before);
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_fixture_gpt2);
    tcase_add_test(tc, test_fixture_adapter);
    tcase_add_test(tc, test_hostile_length);
    tcase_add_test(tc, test_hostile_json);
    tcase_add_test(tc, test_hostile_entries);
    tcase_add_test(tc, test_hostile_accepted_edge_cases);
    tcase_add_test(tc, test_misaligned_tensor_copied);
    tcase_add_test(tc, test_missing_and_dir);
    tcase_add_test(tc, test_fuzz);
    tcase_add_test(tc, test_write_validation);
    tcase_add_test(tc, test_write_atomic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    int failed = tu_run_suite(safetensors_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

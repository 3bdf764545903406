/* quant.c — quantized frozen weights (peft/quant.h): bitsandbytes' int8 per-row absmax and
 * NF4 (blocks of 64) with or without double quantization of the block absmaxes (8-bit dynamic
 * map, blocks of 256, mean offset); quantizing f32/bf16/f16 tensors, and reading any storage
 * dtype back to f32 one element range at a time (the kernels' tiles). */
#include "peft/quant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "peft/graph.h"

/* bitsandbytes' NF4 code (functional.py get_4bit_type("nf4")) */
static const float NF4[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

static float DYN8[256];
static float DYN8_MID[255];
static float NF4_MID[15];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent i = 0..6,
 * the midpoints of linspace(0.1, 1, 2^i + 1) scaled by 10^(i-6), both signs; then 0 and 1 */
static void build_tables(void)
{
    int n = 0;
    for (int i = 0; i < 7; i++) {
        int items = (1 << i) + 1;
        float b[65];
        float step = (1.0f - 0.1f) / (float)(items - 1);
        for (int k = 0; k < items; k++) /* torch.linspace: from both ends */
            b[k] = k < items / 2 ? 0.1f + step * (float)k : 1.0f - step * (float)(items - 1 - k);
        double scale = pow(10.0, (double)(i - 6));
        for (int k = 0; k + 1 < items; k++) {
            float mean = (b[k] + b[k + 1]) / 2.0f;
            DYN8[n++] = (float)(scale * mean);
            DYN8[n++] = (float)(-scale * mean);
        }
    }
    DYN8[n++] = 0.0f;
    DYN8[n++] = 1.0f;
    qsort(DYN8, 256, sizeof *DYN8, cmp_float);
    for (int k = 0; k < 255; k++) DYN8_MID[k] = (DYN8[k] + DYN8[k + 1]) / 2.0f;
    for (int k = 0; k < 15; k++) NF4_MID[k] = (NF4[k] + NF4[k + 1]) / 2.0f;
}

static void tables(void) { pthread_once(&tables_once, build_tables); }

const float *peft_nf4_table(void) { return NF4; }
const float *peft_dyn8_table(void)
{
    tables();
    return DYN8;
}

/* index of the nearest value: the number of midpoints x exceeds (bitsandbytes' decision tree
 * compares x > midpoint the same way) */
static inline int nearest(const float *mid, int n_mid, float x)
{
    int lo = 0, hi = n_mid; /* answer in [0, n_mid] */
    while (lo < hi) {
        int m = (lo + hi) >> 1;
        if (x > mid[m]) lo = m + 1;
        else hi = m;
    }
    return lo;
}

int peft_dtype_is_quantized(int32_t dtype)
{
    return dtype == PEFT_DTYPE_INT8 || dtype == PEFT_DTYPE_NF4 || dtype == PEFT_DTYPE_NF4_F32;
}

static int64_t nf4_blocks(int64_t numel) { return (numel + PEFT_NF4_BLOCK - 1) / PEFT_NF4_BLOCK; }
static int64_t dq_blocks(int64_t nb) { return (nb + PEFT_NF4_ABSMAX_BLOCK - 1) / PEFT_NF4_ABSMAX_BLOCK; }

size_t peft_dtype_storage_bytes(int32_t dtype, int ndim, const int64_t *shape)
{
    int64_t n = peft_shape_numel(ndim, shape);
    if (n < 0) return 0;
    switch (dtype) {
    case PEFT_DTYPE_INT8:
        if (ndim != 2) return 0;
        return (size_t)shape[0] * sizeof(float) + (size_t)n;
    case PEFT_DTYPE_NF4: {
        int64_t nb = nf4_blocks(n);
        return sizeof(float) * (size_t)(1 + dq_blocks(nb)) + (size_t)nb + (size_t)((n + 1) / 2);
    }
    case PEFT_DTYPE_NF4_F32: {
        int64_t nb = nf4_blocks(n);
        return sizeof(float) * (size_t)nb + (size_t)((n + 1) / 2);
    }
    default: return (size_t)n * peft_dtype_size(dtype);
    }
}

const char *peft_dtype_label(int32_t dtype)
{
    switch (dtype) {
    case PEFT_DTYPE_F32: return "f32";
    case PEFT_DTYPE_F16: return "f16";
    case PEFT_DTYPE_BF16: return "bf16";
    case PEFT_DTYPE_I32: return "i32";
    case PEFT_DTYPE_INT8: return "int8";
    case PEFT_DTYPE_NF4: return "nf4";
    case PEFT_DTYPE_NF4_F32: return "nf4-nodq";
    default: return "unknown";
    }
}

/* ---- the packed views ----------------------------------------------------------------------- */

typedef struct nf4_view {
    float offset;           /* NF4 (double quant) */
    const float *absmax2;   /* NF4: (nb2) */
    const uint8_t *qabsmax; /* NF4: (nb) */
    const float *absmax;    /* NF4_F32: (nb) */
    const uint8_t *code;    /* ceil(n/2) */
} nf4_view;

static nf4_view nf4_of(const peft_tensor *t)
{
    nf4_view v = {0};
    const int64_t nb = nf4_blocks(t->numel);
    if (t->dtype == PEFT_DTYPE_NF4) {
        const float *f = t->data;
        v.offset = f[0];
        v.absmax2 = f + 1;
        v.qabsmax = (const uint8_t *)(f + 1 + dq_blocks(nb));
        v.code = v.qabsmax + nb;
    } else {
        v.absmax = t->data;
        v.code = (const uint8_t *)(v.absmax + nb);
    }
    return v;
}

static inline float nf4_absmax(const nf4_view *v, int64_t b)
{
    if (v->absmax) return v->absmax[b];
    return DYN8[v->qabsmax[b]] * v->absmax2[b / PEFT_NF4_ABSMAX_BLOCK] + v->offset;
}

/* ---- reading back ---------------------------------------------------------------------------- */

typedef uint32_t __attribute__((may_alias)) u32_alias;

/* bf16 -> f32 is a 16-bit shift; written so that the compiler vectorises it for each ISA */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void bf16_run(const uint16_t *s, float *dst, int64_t n)
{
    /* f32 storage written as its bit pattern (may_alias): exact on every IEEE-754 target */
    // cppcheck-suppress invalidPointerCast
    u32_alias *d = (u32_alias *)dst;
    for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)s[i] << 16;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
static void int8_run(const int8_t *c, float s, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = (float)c[i] * s;
}

/* f16 -> f32 without a branch per element (so that it vectorises): the 15 exponent + mantissa
 * bits shifted into an f32 and scaled by 2^112 rebias the exponent (subnormal f16 included);
 * infinities and NaNs keep an all-ones exponent. Exact, as the scalar conversion. */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void f16_run(const uint16_t *s, float *dst, int64_t n)
{
    // cppcheck-suppress invalidPointerCast
    u32_alias *d = (u32_alias *)dst;
    for (int64_t i = 0; i < n; i++) {
        const uint32_t h = s[i], em = h & 0x7fffu, m = em << 13;
        float f;
        memcpy(&f, &m, 4);
        f *= 0x1p112f;
        uint32_t u;
        memcpy(&u, &f, 4);
        u = em >= 0x7c00u ? (m | 0x7f800000u) : u;
        d[i] = u | ((h & 0x8000u) << 16);
    }
}

/* whole NF4 blocks: npairs code bytes (two elements each, high nibble first; a multiple of 32,
 * the bytes of a block), amb[k] the absmax of block k -> dst (2 npairs); vectorised (table
 * gathers on AVX2 / AVX-512) */
__attribute__((target_clones("avx512f", "avx2", "default")))
static void nf4_blocks_run(const uint8_t *code, const float *amb, float *dst, int64_t npairs)
{
    for (int64_t k = 0; k < npairs / (PEFT_NF4_BLOCK / 2); k++) {
        const uint8_t *c = code + k * (PEFT_NF4_BLOCK / 2);
        float *d = dst + k * PEFT_NF4_BLOCK;
        const float a = amb[k];
        for (int i = 0; i < PEFT_NF4_BLOCK / 2; i++) {
            d[2 * i] = NF4[c[i] >> 4] * a;
            d[2 * i + 1] = NF4[c[i] & 15] * a;
        }
    }
}

/* elements [e, end) inside one block b, any parity (the edges of a range) */
static void nf4_part(const nf4_view *v, int64_t e, int64_t end, float *dst)
{
    const float am = nf4_absmax(v, e / PEFT_NF4_BLOCK);
    for (; e < end; e++, dst++) {
        const uint8_t byte = v->code[e >> 1];
        *dst = NF4[e & 1 ? byte & 15 : byte >> 4] * am;
    }
}

static void nf4_range(const peft_tensor *t, int64_t start, int64_t n, float *dst)
{
    enum { NB = 256 }; /* blocks per vectorised run */
    tables();
    nf4_view v = nf4_of(t);
    int64_t e = start;
    const int64_t end = start + n;
    if (e % PEFT_NF4_BLOCK) { /* up to the first block boundary */
        int64_t bend = (e / PEFT_NF4_BLOCK + 1) * PEFT_NF4_BLOCK;
        if (bend > end) bend = end;
        nf4_part(&v, e, bend, dst);
        e = bend;
    }
    while (end - e >= PEFT_NF4_BLOCK) {
        int64_t nb = (end - e) / PEFT_NF4_BLOCK;
        if (nb > NB) nb = NB;
        float amb[NB] = {0}; /* (zeroed: 1 KB per 16k elements, and cppcheck cannot see nb >= 1) */
        const int64_t b0 = e / PEFT_NF4_BLOCK;
        for (int64_t k = 0; k < nb; k++) amb[k] = nf4_absmax(&v, b0 + k);
        nf4_blocks_run(v.code + (e >> 1), amb, dst + (e - start), nb * PEFT_NF4_BLOCK / 2);
        e += nb * PEFT_NF4_BLOCK;
    }
    if (e < end) nf4_part(&v, e, end, dst + (e - start));
}

void peft_tensor_range_to_f32(const peft_tensor *t, int64_t start, int64_t n, float *dst)
{
    if (n <= 0) return;
    switch (t->dtype) {
    case PEFT_DTYPE_BF16:
        bf16_run((const uint16_t *)t->data + start, dst, n);
        return;
    case PEFT_DTYPE_F16:
        f16_run((const uint16_t *)t->data + start, dst, n);
        return;
    case PEFT_DTYPE_INT8: {
        const int64_t C = t->shape[1], R = t->shape[0];
        const float *absmax = t->data;
        const int8_t *code = (const int8_t *)(absmax + R);
        int64_t e = start, end = start + n;
        while (e < end) {
            const int64_t r = e / C, rend = (r + 1) * C < end ? (r + 1) * C : end;
            int8_run(code + e, absmax[r] / 127.0f, dst + (e - start), rend - e);
            e = rend;
        }
        return;
    }
    case PEFT_DTYPE_NF4:
    case PEFT_DTYPE_NF4_F32:
        nf4_range(t, start, n, dst);
        return;
    default: {
        const size_t es = peft_dtype_size(t->dtype);
        peft_convert_to_f32(t->dtype, (const unsigned char *)t->data + (size_t)start * es, dst, n);
    }
    }
}

/* ---- quantizing ------------------------------------------------------------------------------ */

#define CHUNK 65536 /* elements converted to f32 at a time while quantizing */

/* code and absmax of one row / block, written into the packed buffer */
static void q8_row(const float *w, int64_t C, float *absmax, int8_t *code)
{
    float am = 0.0f;
    for (int64_t j = 0; j < C; j++) am = fmaxf(am, fabsf(w[j]));
    *absmax = am;
    const float k = am > 0.0f ? 127.0f / am : 0.0f;
    for (int64_t j = 0; j < C; j++) code[j] = (int8_t)nearbyintf(w[j] * k);
}

/* NF4 codes of one block of n <= 64 values starting at element e (even), absmax returned */
static float nf4_block(const float *w, int64_t n, int64_t e, uint8_t *code)
{
    float am = 0.0f;
    for (int64_t j = 0; j < n; j++) am = fmaxf(am, fabsf(w[j]));
    const float k = am > 0.0f ? 1.0f / am : 0.0f;
    for (int64_t j = 0; j < n; j++) {
        uint8_t q = (uint8_t)nearest(NF4_MID, 15, w[j] * k);
        int64_t i = e + j;
        if (i & 1) code[i >> 1] = (uint8_t)((code[i >> 1] & 0xf0) | q);
        else code[i >> 1] = (uint8_t)(q << 4);
    }
    return am;
}

/* the packed form of src values (f32 getter per range) into t's buffer */
static int quantize_into(peft_tensor *t, const peft_tensor *src, const float *srcf)
{
    tables();
    const int64_t n = t->numel;
    float *buf = srcf ? NULL : malloc(CHUNK * sizeof *buf);
    if (!srcf && !buf) return -1;
#define GET(start, len) (srcf ? srcf + (start) : (peft_tensor_range_to_f32(src, start, len, buf), buf))
    if (t->dtype == PEFT_DTYPE_INT8) {
        const int64_t R = t->shape[0], C = t->shape[1];
        float *absmax = t->data;
        int8_t *code = (int8_t *)(absmax + R);
        float *row = srcf ? NULL : (C <= CHUNK ? buf : malloc((size_t)C * sizeof *row));
        if (!srcf && !row) return -1;
        for (int64_t r = 0; r < R; r++) {
            const float *w;
            if (srcf) w = srcf + r * C;
            else { peft_tensor_range_to_f32(src, r * C, C, row); w = row; }
            q8_row(w, C, &absmax[r], code + r * C);
        }
        if (row && row != buf) free(row);
        free(buf);
        return 0;
    }
    const int64_t nb = nf4_blocks(n);
    float *am = t->dtype == PEFT_DTYPE_NF4 ? malloc((size_t)(nb ? nb : 1) * sizeof *am) : t->data;
    if (!am) { free(buf); return -1; }
    uint8_t *code;
    float *f = t->data;
    uint8_t *qabs = NULL;
    if (t->dtype == PEFT_DTYPE_NF4) {
        qabs = (uint8_t *)(f + 1 + dq_blocks(nb));
        code = qabs + nb;
    } else {
        code = (uint8_t *)(f + nb);
    }
    for (int64_t s = 0; s < n; s += CHUNK) { /* CHUNK is a multiple of the block size */
        const int64_t len = n - s < CHUNK ? n - s : CHUNK;
        const float *w = GET(s, len);
        for (int64_t o = 0; o < len; o += PEFT_NF4_BLOCK) {
            int64_t bl = len - o < PEFT_NF4_BLOCK ? len - o : PEFT_NF4_BLOCK;
            am[(s + o) / PEFT_NF4_BLOCK] = nf4_block(w + o, bl, s + o, code);
        }
    }
#undef GET
    free(buf);
    if (t->dtype == PEFT_DTYPE_NF4) { /* double quantization of the absmaxes */
        double mean = 0.0;
        for (int64_t b = 0; b < nb; b++) mean += am[b];
        const float offset = nb ? (float)(mean / (double)nb) : 0.0f;
        f[0] = offset;
        float *absmax2 = f + 1;
        for (int64_t b0 = 0, k = 0; b0 < nb; b0 += PEFT_NF4_ABSMAX_BLOCK, k++) {
            const int64_t be = b0 + PEFT_NF4_ABSMAX_BLOCK < nb ? b0 + PEFT_NF4_ABSMAX_BLOCK : nb;
            float m2 = 0.0f;
            for (int64_t b = b0; b < be; b++) m2 = fmaxf(m2, fabsf(am[b] - offset));
            absmax2[k] = m2;
            const float inv = m2 > 0.0f ? 1.0f / m2 : 0.0f;
            for (int64_t b = b0; b < be; b++)
                qabs[b] = (uint8_t)nearest(DYN8_MID, 255, (am[b] - offset) * inv);
        }
        free(am);
    }
    return 0;
}

peft_tensor *peft_tensor_quantize(const peft_tensor *src, int32_t qdtype, double *rel_err)
{
    peft_quant_stats st;
    peft_tensor *t = peft_tensor_quantize_stats(src, qdtype, rel_err ? &st : NULL);
    if (t && rel_err) *rel_err = st.rel_err;
    return t;
}

peft_tensor *peft_tensor_quantize_stats(const peft_tensor *src, int32_t qdtype,
                                        peft_quant_stats *st)
{
    if (!src || !peft_dtype_is_quantized(qdtype)) return NULL;
    if (src->dtype != PEFT_DTYPE_F32 && src->dtype != PEFT_DTYPE_BF16 && src->dtype != PEFT_DTYPE_F16)
        return NULL;
    if (qdtype == PEFT_DTYPE_INT8 && src->ndim != 2) return NULL;
    size_t bytes = peft_dtype_storage_bytes(qdtype, src->ndim, src->shape);
    if (!bytes) return NULL;
    peft_tensor *t = calloc(1, sizeof *t);
    void *data = calloc(1, bytes);
    if (!t || !data) { free(t); free(data); return NULL; }
    t->dtype = qdtype;
    t->ndim = src->ndim;
    for (int i = 0; i < PEFT_MAX_DIMS; i++) t->shape[i] = src->shape[i];
    t->numel = src->numel;
    t->data = data;
    t->flags = PEFT_T_OWNS_DATA;
    if (quantize_into(t, src, src->dtype == PEFT_DTYPE_F32 ? src->data : NULL)) {
        peft_tensor_free(t);
        return NULL;
    }
    if (st) { /* the error, read back a chunk at a time */
        float *a = malloc(CHUNK * sizeof *a), *b = malloc(CHUNK * sizeof *b);
        double num = 0.0, den = 0.0, mx = 0.0;
        for (int64_t s = 0; a && b && s < t->numel; s += CHUNK) {
            int64_t len = t->numel - s < CHUNK ? t->numel - s : CHUNK;
            peft_tensor_range_to_f32(src, s, len, a);
            peft_tensor_range_to_f32(t, s, len, b);
            for (int64_t i = 0; i < len; i++) {
                double d = (double)b[i] - a[i];
                num += d * d;
                den += (double)a[i] * a[i];
                if (fabs(d) > mx) mx = fabs(d);
            }
        }
        st->rel_err = den > 0.0 ? sqrt(num / den) : 0.0;
        st->max_abs_err = mx;
        st->sq_norm = den;
        free(a);
        free(b);
    }
    return t;
}

int peft_requantize_from_f32(peft_tensor *t, const float *src)
{
    if (!t || !src || !peft_dtype_is_quantized(t->dtype)) return -1;
    return quantize_into(t, NULL, src);
}

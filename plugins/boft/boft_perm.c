/* boft_perm.c — BOFT's block shapes and butterfly permutations, as PEFT 0.13.2's update_layer
 * and block_butterfly_perm compute them (the boft_P buffer, never saved: rebuilt here). */
#include <math.h>

#include "boft.h"

int boft_shapes(const boft_config *c, int64_t in, const char *module, int64_t *D, int64_t *H,
                char *err, size_t errlen)
{
    const int64_t f = c->n_factors - 1; /* PEFT's boft_n_butterfly_factor after "- 1" */
    if (c->block_size == 0) {
        if (in % c->block_num != 0) {
            peft_pu_errf(err, errlen, "boft: in_features (%lld) of '%s' must be divisible by "
                         "boft_block_num (%lld)!", (long long)in, module, (long long)c->block_num);
            return -1;
        }
        if (f != 0 && (f > (int64_t)floor(log2((double)c->block_num)) ||
                       c->block_num % ((int64_t)1 << f) != 0)) {
            peft_pu_errf(err, errlen, "boft: invalid combination of boft_n_butterfly_factor "
                         "(%lld) and boft_block_num (%lld) for '%s': the factor minus one must be "
                         "at most log2(block_num) and block_num divisible by 2^(factor - 1)",
                         (long long)c->n_factors, (long long)c->block_num, module);
            return -1;
        }
        *D = c->block_num;
        *H = in / c->block_num;
    } else {
        if (in % c->block_size != 0) {
            peft_pu_errf(err, errlen, "boft: in_features (%lld) of '%s' must be divisible by "
                         "boft_block_size (%lld)!", (long long)in, module, (long long)c->block_size);
            return -1;
        }
        if (f != 0 && (f > 30 || in < c->block_size * ((int64_t)1 << f) ||
                       in % (c->block_size * ((int64_t)1 << f)) != 0)) {
            peft_pu_errf(err, errlen, "boft: invalid combination of in_features (%lld) of '%s', "
                         "boft_n_butterfly_factor (%lld) and boft_block_size (%lld): in_features "
                         "must be a multiple of block_size * 2^(factor - 1)", (long long)in, module,
                         (long long)c->n_factors, (long long)c->block_size);
            return -1;
        }
        *D = in / c->block_size;
        *H = c->block_size;
    }
    if (f != 0 && (*D % 2 != 0 || *H % 2 != 0)) {
        peft_pu_errf(err, errlen, "boft: with boft_n_butterfly_factor > 1 the number of blocks "
                     "(%lld) and the block size (%lld) of '%s' must be even", (long long)*D,
                     (long long)*H, module);
        return -1;
    }
    return 0;
}

/* block_butterfly_perm(n, b, r, nbf): identity when nbf == 0; else within each block of n / b
 * indices, the chunks of r taken in the order 0, 2, 4, ..., 1, 3, 5, ... */
static int butterfly(int64_t n, int64_t b, int64_t r, int64_t nbf, int64_t *perm, char *err,
                     size_t errlen)
{
    for (int64_t k = 0; k < n; k++) perm[k] = k;
    if (nbf == 0) return 0;
    if (b * r * 2 > n || b <= 0 || r <= 0) {
        peft_pu_errf(err, errlen, "boft: Invalid number of blocks!");
        return -1;
    }
    const int64_t bs = n / b, chunks = bs / r;
    for (int64_t start = 0; start < n; start += bs) {
        int64_t t = 0;
        for (int pass = 0; pass < 2; pass++) /* evens, then odds */
            for (int64_t pos = pass; pos < chunks; pos += 2)
                for (int64_t j = 0; j < r; j++) perm[start + t++] = start + pos * r + j;
    }
    return 0;
}

int boft_perms(int64_t in, int64_t nf, int64_t D, int64_t H, int64_t *perm, char *err,
               size_t errlen)
{
    for (int64_t i = 0; i < nf; i++)
        if (butterfly(in, D >> i, H / 2, nf - 1, perm + i * in, err, errlen)) return -1;
    return 0;
}

/* fourierft_randperm.c — torch's CPU generator and randperm, bit for bit: a Mersenne Twister
 * (mt19937, 32-bit outputs) seeded as at::mt19937(seed) seeds it (init_genrand with the low 32
 * bits), and randperm_cpu's shuffle for n < 2^32 / 20: r = 0..n-1, then for i = 0..n-2 swap
 * r[i] with r[i + random() % (n - i)]. FourierFT takes its spectrum positions from it. */
#include "fourierft.h"

typedef struct mt19937 {
    uint32_t mt[624];
    int i;
} mt19937;

static void mt_seed(mt19937 *m, uint64_t seed)
{
    m->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < 624; i++)
        m->mt[i] = 1812433253u * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->i = 624;
}

static uint32_t mt_next(mt19937 *m)
{
    if (m->i >= 624) {
        for (int k = 0; k < 624; k++) {
            const uint32_t y = (m->mt[k] & 0x80000000u) | (m->mt[(k + 1) % 624] & 0x7fffffffu);
            m->mt[k] = m->mt[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->i = 0;
    }
    uint32_t y = m->mt[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

int fourierft_randperm(int64_t n, uint64_t seed, int64_t k, int64_t *perm)
{
    /* larger n takes torch's random64() inside-out branch, not reproduced here */
    if (n <= 0 || k > n || n >= (int64_t)(UINT32_MAX / 20)) return -1;
    int64_t *r = fourierft_host->alloc((size_t)n * sizeof *r);
    if (!r) return -1;
    for (int64_t i = 0; i < n; i++) r[i] = i;
    mt19937 m;
    mt_seed(&m, seed);
    for (int64_t i = 0; i < n - 1; i++) {
        const int64_t z = (int64_t)(mt_next(&m) % (uint64_t)(n - i));
        const int64_t t = r[i];
        r[i] = r[z + i];
        r[z + i] = t;
    }
    for (int64_t i = 0; i < k; i++) perm[i] = r[i];
    fourierft_host->free(r);
    return 0;
}

/* fourierft.h — declarations shared by the FourierFT plugin's files (never installed, never
 * seen by the host). Built with -fvisibility=hidden: only peft_plugin_init is exported.
 *
 * FourierFT (PEFT 0.13.2 peft/tuners/fourierft): the weight update is the real part of the
 * inverse 2-D DFT of a sparse spectrum, n_frequency trainable entries at fixed positions:
 *
 *     dense (out, in) = 0 but dense[row_k, col_k] = spectrum_k
 *     delta W = real(ifft2(dense)) * scaling
 *             = c * sum_k s_k cos(2 pi (row_k a / out + col_k b / in)),   c = scaling / (out in)
 *     y' = y + x @ delta W^T
 *
 * The positions are PEFT's: torch.randperm(out * in, generator=torch.Generator().manual_seed(
 * random_loc_seed))[:n_frequency] -> (idx // in, idx % in), reproduced exactly
 * (fourierft_randperm.c). The forward never forms delta W: with the cos / sin bases
 * Ca, Sa (out, n) and Cb, Sb (in, n),
 *     x @ delta W^T = c ((x Cb) * s) Ca^T - c ((x Sb) * s) Sa^T
 * (cos(a + b) = cos a cos b - sin a sin b): O(N (in + out) n) instead of an (out, in) FFT.
 *
 * GPT-2's Conv1D: the forward is PEFT's (delta W (out, in) applied as a linear map); merge adds
 * delta W transposed into the (in, out) weight — PEFT 0.13.2 adds it untransposed (a bug: an
 * error for non-square modules, a wrong merged model for square ones). libpeft merges
 * correctly; README lists the departure and tests/test_fourierft.c shows it.
 *
 *   fourierft_config.c   config keys, config_parse/free (FourierFTConfig 0.13.2), defaults
 *   fourierft_randperm.c torch's CPU generator (mt19937) and randperm
 *   fourierft_layer.c    inject (positions, bases, init), forward and backward, merge, state
 *   fourierft_plugin.c   the vtable and the exported entry point
 */
#ifndef PEFT_FOURIERFT_H
#define PEFT_FOURIERFT_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

extern const peft_host_api *fourierft_host;

typedef struct fourierft_config {
    int64_t n_frequency;
    double scaling;
    int64_t random_loc_seed;
    int init_weights; /* 1: spectrum zeros; 0 (PEFT's default): N(0, 1) */
} fourierft_config;

/* One FourierFT adapter on one linear site. Owns everything (fourierft_destroy). */
typedef struct fourierft_state {
    int64_t in, out, n;
    double scaling;
    peft_tensor *spectrum;  /* fourierft_spectrum (n) */
    int64_t *rows, *cols;   /* positions (n) */
    float *ca, *sa;         /* (out, n): cos / sin(2 pi row_k a / out) */
    float *cb, *sb;         /* (in, n):  cos / sin(2 pi col_k b / in) */
    char *saved, *memory;
} fourierft_state;

/* fourierft_config.c */
extern const char *const fourierft_config_keys[];
int fourierft_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void fourierft_config_free(void *parsed);
const char *const *fourierft_default_targets(const char *model_type);

/* fourierft_randperm.c */
/* perm (k values) = the first k of torch.randperm(n, generator=torch.Generator().manual_seed(
 * seed)) on the CPU (torch 1.13 .. 2.x for n < 2^32 / 20). 0, or -1 on OOM / n too large. */
int fourierft_randperm(int64_t n, uint64_t seed, int64_t k, int64_t *perm);

/* fourierft_layer.c */
void *fourierft_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                       const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *fourierft_forward(void *state, peft_graph *g, const peft_site_info *site,
                               peft_tensor *x, peft_tensor *y);
int fourierft_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
                    char *err, size_t errlen);
void fourierft_destroy(void *state);
int fourierft_state_dict(void *state, peft_param_ref *out, int max);
const char *fourierft_module_type(void *state);

#endif

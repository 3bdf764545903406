/* hra.h — declarations shared by the HRA plugin's files (never installed, never seen by the
 * host). Built with -fvisibility=hidden: only peft_plugin_init (hra_plugin.c) is exported.
 *
 * HRA (PEFT 0.13.2 peft/tuners/hra, nn.Linear): the base weight is multiplied on the right by
 * an orthogonal H built from the trainable hra_u (in, r):
 *
 *     apply_GS false: H = H_0 H_1 ... H_{r-1},  H_i = I - 2 w_i w_i^T,  w_i = u_i / ||u_i||
 *     apply_GS true:  w = Gram-Schmidt(u_0, ..., u_{r-1}) (modified, in order),  H = I - 2 w w^T
 *     y' = x (W H)^T + b = y + (x H^T - x) W^T          (y = x W^T + b, what came before)
 *     merge: W' = W H;  unmerge: W = W' H^T
 *
 * The forward never forms H (in, in): x H^T is r reflections of x's rows (or one rank-r update
 * with apply_GS), then the host's op_linear with the site's weight. PEFT forms W H and runs
 * F.linear; both agree to f32 rounding.
 *
 *   hra_config.c     config keys, config_parse/free (HRAConfig 0.13.2), default targets
 *   hra_householder.c the unit vectors w (normalised or Gram-Schmidt) and their backward, the
 *                    reflections of rows and their backward
 *   hra_layer.c      inject (PEFT's symmetric init), forward op and backward, merge, state dict
 *   hra_plugin.c     the vtable and the exported entry point
 */
#ifndef PEFT_HRA_H
#define PEFT_HRA_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

extern const peft_host_api *hra_host;

typedef struct hra_config {
    int64_t r;
    int apply_gs;
    int init_weights;
} hra_config;

/* One HRA adapter on one nn.Linear site. Owns its tensor and strings (hra_destroy). */
typedef struct hra_state {
    int64_t in, out, r;
    int apply_gs;
    peft_tensor *u; /* hra_u (in, r) */
    char *saved, *memory;
} hra_state;

/* hra_config.c */
extern const char *const hra_config_keys[];
int hra_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void hra_config_free(void *parsed);
const char *const *hra_default_targets(const char *model_type);

/* hra_householder.c */
/* w (r, in), row i the unit vector of reflection i, from u (in, r): column i normalised, or
 * (apply_gs) modified Gram-Schmidt over the columns in order. 0, or -1 for a zero column. */
int hra_unit_vectors(int64_t in, int64_t r, int apply_gs, const float *u, float *w);
/* gu (in, r) += d/du given gw (r, in) = dL/dw (w from hra_unit_vectors on the same u) */
void hra_unit_vectors_backward(int64_t in, int64_t r, int apply_gs, const float *u,
                               const float *w, const float *gw, float *gu);
/* t (n, in) <- t H^T (reverse = 0) or t H (reverse = 1), rows in place:
 * apply_gs false: t H^T applies reflections r-1 .. 0, t H applies 0 .. r-1;
 * apply_gs true:  t - 2 (t w^T) w (H symmetric) */
void hra_reflect_rows(int64_t n, int64_t in, int64_t r, int apply_gs, const float *w, float *t,
                      int reverse);
/* the backward of hra_reflect_rows(reverse = 0): t_out (n, in) is its output (overwritten
 * with the input it came from), g (n, in) the gradient of t_out, replaced by the gradient of
 * the input; gw (r, in) += dL/dw */
void hra_reflect_rows_backward(int64_t n, int64_t in, int64_t r, int apply_gs, const float *w,
                               float *t_out, float *g, float *gw);

/* hra_layer.c */
void *hra_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                 const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *hra_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y);
int hra_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen);
void hra_destroy(void *state);
int hra_state_dict(void *state, peft_param_ref *out, int max);
const char *hra_module_type(void *state);

#endif

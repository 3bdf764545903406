/* plugin_site.h — a tuner plugin on one synthetic linear site, driven through its vtable the
 * way the host drives it: config_parse, inject, forward over op_linear's output, merge,
 * state_dict, destroy. Shared by the method suites (test_lokr.c, test_oft.c, ...): the
 * finite-difference gradients of the site input and of every trainable tensor, and
 * merge == forward with unmerge restoring the weight. */
#ifndef PEFT_TEST_PLUGIN_SITE_H
#define PEFT_TEST_PLUGIN_SITE_H

#include <jansson.h>
#include <stdint.h>

#include "core/io/cfg.h"
#include "peft/plugin.h"

#define PS_MAX_REFS 16

/* One adapter on one site. Everything is owned by the harness (ps_close frees it); refs are
 * the plugin's state-dict entries (borrowed from the state). */
typedef struct ps_site {
    const peft_tuner_vtable *vt;
    peft_site_info site;
    json_t *cfg_json;
    peft_cfg cfg;
    void *parsed, *state;
    peft_tensor *w, *b, *x; /* base weight (out, in) or (in, out) for Conv1D and embeddings, (C)
                               for norms; bias (out) or NULL; x (N, in), or ids (1, N) I32 */
    peft_param_ref refs[PS_MAX_REFS];
    int n_refs;
} ps_site;

/* Loads plugin `plugin`, parses config (JSON text), makes a random site of `kind`
 * (PEFT_SITE_LINEAR / PEFT_SITE_CONV1D, named "model.layers.0.self_attn.q_proj";
 * PEFT_SITE_EMBEDDING "model.embed_tokens", weight (in, out), x N token ids (1, N)) with in/out
 * features and N input rows, injects the adapter, and sets every trainable tensor to
 * param_scale * N(0, 1) (0: keeps the plugin's init). Fails the test on any error. */
void ps_open(ps_site *h, const char *plugin, const char *config, int kind, int64_t n, int64_t in,
             int64_t out, float param_scale);
/* ps_open on a norm site (PEFT_SITE_NORM, named "model.layers.0.input_layernorm") of width c:
 * norm_type PEFT_NORM_* (LayerNorm with a bias), eps 1e-5 */
void ps_open_norm(ps_site *h, const char *plugin, const char *config, int norm_type, int64_t n,
                  int64_t c, float param_scale);
void ps_close(ps_site *h);

/* the state-dict entry whose saved name is `saved`; fails the test if there is none */
peft_tensor *ps_param(ps_site *h, const char *saved);

/* y = the site's output with the adapter (base linear, then the plugin's forward), recorded
 * on g */
peft_tensor *ps_forward(ps_site *h, peft_graph *g);

/* The tape's gradients of x and of every trainable tensor against central differences
 * (fd_check_grads) in eval (training 0) or training mode with the graph RNG seeded by seed. */
void ps_check_grads(ps_site *h, const char *what, int training, uint64_t seed, double rtol,
                    double atol);

/* merge (+1) into a copy of the weight: the merged linear equals the adapter's forward (to
 * tol); unmerge (-1) gives the weight back (to tol) */
void ps_check_merge(ps_site *h, double tol);

/* config_parse + inject of `config` on a site of kind / in / out that must FAIL; the message
 * (static) */
const char *ps_inject_error(const char *plugin, const char *config, int kind, int64_t in,
                            int64_t out);

#endif

/* prompt_harness.h — a prompt-learning plugin's adapter on a synthetic model, called through
 * its vtable (no PeftModel): finite-difference checks of its kernels' gradients. Used by the
 * prompt-learning suites (test_prompt_learning.c, test_p_tuning.c, test_mpt.c); and their
 * config errors through peft_get_peft_model. */
#ifndef PEFT_PROMPT_HARNESS_H
#define PEFT_PROMPT_HARNESS_H

#include <jansson.h>
#include "core/io/cfg.h"
#include "peft/graph.h"
#include "peft/plugin.h"

/* the generator the harness draws from (tests seed it) */
extern peft_rng trng;

#define HARNESS_MAX_REFS 64

typedef struct harness {
    const peft_tuner_vtable *vt;
    json_t *cfg_json;
    peft_cfg cfg;
    void *parsed;
    void *state;
    peft_tensor *we; /* word embeddings (V, C) */
    peft_prompt_info info;
    const int32_t *task_ids; /* HB task ids for a per-task method (multitask prompt tuning) */
    double eps; /* check_grads' step, 0: 1e-2 (deep encoders need smaller: truncation) */
} harness;

enum { HV = 11, HC = 8, HL = 2, HKV = 2, HD = 4, HP = 3, HB = 2 };

/* the adapter of `plugin` with the JSON config on the synthetic model (enc_dec: an
 * encoder-decoder), its tensors perturbed N(0, 0.7^2); ck_asserts on failure */
void harness_open(harness *h, const char *plugin, const char *config, int enc_dec);
void harness_close(harness *h);
/* every output the method gives for a batch of HB on g (prompt tuning's (B, P, C); prefix
 * tuning's keys and values of each (stack, layer) with a prefix, in order); the count */
int harness_outputs(harness *h, peft_graph *g, peft_tensor **outs, int max);
/* the tape's gradients of every adapter tensor against central differences of
 * L = sum(out * R) over the adapter's outputs for a batch of HB; `what` names the check */
void check_grads(harness *h, const char *what);
/* peft_get_peft_model of config on the hf-peft-v2 GPT-2 fixture must fail with a message
 * containing want */
void harness_refused(const char *config, const char *want);

#endif

/* gen_harness.h — what the generation suites (test_generate.c, test_archs_gen.c) share: a
 * fixture model, bare or with a fixture case's adapter; the left-padded two-row decoder batch
 * (a prompt of 6, then up to 14 continuation tokens) with HF's generation positions; the
 * KV-cache-versus-full-forward walk; and the reference greedy loop over full forwards. */
#ifndef PEFT_TEST_GEN_HARNESS_H
#define PEFT_TEST_GEN_HARNESS_H

#include <stdint.h>

#include "peft/generate.h"
#include "peft/peft.h"

typedef struct tu_mdl {
    peft_ctx *ctx;
    peft_base_model *base; /* borrowed from m when m is set */
    peft_model *m;         /* NULL: bare base model */
    const int32_t *task_ids; /* (TU_BR) or NULL: each row's task for the reference's forwards
                                (multitask prompt tuning); NULL after tu_mdl_open */
} tu_mdl;

/* <root>/_models/<arch> (root "hf-peft" or "hf-peft-v2", under the fixtures), with
 * <root>/<adapter_case>/adapter loaded as "default" unless adapter_case is NULL */
tu_mdl tu_mdl_open(const char *root, const char *arch, const char *adapter_case);
void tu_mdl_close(tu_mdl *x);
/* the model's forward (the PeftModel's when there is one); must succeed with 3-D logits */
void tu_mdl_forward(tu_mdl *x, peft_graph *g, const peft_model_inputs *in, peft_model_outputs *o);
/* peft_generate, or peft_generate_base for a bare model */
int tu_mdl_generate(tu_mdl *x, const peft_model_inputs *in, const peft_gen_config *c, peft_gen_output *o);
/* is a prompt-learning adapter active (PEFT ignores position ids then) */
int tu_mdl_prompt_learning(const tu_mdl *x);

/* the left-padded decoder batch: TU_BR rows, a TU_TP-token prompt (row 1 padded by 2), then
 * TU_NC continuation tokens */
#define TU_BR 2
#define TU_TP 6
#define TU_NC 14
extern const int32_t TU_PROMPT[TU_BR][TU_TP], TU_PMASK[TU_BR][TU_TP], TU_CONT[TU_BR][TU_NC];
/* the first n tokens of prompt + continuation per row (ids, mask, pos each (TU_BR, n)) and HF's
 * generation positions (cumsum(mask) - 1, masked 1) */
void tu_full_seq(int64_t n, int32_t *ids, int32_t *mask, int32_t *pos);
/* max |a - b| over the last `last` positions of a (TU_BR, Ta, V) and b (TU_BR, Tb, V) */
double tu_tail_diff(const peft_tensor *a, const peft_tensor *b, int64_t last);

#define TU_CACHE_TOL 1e-5
/* feeds the prompt, then 1, 2 (two tokens in one call), 1, 1, ... of the first nc continuation
 * tokens through a KV cache, each step's logits against a full forward over everything so far
 * (within TU_CACHE_TOL; name in messages); the worst difference */
double tu_cache_vs_full(tu_mdl *x, int64_t nc, const char *name);

/* argmax over full forwards (no cache), HF's generation positions: the reference greedy loop,
 * ng tokens per row into outk (TU_BR, ng). A decoder-only model continues the prompt; an
 * encoder-decoder (enc: its encoder inputs, B = TU_BR) grows the decoder from token 0. */
void tu_greedy_reference(tu_mdl *x, int ng, const peft_model_inputs *enc, int32_t *outk);

#endif

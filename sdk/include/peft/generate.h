/* generate.h — text generation for CAUSAL_LM (GPT-2, LLaMA) and SEQ_2_SEQ_LM (T5) models, as
 * transformers 4.44's GenerationMixin.generate under PEFT 0.13.2: greedy search, or sampling
 * with temperature, top-k and top-p (HF's warpers, in that order); max_new_tokens; EOS stop.
 *
 * Decoding runs with a KV cache (core/kv_cache.h): the prompt once, then one token per step,
 * one graph reset per step, no tape. Decoder-only batches may be left-padded: each token's
 * position is cumsum(attention_mask) - 1 (masked positions 1), as HF's
 * prepare_inputs_for_generation, and the mask grows by one 1 per step. While a prompt-learning
 * adapter is active positions are past + t instead (PEFT ignores position ids then); prompt
 * tuning's virtual tokens and prefix tuning's keys/values are the start of the cache.
 * Without an attention mask, input_ids != pad_token_id is the mask when the pad token occurs
 * in input_ids and is not an EOS token (HF's _prepare_attention_mask_for_generation).
 * Finished rows (an EOS token produced) receive pad_token_id, or the first EOS id when the model
 * has no pad token (HF's "Setting pad_token_id to eos_token_id"), until every row is finished or
 * max_new_tokens are produced. EOS and pad ids come from the model directory's
 * generation_config.json, else its config.json, unless the config overrides them. Generation
 * runs in eval mode (no dropout) and restores the model's mode afterwards.
 *
 * Sampling draws from libpeft's seeded peft_rng (cfg->seed): reproducible here, not the same
 * stream as torch.multinomial.
 */
#ifndef PEFT_GENERATE_H
#define PEFT_GENERATE_H

#include "peft/export.h"

#include <stdint.h>
#include "peft/peft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PEFT_GEN_MAX_EOS 8
#define PEFT_GEN_FROM_MODEL (-2) /* pad_token_id / n_eos: read them from the model directory */

typedef struct peft_gen_config {
    int64_t max_new_tokens; /* >= 1 (default 20) */
    int do_sample;          /* 0: greedy (argmax, first index on ties) */
    double temperature;     /* > 0; logits / temperature (sampling only; default 1) */
    int64_t top_k;          /* >= 0, 0 = off; keeps scores >= the k-th largest (default 50) */
    double top_p;           /* [0, 1], 1 = off; keeps the smallest top set of mass >= top_p */
    uint64_t seed;          /* sampling RNG seed */
    int n_eos;              /* PEFT_GEN_FROM_MODEL, 0 = never stop on a token, or 1..MAX */
    int32_t eos_token_id[PEFT_GEN_MAX_EOS];
    int32_t pad_token_id;   /* PEFT_GEN_FROM_MODEL, -1 = none (then eos_token_id[0]), or an id */
    int use_cache;          /* 1 (default): KV cache; 0: a full forward over everything per step */
} peft_gen_config;

/* HF GenerationConfig defaults: 20 new tokens, greedy, temperature 1, top_k 50, top_p 1,
 * seed 0, EOS and pad from the model, cache on */
PEFT_API void peft_gen_config_init(peft_gen_config *c);

/* The generated tokens: (B, n_new), n_new <= max_new_tokens (fewer when every row finished
 * early); rows that finished are padded. Free with peft_gen_output_free. */
typedef struct peft_gen_output {
    int64_t B, n_new;
    int32_t *tokens;   /* (B, n_new), owned */
    int64_t *lengths;  /* (B), owned: tokens generated per row up to and including its EOS */
    int32_t pad_token_id, decoder_start_token_id; /* as used (-1 when none / decoder-only) */
} peft_gen_output;
PEFT_API void peft_gen_output_free(peft_gen_output *o); /* frees the arrays; NULL ok */

/* Generates from in->input_ids (B, T) (in->attention_mask (B, T) or NULL; for T5 the encoder
 * input) with the PEFT model's active adapters, or, when row_adapters is not NULL, one adapter
 * name per row ("__base__" = none) through the mixed-batch path (peft_model_forward_rows).
 * in->task_ids (B values, or NULL) is each row's task for a multitask prompt tuning adapter,
 * given to every step's forward as PEFT's generate(task_ids=...) does (without them such an
 * adapter fails as PEFT's: "task_ids cannot be None"). Other fields of in are ignored. *out owned by the caller. PEFT_OK, or an error code with
 * peft_errmsg(peft_model_ctx(m)) naming the field, the file or the step that failed. */
PEFT_API int peft_generate(peft_model *m, const peft_model_inputs *in, const peft_gen_config *cfg,
                           const char *const *row_adapters, peft_gen_output *out);
/* The same on a bare base model (no adapters); errors go to ctx. */
PEFT_API int peft_generate_base(peft_ctx *ctx, peft_base_model *base, const peft_model_inputs *in,
                                const peft_gen_config *cfg, peft_gen_output *out);

/* ---- the samplers (exposed for tests) ---- */
/* index of the largest of x[0..n), the first one on ties (torch.argmax) */
PEFT_API int32_t peft_gen_argmax(const float *x, int64_t n);
/* HF's TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper (min_tokens_to_keep 1), in
 * that order, in place on one row of V scores; removed scores become -inf. temperature 1,
 * top_k 0 and top_p 1 skip a warper. 0, or -1 when out of memory. */
PEFT_API int peft_gen_warp(float *scores, int64_t V, double temperature, int64_t top_k, double top_p);
/* the token whose softmax(scores) cumulative mass (in index order) first exceeds u in [0, 1)
 * (inverse-CDF draw; -inf scores are never picked) */
PEFT_API int32_t peft_gen_sample(const float *scores, int64_t V, double u);

#ifdef __cplusplus
}
#endif
#endif

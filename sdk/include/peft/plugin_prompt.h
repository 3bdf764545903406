/* peft/plugin_prompt.h — header-only helpers for prompt-learning plugins that start from the
 * model's vocabulary (prompt tuning, multitask prompt tuning): a row of the word embeddings in
 * f32, and PEFT's TEXT init (the init text through the host's tokenizer, ABI 1.4
 * peft_prompt_info.tokenize, cut to or repeated up to the table's rows, then those tokens'
 * embeddings). Static inline over the host table (peft/plugin.h); no ABI, no libpeft. Host
 * entries used: tensor_to_f32 (list it in peft_pu_host_check), cfg_str, free. */
#ifndef PEFT_PLUGIN_PROMPT_H
#define PEFT_PLUGIN_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "peft/plugin.h"
#include "peft/plugin_util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when we (the word embeddings) is a (vocab, dim) float matrix */
static inline int peft_pu_word_embeddings_ok(const peft_tensor *we, int64_t dim)
{
    return we && we->ndim == 2 && we->shape[1] == dim && we->dtype != PEFT_DTYPE_I32;
}

/* row `id` of the word embeddings we (vocab, C), any float dtype, into dst (C floats) */
static inline void peft_pu_word_row(const peft_host_api *host, const peft_tensor *we, int64_t id,
                                    float *dst)
{
    const int64_t C = we->shape[1];
    size_t es = we->dtype == PEFT_DTYPE_F32 ? 4 : 2;
    peft_tensor row = *we;
    row.ndim = 1;
    row.shape[0] = C;
    row.shape[1] = 1;
    row.numel = C;
    row.data = (char *)we->data + (size_t)(id * C) * es;
    host->tensor_to_f32(&row, dst);
}

/* PEFT's PromptEmbedding TEXT init: ids = tokenizer(prompt_tuning_init_text)["input_ids"] with
 * the tokenizer at tokenizer_name_or_path (else the model directory's), cut to or repeated up
 * to `rows`, then table (rows, dim) = word_embeddings(ids). who names the method in messages
 * ("prompt tuning"). 0, or -1 with err naming what is missing. */
static inline int peft_pu_prompt_text_init(const peft_host_api *host, const peft_cfg *cfg,
                                           const peft_prompt_info *info, const char *who,
                                           float *table, int64_t rows, int64_t dim, char *err,
                                           size_t errlen)
{
    const char *text = host->cfg_str(cfg, "prompt_tuning_init_text");
    const char *where = host->cfg_str(cfg, "tokenizer_name_or_path");
    const int has_tok = info->struct_size >= offsetof(peft_prompt_info, tokenize_ud) + sizeof(void *) &&
                        info->tokenize;
    if (!has_tok) {
        peft_pu_errf(err, errlen, "%s: prompt_tuning_init \"TEXT\" needs a tokenizer and the "
                     "host gives none (the application registers one with peft_set_tokenizer)",
                     who);
        return -1;
    }
    if (!peft_pu_word_embeddings_ok(info->word_embeddings, dim)) {
        peft_pu_errf(err, errlen, "%s: prompt_tuning_init \"TEXT\" needs the model's word "
                     "embeddings (vocab, %lld); the %s model gives none", who, (long long)dim,
                     info->model_type ? info->model_type : "?");
        return -1;
    }
    int32_t *ids = NULL, n = 0;
    char terr[768] = "";
    if (info->tokenize(info->tokenize_ud, where, text ? text : "", &ids, &n, terr, sizeof terr)) {
        host->free(ids);
        peft_pu_errf(err, errlen, "%s: prompt_tuning_init \"TEXT\" needs a tokenizer: none at "
                     "tokenizer_name_or_path '%s' nor in the model directory (%s)", who,
                     where ? where : "", terr);
        return -1;
    }
    if (n <= 0) {
        host->free(ids);
        peft_pu_errf(err, errlen, "%s: prompt_tuning_init_text gives no tokens", who);
        return -1;
    }
    const peft_tensor *we = info->word_embeddings;
    const int64_t V = we->shape[0];
    for (int64_t r = 0; r < rows; r++) {
        int32_t id = ids[r % n];
        if (id < 0 || id >= V) {
            peft_pu_errf(err, errlen, "%s: prompt_tuning_init_text token id %d is outside the "
                         "model's vocabulary [0, %lld)", who, id, (long long)V);
            host->free(ids);
            return -1;
        }
        if (we->data) peft_pu_word_row(host, we, id, table + r * dim); /* a meta model: zeros */
    }
    host->free(ids);
    return 0;
}

#ifdef __cplusplus
}
#endif
#endif

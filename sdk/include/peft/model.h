/* model.h — the base model as libpeft sees it: named parameters with Hugging Face names, the
 * linear sites where tuners attach, and the architecture table that runs the forward pass.
 *
 * Architectures (core/models/<arch>.c) are forward-only code over core/ops.h: every linear layer
 * goes through peft_site_forward() so that adapters can act on it; they know nothing else of
 * tuners. Weights are wrapped zero-copy from the mmap'd safetensors files.
 */
#ifndef PEFT_MODEL_H
#define PEFT_MODEL_H

#include "peft/export.h"

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "peft/graph.h"
#include "peft/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct peft_base_model peft_base_model;

/* One adapter (one name) on a model: the method, its configs, its flags. Owned by the PEFT
 * model (core/peft_model.c); sites only point at it. */
typedef struct peft_adapter {
    char *name;                       /* "default" */
    char *source;                     /* where the config came from, for errors (file path) */
    const peft_tuner_vtable *vt;      /* the method's plugin table (borrowed, lives in registry) */
    void *parsed;                     /* vt->config_parse result, freed with vt->config_free */
    json_t *config;                   /* the adapter_config.json object (owned) */
    int active;                       /* in the active set */
    int trainable;                    /* requires_grad on its params */
    int trainable_allowed;            /* 0 when loaded for inference (is_trainable = 0) */
    double scale_mult;                /* runtime scale multiplier (1.0) */
    void *adapter_state;              /* vt->adapter_init's result (ABI 1.3) or NULL; freed
                                         with vt->adapter_destroy after the site states */
} peft_adapter;

/* an adapter's presence on one site */
typedef struct peft_site_adapter {
    peft_adapter *adapter; /* borrowed */
    void *state;           /* plugin-owned, freed with adapter->vt->destroy */
    int merged;            /* folded into the base weight */
} peft_site_adapter;

/* A linear layer (nn.Linear or GPT-2 Conv1D). */
typedef struct peft_site {
    peft_site_info info;        /* info.name owned by the site; weight/bias borrowed from params */
    peft_site_adapter *chain;   /* in the order the adapters were added */
    int n_chain, cap_chain;
    /* merge bookkeeping: the weight as loaded, kept so that unmerging everything restores the
     * base bit-exactly */
    void *orig_weight_data;
    int32_t orig_weight_dtype;
    int orig_weight_owned;
    void *orig_bias_data;       /* the bias as loaded (same scheme), NULL if no bias */
    int32_t orig_bias_dtype;
    int orig_bias_owned;
    int n_merged;
    peft_base_model *owner;     /* the model holding this site (borrowed) */
} peft_site;

/* A named base-model parameter (Hugging Face name, e.g. "transformer.h.0.ln_1.weight"). */
typedef struct peft_param {
    char *name;     /* owned */
    peft_tensor *t; /* owned */
} peft_param;

/* Model inputs; borrowed arrays, row-major (B, T). */
typedef struct peft_model_inputs {
    int64_t B, T;
    const int32_t *input_ids;      /* (B, T) */
    const int32_t *attention_mask; /* (B, T) or NULL (all ones) */
    const int32_t *labels;         /* NULL (no loss), or per labels_len below; -100 = ignored */
    /* the fields below are zero/NULL when unused (positional initialisers stay valid) */
    int64_t labels_len;            /* labels per row: 0 = T (causal LM, token classification);
                                      1 = one per example (sequence classification);
                                      else the target length (seq2seq labels (B, labels_len)) */
    const int32_t *token_type_ids; /* (B, T) or NULL (zeros): BERT */
    const int32_t *decoder_input_ids;      /* (B, Td) or NULL: encoder-decoder models */
    const int32_t *decoder_attention_mask; /* (B, Td) or NULL */
    int64_t Td;
    const int32_t *start_positions; /* (B) or NULL: question answering */
    const int32_t *end_positions;   /* (B) or NULL */
    /* incremental decoding (core/generate.h, core/kv_cache.h); zero/NULL when unused */
    const int32_t *position_ids;    /* (B, T) or NULL: position of each input token (GPT-2,
                                       LLaMA; generation passes cumsum(mask) - 1 as HF's
                                       prepare_inputs_for_generation does). NULL = past + t, as
                                       transformers 4.44 (past = cached or prefix length).
                                       Ignored while a prompt-learning adapter is active (as
                                       PEFT 0.13.2), and by T5 (relative positions). */
    struct peft_kv_cache *cache;    /* borrowed, or NULL: the forward runs only these T new tokens
                                       (T5: Td decoder tokens) after the cached past, appends
                                       their keys/values and returns their logits only; the first
                                       call fills it (prompt + virtual tokens / prefix, T5's
                                       encoder). attention_mask then covers the new tokens only
                                       (B, T); needs a graph that does not record. Causal LM /
                                       seq2seq LM. */
    const int32_t *task_ids;        /* (B) or NULL: the task of each row, for multitask prompt
                                       tuning (PEFT's forward(task_ids=...)); other methods
                                       ignore it */
} peft_model_inputs;

typedef struct peft_model_outputs {
    peft_tensor *logits;            /* arena tensor: (B, T, V) LM, (B, T, L) token cls,
                                       (B, L) sequence cls, (B, Td, V) seq2seq */
    peft_tensor *loss;              /* arena scalar or NULL when there are no labels */
    peft_tensor *start_logits;      /* (B, T): question answering (logits NULL) */
    peft_tensor *end_logits;        /* (B, T) */
    peft_tensor *last_hidden_state; /* (B, T, C): feature extraction (logits NULL); may be set
                                       by other heads too */
} peft_model_outputs;

/* Prompt-learning hooks (DESIGN.md 5). The PEFT layer sets base->prompt while a prompt-learning
 * adapter is active; architectures call them and know nothing else of the method. Semantics
 * follow PEFT 0.13.2 (see ../shared/fixtures/hf-peft/INDEX.json behaviour_notes
 * "prompt_tuning", "prefix_tuning", "prefix_tuning_t5"). */
typedef struct peft_prompt_hooks {
    void *ud;
    int64_t n_virtual; /* P: virtual tokens */
    /* Prompt tuning: (B, P, C) embeddings prepended to the input embeddings (the encoder's for
     * encoder-decoders), or NULL when this hook is absent. The arch then prefixes the attention
     * mask with P ones (token_type_ids with P zeros); causal-LM labels get P leading -100; the
     * outputs cover the P + T positions (logits (B, P+T, V)); positions run 0..P+T-1. */
    peft_tensor *(*virtual_tokens)(void *ud, peft_graph *g, int64_t B);
    /* Prefix tuning: past keys and values for one attention layer, each (B, P, Hkv*D) in the
     * layout of the layer's projected keys/values (before RoPE is applied to the real keys:
     * prefix keys are used as given). stack: 0 = the decoder-only / encoder-only stack,
     * 1 = an encoder-decoder's decoder self-attention, 2 = its cross-attention. Returns 0 and
     * sets *k, *v, or 1 when this layer has no prefix. The arch prepends them to the layer's keys
     * and values, prefixes the key mask with P ones, and shifts the query positions by P
     * (position ids P..P+T-1 for GPT-2, LLaMA and BERT; T5's decoder relative bias offsets by P). */
    int (*layer_prefix)(void *ud, peft_graph *g, int stack, int layer, int64_t B,
                        peft_tensor **k, peft_tensor **v);
} peft_prompt_hooks;

/* The attention hook (ABI 1.4, DESIGN.md 5's third hook). The PEFT layer sets base->attn_hook
 * while an attention-hook method (PEFT_CAP_ATTENTION: adaption prompt) has an adapter on the
 * model; architectures that register attention modules (peft_model_add_attn) call it on each,
 * after o_proj and before the residual add, and know nothing else of the method. */
typedef struct peft_attn_hooks {
    void *ud;
    /* attn: index in base->attn; x (B,T,C) the attention input, q (B,T,H*D) the queries with
     * RoPE applied, out (B,T,C) the attention output. Returns the output to use (out itself when
     * nothing applies), or NULL with the graph's sticky error set. */
    peft_tensor *(*output)(void *ud, peft_graph *g, int attn, peft_tensor *x, peft_tensor *q,
                           peft_tensor *out);
} peft_attn_hooks;

/* An architecture. */
typedef struct peft_arch {
    const char *model_type; /* config.json model_type */
    const char *class_name; /* e.g. "GPT2LMHeadModel" */
    const char *task_type;  /* default PEFT task type, e.g. "CAUSAL_LM" */
    /* build the model from m->config and the weights (peft_model_take_weight); sets
     * m->arch_state, registers params and sites. 0 or -1 with err. */
    int (*build)(peft_base_model *m, char *err, size_t errlen);
    int (*forward)(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                   peft_model_outputs *out, char *err, size_t errlen);
    void (*free_state)(void *arch_state);
    /* optional: the parameter count a config.json implies, without loading weights (for
     * `peft info --config`); class_name picks the head (NULL = config's architectures[0]) */
    int (*count_params)(const json_t *config, const char *class_name, int64_t *n, char *err,
                        size_t errlen);
} peft_arch;

struct peft_base_model {
    char *dir;                /* the Hugging Face model directory (owned) */
    json_t *config;           /* config.json (owned) */
    const peft_arch *arch;
    void *arch_state;         /* owned by the arch */
    peft_param *params;       /* every parameter once (tied weights once), in load order */
    size_t n_params, cap_params;
    peft_site **sites;        /* in module order */
    size_t n_sites, cap_sites;
    peft_st_file **files;     /* weight files (mmaps), owned */
    size_t n_files;
    int adapters_disabled;    /* PeftModel.disable_adapter(): sites run the base layer only */
    const char *class_name;   /* set by build: the HF class (e.g. "BertForSequenceClassification");
                                 NULL = arch->class_name */
    const char *task_type;    /* set by build: PEFT task type of that head; NULL = arch's */
    const peft_prompt_hooks *prompt; /* NULL, or the active prompt-learning adapter's hooks */
    int meta;                 /* weights are zero pages from config.json alone (counting only) */
    /* mixed-batch inference: while set, batch row b uses adapter row_adapter[b] (NULL = the
     * base model) at every site instead of the active set */
    peft_adapter *const *row_adapter;
    int64_t row_B;
    void **meta_maps;
    size_t *meta_lens, n_meta;
    /* model facts prompt learning needs (set by build): the word embedding table (V, C), the
     * number of attention layers per stack, key/value heads and head size */
    peft_tensor *word_embeddings;
    int n_layers, n_kv_heads, head_dim, hidden_size, is_encoder_decoder;
    /* ---- storage and memory (peft_load_options, core/model/storage.c) ---- */
    int32_t load_dtype;       /* -1: each weight as stored; else every float weight in it */
    int32_t quant_dtype;      /* 0, or PEFT_DTYPE_INT8 / _NF4 / _NF4_F32 for the linear layers */
    json_t *quant_skip;       /* module names never quantized (llm_int8_skip_modules), owned */
    int n_quantized;          /* linear weights quantized at load */
    double quant_err_sq, quant_ref_sq; /* sum ||dequant - w||^2, sum ||w||^2 over them */
    int random_init;          /* weights generated in memory (benchmarks), no files */
    peft_rng init_rng;
    double init_std;
    /* training memory (prepare_model_for_kbit_training, gradient_checkpointing_enable) */
    int gradient_checkpointing; /* per block: activations recomputed in backward */
    int embed_outputs_require_grad; /* enable_input_require_grads */
    int chunked_loss;         /* causal-LM training loss over row chunks, never the full logits */
    /* set by build when the architecture takes no past keys/values (so no prefix tuning): why,
     * for the error (static string); NULL = it takes them */
    const char *no_past_key_values;
    /* name -> position hashes over params and sites (core/model/name_index.c), owned, kept by
     * the core as it registers them; opaque here */
    struct peft_name_index *param_index, *site_index;
    /* attention modules (ABI 1.4; peft_model_add_attn, by build), in module order; each owned,
     * its name too */
    peft_attn_info **attn;
    int n_attn, cap_attn;
    const peft_attn_hooks *attn_hook; /* NULL, or the PEFT layer's (see peft_attn_hooks) */
};

/* How to load (transformers' from_pretrained arguments). Zero-initialise; NULL strings keep
 * the defaults. */
typedef struct peft_load_options {
    uint32_t struct_size;  /* sizeof(peft_load_options) */
    const char *torch_dtype; /* NULL / "auto": every weight stays in its file's dtype (nothing is
                              copied; the kernels read bf16/f16 directly); "float32", "bfloat16",
                              "float16" (or f32/bf16/f16): floating weights converted at load */
    const char *quant;     /* NULL: config.json's quantization_config decides; "none"; "int8"
                              (load_in_8bit); "nf4" (load_in_4bit, nf4, double quant);
                              "nf4-nodq" (nf4 without double quant) */
    int random_init;       /* no weight files: weights drawn in memory from config.json alone
                              (N(0, initializer_range), norms 1, biases 0), for benchmarks */
    uint64_t seed;         /* random_init's seed */
} peft_load_options;

/* load_dtype of a model whose weights stay in their file's dtype */
#define PEFT_LOAD_DTYPE_AS_STORED (-1)
/* "auto" (or NULL), "float32"/"f32", "bfloat16"/"bf16", "float16"/"f16" -> a load dtype; -2 unknown */
PEFT_API int32_t peft_load_dtype_from_name(const char *name);
/* NULL/"none" -> 0, "int8", "nf4", "nf4-nodq" -> PEFT_DTYPE_INT8 / _NF4 / _NF4_F32; -2 unknown */
PEFT_API int32_t peft_load_quant_from_name(const char *name);

/* peft_base_model_load with options (NULL = the defaults). Quantized at load: every linear layer
 * but the output head (lm_head / score / classifier / qa_outputs, tied embeddings) and the
 * llm_int8_skip_modules of quantization_config. 0, or a PEFT_E* code as peft_base_model_load. */
PEFT_API int peft_base_model_load_ex(const char *dir, const peft_load_options *opts, peft_base_model **out,
                                     char *err, size_t errlen);
/* the quantization report: 0 when nothing is quantized, else the count of quantized linear
 * weights, *dtype and the relative error ||dequant(Q(W)) - W|| / ||W|| over all of them */
PEFT_API int peft_base_model_quant_report(const peft_base_model *m, int32_t *dtype, double *rel_err);
/* resident bytes of the frozen weights (their storage dtype) */
PEFT_API size_t peft_base_model_weight_bytes(const peft_base_model *m);

/* the HF class / PEFT task type of a loaded model (build's choice, else the arch default) */
static inline const char *peft_model_class(const peft_base_model *m)
{
    return m->class_name ? m->class_name : m->arch->class_name;
}
static inline const char *peft_model_task(const peft_base_model *m)
{
    return m->task_type ? m->task_type : m->arch->task_type;
}

/* Loads config.json + model.safetensors (or model.safetensors.index.json shards) from dir.
 * 0 and *out (free with peft_base_model_free), or PEFT_EIO (no such directory, no config.json,
 * no weights, unreadable), PEFT_EFORMAT (malformed content), PEFT_ENOMEM, with err naming the
 * file and problem. peft_load_base_model (peft.h) is the same with the error on a context. */
PEFT_API int peft_base_model_load(const char *dir, peft_base_model **out, char *err, size_t errlen);
PEFT_API void peft_base_model_free(peft_base_model *m);
/* A weight-free model from a config.json alone (parameter counts, PEFT's "meta" device):
 * every weight is a zero-page mapping that costs no memory until written. task_type (e.g.
 * "SEQ_CLS", or NULL for config.json's architectures[0]) picks the head class as PEFT's task
 * models do. Forward passes run on zeros; use it to count and inspect. */
PEFT_API int peft_base_model_load_meta(const char *config_path, const char *task_type,
                                       peft_base_model **out, char *err, size_t errlen);

/* For arch build(): find weight `name` (also tried with the arch's optional prefix stripped:
 * "transformer.h.0..." falls back to "h.0..."), check its shape against (ndim, shape) and
 * register it as parameter `name`. Returns the borrowed tensor or NULL with err naming the file,
 * the tensor and both shapes. */
PEFT_API peft_tensor *peft_model_take_weight(peft_base_model *m, const char *name, const char *alt_name,
                                             int ndim, const int64_t *shape, char *err, size_t errlen);
/* register a site over already-taken weight/bias; returns it (owned by m) or NULL. kind
 * PEFT_SITE_LINEAR (weight (out, in)), PEFT_SITE_CONV1D (weight (in, out)) or
 * PEFT_SITE_EMBEDDING (weight (num_embeddings, dim), bias NULL; the arch runs it with
 * peft_site_embed). A weight another module also uses (tied embeddings) is marked with
 * peft_site_set_tied. */
PEFT_API peft_site *peft_model_add_site(peft_base_model *m, const char *name, int kind,
                                        peft_tensor *weight, peft_tensor *bias, int layer_index);
/* register attention module `name` of block `layer` (its projections' sites, NULL where fused;
 * heads, kv heads, head size, hidden size) for the attention hook; returns its index in m->attn,
 * or -1 on OOM or a duplicate name */
PEFT_API int peft_model_add_attn(peft_base_model *m, const char *name, int layer, peft_site *q,
                                 peft_site *k, peft_site *v, peft_site *o, int n_heads,
                                 int n_kv_heads, int head_dim, int hidden_size);
/* register a norm site (PEFT_SITE_NORM) over a taken weight (C) and bias (C) or NULL:
 * norm_type PEFT_NORM_*, eps as the arch normalises; the arch runs it with peft_site_norm.
 * Returns it (owned by m) or NULL */
PEFT_API peft_site *peft_model_add_norm_site(peft_base_model *m, const char *name,
                                             peft_tensor *weight, peft_tensor *bias,
                                             int layer_index, int norm_type, float eps);
/* marks a site's weight as shared with another module (tied input / output embeddings) */
PEFT_API void peft_site_set_tied(peft_site *s);
/* config.json getters with errors naming the field; defaults used when absent if has_def */
PEFT_API int peft_config_int(const peft_base_model *m, const char *key, int has_def, int64_t def,
                             int64_t *out, char *err, size_t errlen);
PEFT_API int peft_config_real(const peft_base_model *m, const char *key, int has_def, double def,
                              double *out, char *err, size_t errlen);

/* Run one linear site: input transforms of active adapters, the base layer, then each active
 * unmerged adapter in the order added. x (..., in) -> (..., out). */
PEFT_API peft_tensor *peft_site_forward(peft_graph *g, peft_site *s, peft_tensor *x);
/* Run an embedding site: ids (B, T) looked up in the base table, then each active unmerged
 * adapter in the order added -> (B, T, dim). NULL when out of memory, an adapter failed (the
 * graph's error says which) or an id is outside the table (*bad_id set to it). */
PEFT_API peft_tensor *peft_site_embed(peft_graph *g, peft_site *s, const int32_t *ids, int64_t B,
                                      int64_t T, int32_t *bad_id);
/* Run a norm site: the base norm of x (..., C), then each active unmerged adapter (LN tuning
 * replaces the output with its own copy's) -> (..., C) */
PEFT_API peft_tensor *peft_site_norm(peft_graph *g, peft_site *s, peft_tensor *x);

/* find a site by exact module name; NULL if none */
PEFT_API peft_site *peft_model_find_site(const peft_base_model *m, const char *name);
/* find a base parameter by HF name; NULL if none */
PEFT_API peft_param *peft_model_find_param(const peft_base_model *m, const char *name);

/* the registry of architectures (core/models/registry.c) */
PEFT_API const peft_arch *peft_arch_find(const char *model_type);

/* ---- additions (model.c / registry.c) ---- */
/* config.json bool / string getters, same conventions as peft_config_int (a JSON null counts as
 * absent). peft_config_str: def NULL = required; *out borrowed from m->config (or def). */
PEFT_API int peft_config_bool(const peft_base_model *m, const char *key, int has_def, int def, int *out,
                              char *err, size_t errlen);
PEFT_API int peft_config_str(const peft_base_model *m, const char *key, const char *def,
                             const char **out, char *err, size_t errlen);
/* architecture i of the registry (0-based), NULL past the end: for listing supported types */
PEFT_API const peft_arch *peft_arch_at(size_t i);

/* ---- reading a loaded model (core/model/model_api.c): what an application reads of a base
 * model, through functions (the struct's fields are the core's, and will become opaque).
 * Strings and tensors returned are borrowed from m: valid until peft_base_model_free. ---- */
/* The base model's own forward (no adapters: prefer peft_model_forward on a PeftModel). PEFT_OK,
 * or the graph's error code with the message in peft_graph_error(g) (PEFT_EINVAL for inputs the
 * architecture refuses, PEFT_ENOMEM...). */
PEFT_API int peft_base_model_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                                     peft_model_outputs *out);
/* config.json model_type ("gpt2"), the model directory (NULL for random or meta models' none),
 * the Hugging Face class ("GPT2LMHeadModel") and PEFT task type ("CAUSAL_LM") */
PEFT_API const char *peft_base_model_type(const peft_base_model *m);
PEFT_API const char *peft_base_model_dir(const peft_base_model *m);
PEFT_API const char *peft_base_model_class(const peft_base_model *m);
PEFT_API const char *peft_base_model_task(const peft_base_model *m);
PEFT_API int peft_base_model_is_encoder_decoder(const peft_base_model *m);
/* the word embedding table's rows (0 when the model has none) */
PEFT_API int64_t peft_base_model_vocab_size(const peft_base_model *m);
/* parameters, in load order (tied weights once): the count, the total number of values, and
 * parameter i (NULL past the end) with its Hugging Face name in *name (may be NULL) */
PEFT_API size_t peft_base_model_num_params(const peft_base_model *m);
PEFT_API int64_t peft_base_model_param_count(const peft_base_model *m);
PEFT_API peft_tensor *peft_base_model_param(const peft_base_model *m, size_t i, const char **name);
/* linear sites (where adapters attach), in module order: the count, site i's description (NULL
 * past the end), and the j-th adapter of its chain (in the order added): 1 with its adapter name,
 * method (plugin name) and merged flag (each out pointer may be NULL), 0 past the end */
PEFT_API size_t peft_base_model_num_sites(const peft_base_model *m);
PEFT_API const peft_site_info *peft_base_model_site(const peft_base_model *m, size_t i);
PEFT_API int peft_base_model_site_adapter(const peft_base_model *m, size_t i, int j,
                                          const char **adapter, const char **method, int *merged);

#ifdef __cplusplus
}
#endif
#endif

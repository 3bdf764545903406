/* model_internal.h — the bodies of the base model's handles (opaque in peft/model.h): the model,
 * its sites and their adapter chains, the adapters, the architecture table and the hooks the
 * architectures call. Core-internal: core/model, core/models and core/peft read these fields,
 * and white-box tests may; applications use peft/model.h's and peft/peft.h's calls, plugins the
 * ABI of peft/plugin.h. */
#ifndef PEFT_MODEL_INTERNAL_H
#define PEFT_MODEL_INTERNAL_H

#include <jansson.h>
#include "peft/model.h"
#include "core/tensor/graph_internal.h"

/* One adapter (one name) on a model: the method, its configs, its flags. Owned by the PEFT
 * model (core/peft_model.c); sites only point at it. */
struct peft_adapter {
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
};

/* an adapter's presence on one site */
typedef struct peft_site_adapter {
    peft_adapter *adapter; /* borrowed */
    void *state;           /* plugin-owned, freed with adapter->vt->destroy */
    int merged;            /* folded into the base weight */
} peft_site_adapter;

/* A linear layer (nn.Linear or GPT-2 Conv1D). */
struct peft_site {
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
};

/* Prompt-learning hooks (DESIGN.md 5). The PEFT layer sets base->prompt while a prompt-learning
 * adapter is active; architectures call them and know nothing else of the method. Semantics
 * follow PEFT 0.13.2 (see ../shared/fixtures/hf-peft/INDEX.json behaviour_notes
 * "prompt_tuning", "prefix_tuning", "prefix_tuning_t5"). */
struct peft_prompt_hooks {
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
};

/* The attention hook (ABI 1.4, DESIGN.md 5's third hook). The PEFT layer sets base->attn_hook
 * while an attention-hook method (PEFT_CAP_ATTENTION: adaption prompt) has an adapter on the
 * model; architectures that register attention modules (peft_model_add_attn) call it on each,
 * after o_proj and before the residual add, and know nothing else of the method. */
struct peft_attn_hooks {
    void *ud;
    /* attn: index in base->attn; x (B,T,C) the attention input, q (B,T,H*D) the queries with
     * RoPE applied, out (B,T,C) the attention output. Returns the output to use (out itself when
     * nothing applies), or NULL with the graph's sticky error set. */
    peft_tensor *(*output)(void *ud, peft_graph *g, int attn, peft_tensor *x, peft_tensor *q,
                           peft_tensor *out);
};

/* An architecture. */
struct peft_arch {
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
};

/* A named base-model parameter (Hugging Face name, e.g. "transformer.h.0.ln_1.weight"); the
 * public API reads it as (name, tensor): peft_base_model_param / _find_param. */
typedef struct peft_param {
    char *name;     /* owned */
    peft_tensor *t; /* owned */
} peft_param;

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
    struct peft_quant_layer *quant_layers; /* (n_quantized) each quantized weight's error, owned */
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
    struct peft_name_index *attn_index; /* name -> position over attn, owned (uniqueness check) */
    const peft_attn_hooks *attn_hook; /* NULL, or the PEFT layer's (see peft_attn_hooks) */
};

/* ---- what an architecture's build() (core/models/) calls: the core's, not exported (an
 * application cannot add an architecture; it reads a loaded model through peft/model.h) ---- */
/* For arch build(): find weight `name` (also tried with the arch's optional prefix stripped:
 * "transformer.h.0..." falls back to "h.0..."), check its shape against (ndim, shape) and
 * register it as parameter `name`. Returns the borrowed tensor or NULL with err naming the file,
 * the tensor and both shapes. */
peft_tensor *peft_model_take_weight(peft_base_model *m, const char *name, const char *alt_name,
                                    int ndim, const int64_t *shape, char *err, size_t errlen);
/* register a site over already-taken weight/bias; returns it (owned by m) or NULL. kind
 * PEFT_SITE_LINEAR (weight (out, in)), PEFT_SITE_CONV1D (weight (in, out)) or
 * PEFT_SITE_EMBEDDING (weight (num_embeddings, dim), bias NULL; the arch runs it with
 * peft_site_embed). A weight another module also uses (tied embeddings) is marked with
 * peft_site_set_tied. */
peft_site *peft_model_add_site(peft_base_model *m, const char *name, int kind,
                                        peft_tensor *weight, peft_tensor *bias, int layer_index);
/* register attention module `name` of block `layer` (its projections' sites, NULL where fused;
 * heads, kv heads, head size, hidden size) for the attention hook; returns its index in m->attn,
 * or -1 on OOM or a duplicate name */
int peft_model_add_attn(peft_base_model *m, const char *name, int layer, peft_site *q,
                                 peft_site *k, peft_site *v, peft_site *o, int n_heads,
                                 int n_kv_heads, int head_dim, int hidden_size);
/* register a norm site (PEFT_SITE_NORM) over a taken weight (C) and bias (C) or NULL:
 * norm_type PEFT_NORM_*, eps as the arch normalises; the arch runs it with peft_site_norm.
 * Returns it (owned by m) or NULL */
peft_site *peft_model_add_norm_site(peft_base_model *m, const char *name,
                                             peft_tensor *weight, peft_tensor *bias,
                                             int layer_index, int norm_type, float eps);
/* marks a site's weight as shared with another module (tied input / output embeddings) */
void peft_site_set_tied(peft_site *s);
/* config.json getters for build(), with errors naming the file and the field in err: 0, or -1
 * (missing and no default, or another type). peft/model.h's peft_config_* put the same on a
 * context. A JSON null counts as absent. peft_config_str_buf: def NULL = required. */
int peft_config_int_buf(const peft_base_model *m, const char *key, int has_def, int64_t def,
                        int64_t *out, char *err, size_t errlen);
int peft_config_real_buf(const peft_base_model *m, const char *key, int has_def, double def,
                         double *out, char *err, size_t errlen);
int peft_config_bool_buf(const peft_base_model *m, const char *key, int has_def, int def, int *out,
                         char *err, size_t errlen);
int peft_config_str_buf(const peft_base_model *m, const char *key, const char *def,
                        const char **out, char *err, size_t errlen);


/* find a base parameter by HF name (hashed); NULL if none; borrowed from m */
peft_param *peft_model_find_param(const peft_base_model *m, const char *name);

/* The loaders behind peft_load_base_model_ex / _meta (peft.h), with the error in err: PEFT_OK,
 * or a PEFT_E* code (the public calls put it and the message on the context). */
int peft_model_load_dir(const char *dir, const peft_load_options *opts, peft_base_model **out,
                        char *err, size_t errlen);
int peft_model_load_config(const char *config_path, const char *task_type,
                           peft_base_model **out, char *err, size_t errlen);

/* the HF class / PEFT task type of a loaded model (build's choice, else the arch default) */
static inline const char *peft_model_class(const peft_base_model *m)
{
    return m->class_name ? m->class_name : m->arch->class_name;
}
static inline const char *peft_model_task(const peft_base_model *m)
{
    return m->task_type ? m->task_type : m->arch->task_type;
}

/* A layer count from config.json (n_layer, num_hidden_layers, num_layers...) as
 * peft_config_int_buf, refused when negative or above PEFT_MAX_LAYERS: the architectures build a
 * block per layer (a config-only meta model too), so a 500-byte config saying 50 million layers
 * would cost minutes and gigabytes (found by fuzz/fuzz_config.c). The largest released models
 * have ~130 layers. The bound was 100000 until a fuzzed 100-byte T5 config with 41288 decoder
 * layers took a minute under ASan: at 100000 layers `peft info --config` still cost 6.7 s and
 * 810 MB for a 90-byte file; at 10000 (75 times the deepest released model) it costs < 1 s and
 * < 100 MB. */
#define PEFT_MAX_LAYERS 10000
int peft_config_layers(const peft_base_model *m, const char *key, int has_def, int64_t def,
                       int64_t *out, char *err, size_t errlen);

#endif

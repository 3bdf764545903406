/* model.h — the base model as libpeft sees it: named parameters with Hugging Face names, the
 * linear sites where tuners attach, and the architecture table that runs the forward pass.
 *
 * Architectures (core/models/<arch>.c) are forward-only code over core/ops.h: every linear layer
 * goes through a site (the core's peft_site_forward, core/model/site.h, inside the library) so
 * that adapters can act on it; they know nothing else of tuners. Weights are wrapped zero-copy
 * from the mmap'd safetensors files.
 */
#ifndef PEFT_MODEL_H
#define PEFT_MODEL_H

#include "peft/export.h"

#include <stddef.h>
#include <stdint.h>
#include "peft/graph.h"
#include "peft/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles (their bodies are the core's: core/model/model_internal.h). A base model is
 * read through the peft_base_model_* calls below; sites and adapters through peft_site_info and
 * the PeftModel API (peft.h). */
typedef struct peft_base_model peft_base_model;
typedef struct peft_adapter peft_adapter; /* one adapter (one name) on a model */
typedef struct peft_site peft_site;       /* a linear / embedding / norm layer adapters attach to */
typedef struct peft_arch peft_arch;       /* an architecture of the registry (peft_arch_find) */
typedef struct peft_prompt_hooks peft_prompt_hooks; /* the core's prompt-learning hooks */
typedef struct peft_attn_hooks peft_attn_hooks;     /* the core's attention hook */

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

/* the quantization report: 0 when nothing is quantized, else the count of quantized linear
 * weights, *dtype and the relative error ||dequant(Q(W)) - W|| / ||W|| over all of them */
PEFT_API int peft_base_model_quant_report(const peft_base_model *m, int32_t *dtype, double *rel_err);
/* one quantized linear weight: its module, storage dtype, ||dequant(Q(W)) - W|| / ||W|| and
 * max |dequant(Q(W)) - W| */
typedef struct peft_quant_layer {
    char *name;
    int32_t dtype;
    double rel_err, max_abs_err;
} peft_quant_layer;
/* the quantized weights in load order (*n of them; NULL and 0 when none); owned by m */
PEFT_API const peft_quant_layer *peft_base_model_quant_layers(const peft_base_model *m, int *n);
/* resident bytes of the frozen weights (their storage dtype) */
PEFT_API size_t peft_base_model_weight_bytes(const peft_base_model *m);

/* frees a base model from peft_load_base_model* (peft.h) or peft_unload; NULL ok */
PEFT_API void peft_base_model_free(peft_base_model *m);
/* config.json getters for a loaded model, with errors naming the file and the field: PEFT_OK and
 * *out, or PEFT_EFORMAT (the field is missing and has_def is 0, or holds another type; a JSON
 * null counts as absent) or PEFT_EINVAL (a NULL argument), with the message on ctx (may be NULL).
 * When absent and has_def, *out = def. peft_config_int accepts an integral real (1024.0). */
PEFT_API int peft_config_int(peft_ctx *ctx, const peft_base_model *m, const char *key, int has_def,
                             int64_t def, int64_t *out);
PEFT_API int peft_config_real(peft_ctx *ctx, const peft_base_model *m, const char *key, int has_def,
                              double def, double *out);
PEFT_API int peft_config_bool(peft_ctx *ctx, const peft_base_model *m, const char *key, int has_def,
                              int def, int *out);
/* def NULL = required; *out borrowed from m (or def): valid until peft_base_model_free */
PEFT_API int peft_config_str(peft_ctx *ctx, const peft_base_model *m, const char *key,
                             const char *def, const char **out);

/* find a site by exact module name; NULL if none */
PEFT_API peft_site *peft_model_find_site(const peft_base_model *m, const char *name);
/* a site's description (borrowed from s: valid while the site lives); NULL for NULL */
PEFT_API const peft_site_info *peft_site_get_info(const peft_site *s);

/* the registry of architectures (core/models/registry.c) */
PEFT_API const peft_arch *peft_arch_find(const char *model_type);

/* ---- the registry of architectures (core/models/registry.c) ---- */
/* architecture i of the registry (0-based), NULL past the end: for listing supported types */
PEFT_API const peft_arch *peft_arch_at(size_t i);
/* an architecture's config.json model_type ("gpt2"), Hugging Face class ("GPT2LMHeadModel") and
 * default PEFT task type ("CAUSAL_LM"); static strings, NULL for NULL */
PEFT_API const char *peft_arch_model_type(const peft_arch *a);
PEFT_API const char *peft_arch_class_name(const peft_arch *a);
PEFT_API const char *peft_arch_task_type(const peft_arch *a);

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
/* the classification labels config.json implies, as transformers' PretrainedConfig: the size of
 * a non-empty id2label, else num_labels, else 2 */
PEFT_API int64_t peft_base_model_num_labels(const peft_base_model *m);
/* the word embedding table's rows (0 when the model has none) */
PEFT_API int64_t peft_base_model_vocab_size(const peft_base_model *m);
/* parameters, in load order (tied weights once): the count, the total number of values, and
 * parameter i (NULL past the end) with its Hugging Face name in *name (may be NULL) */
PEFT_API size_t peft_base_model_num_params(const peft_base_model *m);
PEFT_API int64_t peft_base_model_param_count(const peft_base_model *m);
PEFT_API peft_tensor *peft_base_model_param(const peft_base_model *m, size_t i, const char **name);
/* the parameter with Hugging Face name `name` ("transformer.h.0.ln_1.weight"; hashed lookup), or
 * NULL. A parameter is read as its name and its tensor (whether it trains is the tensor's
 * requires_grad): there is no parameter struct to keep in step with the model. */
PEFT_API peft_tensor *peft_base_model_find_param(const peft_base_model *m, const char *name);
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

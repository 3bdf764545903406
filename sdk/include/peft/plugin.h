/* peft/plugin.h — the tuner plugin ABI: what a method's shared object exports and what the
 * host (libpeft) hands it.
 *
 * A plugin is a .so that exports exactly one symbol:
 *
 *     const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
 *                                               char *err, size_t errlen);
 *
 * It returns its vtable (static storage, lives as long as the .so is loaded) or NULL with a
 * message in err. The plugin never links against libpeft: every service it needs comes from the
 * host table, so any host that fills the table can load it.
 *
 * Versioning: every ABI struct starts with struct_size, abi_major, abi_minor. Structs only
 * grow at the end. A vtable's abi_minor is the OLDEST host minor the plugin needs (a plugin built
 * against newer headers that uses nothing newer may say an older minor and still loads on an
 * older host). The host refuses a plugin whose major differs, whose minor is newer than the
 * host's, or whose vtable is shorter than PEFT_TUNER_VTABLE_MIN_SIZE; it reads vtable entries up
 * to the plugin's struct_size (later ones read as NULL). A plugin must check host->struct_size
 * (PEFT_HOST_HAS) before using a host entry added after minor 0.
 *
 * Thread safety: the host API may be called from any thread; one adapter state (void *state) is
 * used by one thread at a time (one model per thread).
 */
#ifndef PEFT_PLUGIN_H
#define PEFT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include "peft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PEFT_ABI_MAJOR 1
#define PEFT_ABI_MINOR 5
#define PEFT_PLUGIN_ENTRY "peft_plugin_init"

#if defined(__GNUC__)
#define PEFT_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PEFT_PLUGIN_EXPORT
#endif

/* Opaque host objects. */
typedef struct peft_graph peft_graph; /* one forward/backward step: arena + tape */
typedef struct peft_cfg peft_cfg;     /* an adapter_config.json object (mutable) */
typedef struct peft_rng peft_rng;     /* the seeded random generator */

/* cfg value types returned by host->cfg_type */
#define PEFT_CFG_MISSING 0
#define PEFT_CFG_NULL 1
#define PEFT_CFG_BOOL 2
#define PEFT_CFG_INT 3
#define PEFT_CFG_REAL 4
#define PEFT_CFG_STRING 5
#define PEFT_CFG_LIST 6
#define PEFT_CFG_DICT 7

/* site kinds */
#define PEFT_SITE_LINEAR 0 /* nn.Linear: weight (out, in) */
#define PEFT_SITE_CONV1D 1 /* GPT-2 Conv1D: weight (in, out), fan_in_fan_out */
/* ABI 1.4. A plugin built against an older minor is never handed these (the host refuses the
 * adapter with a message naming plugin, kind and module); a newer plugin refuses in inject the
 * kinds it does not support (peft_pu_site_check does, naming plugin, kind and module). */
#define PEFT_SITE_EMBEDDING 2 /* nn.Embedding: weight (num_embeddings, embedding_dim), no bias;
                                 in_features = num_embeddings, out_features = embedding_dim.
                                 forward's x is an I32 tensor of token ids (B, T) (never requires
                                 grad), y the looked-up rows (B, T, embedding_dim) */
#define PEFT_SITE_NORM 3      /* LayerNorm (weight and bias) or RMSNorm (weight, bias NULL):
                                 weight (C); in_features = out_features = C. forward's x is the
                                 norm's input (..., C), y the base norm's output; norm_type and
                                 norm_eps say how it normalises (host->op_site_norm runs it) */

/* peft_site_info.norm_type of a PEFT_SITE_NORM site (ABI 1.4) */
#define PEFT_NORM_LAYER 0    /* nn.LayerNorm: (x - mean) / sqrt(var + eps) * w + b */
#define PEFT_NORM_RMS 1      /* RMSNorm (LLaMA, T5): x / sqrt(mean(x^2) + eps) * w */
#define PEFT_NORM_RMS_1P 2   /* Gemma's RMSNorm: x / sqrt(mean(x^2) + eps) * (1 + w) */

/* capability flags (vtable.caps) */
#define PEFT_CAP_MERGEABLE 0x1u       /* merge/unmerge fold the adapter into the base weight */
#define PEFT_CAP_MIXABLE 0x2u         /* may share a site with adapters of other methods */
#define PEFT_CAP_PROMPT_LEARNING 0x4u /* acts through the prompt hooks, not linear sites */
#define PEFT_CAP_INPUT_TRANSFORM 0x8u /* uses pre_forward (transforms the site input) */
/* ABI 1.3: the backward of some trainable tensor is a straight-through estimate, not the
 * derivative of forward (OFT's coft projection): plugin-check then requires of those gradients
 * only that they are finite and a descent direction, instead of matching finite differences */
#define PEFT_CAP_STRAIGHT_THROUGH 0x10u
/* ABI 1.4: acts through the attention hook (vtable attn_forward) on the model's attention
 * modules, on no linear site: adapter_init gets the attention modules (peft_adapter_info.attn),
 * inject/forward may be NULL, and every tensor is adapter-level (adapter_state_dict) */
#define PEFT_CAP_ATTENTION 0x20u

/* peft_param_ref.flags (ABI 1.3; 0, what older plugins leave there, is a saved parameter) */
#define PEFT_PARAM_BUFFER 0x1u    /* a buffer, not a parameter (PEFT's BufferDict): never made
                                     trainable, not in the parameter counts */
#define PEFT_PARAM_NOT_SAVED 0x2u /* persistent=False: save skips it, load does not expect it */
#define PEFT_PARAM_SAVE_ONLY 0x4u /* only in the saved state dict: a tensor the plugin made for
                                     saving (AdaLoRA's rank-cut copies). Not a parameter, not
                                     counted, no in-memory name; a load writes into it and then
                                     calls vtable->loaded so that the plugin takes it in */
#define PEFT_PARAM_PROMPT_KEY 0x8u /* ABI 1.4, prompt learning: also saved (and loaded) under
                                      saved_name as a top-level key beside prompt_embeddings
                                      (multitask prompt tuning's prefix_task_cols) */

/* One linear layer of the base model, as a plugin sees it. Borrowed: valid while the site
 * exists (as long as the adapter state injected into it). */
typedef struct peft_site_info {
    uint32_t struct_size;
    int32_t kind;           /* PEFT_SITE_* */
    const char *name;       /* Hugging Face module name, e.g. "transformer.h.0.attn.c_attn" */
    const char *model_type; /* config.json model_type, e.g. "gpt2" */
    int64_t in_features;
    int64_t out_features;
    int32_t fan_in_fan_out; /* 1: weight stored (in, out) */
    int32_t layer_index;    /* index of the numbered block holding it, -1 if none */
    peft_tensor *weight;    /* base weight; read-only for plugins; may be bf16/f16 */
    peft_tensor *bias;      /* base bias (out) or NULL; read-only for plugins */
    /* ---- ABI 1.4 (check struct_size) ---- */
    int32_t norm_type;      /* PEFT_SITE_NORM: PEFT_NORM_*; else 0 */
    float norm_eps;         /* PEFT_SITE_NORM: the norm's eps; else 0 */
    int32_t tied;           /* 1: the weight is shared with another module (tied input and
                               output embeddings): merging into it changes both, as in PEFT */
} peft_site_info;

/* A named tensor of an adapter's state dict, relative to its site.
 * saved_name:  the key suffix written to adapter_model.safetensors ("lora_A.weight")
 * memory_name: PEFT's in-memory parameter name suffix ("lora_A.default.weight")
 * Both strings and the tensor are owned by the adapter state. */
typedef struct peft_param_ref {
    const char *saved_name;
    const char *memory_name;
    peft_tensor *tensor;
    int32_t trainable; /* 1: an optimizer updates it */
    int32_t flags; /* ABI 1.3: PEFT_PARAM_*; named `reserved` (and zero) up to ABI 1.2 */
} peft_param_ref;

/* What a prompt-learning method needs to know of the model (ABI 1.1). Borrowed. */
typedef struct peft_prompt_info {
    uint32_t struct_size;
    const char *model_type;             /* "gpt2", "bert", "llama", "t5" */
    int32_t hidden_size;                /* token_dim: the word embedding width */
    int32_t n_layers;                   /* attention layers per stack (the decoder's for T5) */
    int32_t n_kv_heads;                 /* key/value heads (GQA: fewer than query heads) */
    int32_t head_dim;
    int32_t is_encoder_decoder;         /* 1: PEFT's num_transformer_submodules = 2 */
    int32_t vocab_size;
    const peft_tensor *word_embeddings; /* (vocab, hidden): SAMPLE_VOCAB / TEXT init */
    /* ABI 1.2 (check struct_size): the adapter config's prompt_tuning_init_text tokenized by
     * the model's tokenizer (special tokens added, as PEFT's tokenizer(text) call does), when
     * prompt_tuning_init is "TEXT" and the host found a tokenizer; else NULL / 0 */
    const int32_t *init_text_ids;
    int32_t n_init_text_ids;
    /* ABI 1.4 (check struct_size): the host's tokenizer, for a plugin's TEXT init. Tokenizes
     * text with the tokenizer at `where` (a local directory or tokenizer.json; NULL or missing:
     * skipped), else the model directory's, as PEFT's tokenizer(text)["input_ids"] (special
     * tokens added): *ids host->alloc'd (free it with host->free), *n its length. 0, or -1 with
     * err. NULL when the application registered no tokenizer (peft_set_tokenizer). Since 1.4
     * the host reads no method's fields: init_text_ids above stays NULL (a plugin reads its own
     * prompt_tuning_init_text and calls this; see peft/plugin_prompt.h). */
    int (*tokenize)(void *tokenize_ud, const char *where, const char *text, int32_t **ids,
                    int32_t *n, char *err, size_t errlen);
    void *tokenize_ud;
} peft_prompt_info;

typedef void (*peft_backward_fn)(peft_graph *g, void *ctx);

/* Services the host gives a plugin. All pointers valid for the life of the process. */
typedef struct peft_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /* memory (zeroed allocation; free accepts NULL) */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);

    /* persistent tensors: zeroed f32 (dtype PEFT_DTYPE_F32), owned by the caller, freed with
     * tensor_free. A tensor meant as a trainable parameter: set requires_grad = 1. */
    peft_tensor *(*tensor_new)(int ndim, const int64_t *shape);
    void (*tensor_free)(peft_tensor *t);
    /* converts any float dtype tensor to f32 into out (numel floats) */
    void (*tensor_to_f32)(const peft_tensor *t, float *out);

    /* graph: temporaries live in the step arena (never free them) */
    peft_tensor *(*graph_tensor)(peft_graph *g, int ndim, const int64_t *shape); /* f32, zeroed */
    int (*graph_training)(const peft_graph *g);     /* 1: dropout active */
    int (*graph_recording)(const peft_graph *g);    /* 1: the tape records (gradients wanted) */
    peft_rng *(*graph_rng)(peft_graph *g);
    /* record a backward step: returns ctx_bytes of zeroed arena memory passed to fn later,
     * or NULL when nothing is recorded (not recording). */
    void *(*tape_push)(peft_graph *g, peft_backward_fn fn, size_t ctx_bytes);
    /* in a backward fn: the gradient buffer of t (allocated and zeroed on first use);
     * add into it, never overwrite. NULL if t does not require grad. */
    float *(*grad_of)(peft_graph *g, peft_tensor *t);

    /* ops (forward now, backward through the tape); all return arena tensors */
    peft_tensor *(*op_linear)(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b,
                              int w_in_out); /* x (..., in); w (out,in), or (in,out) if w_in_out */
    peft_tensor *(*op_add)(peft_graph *g, peft_tensor *a, peft_tensor *b);   /* same shape */
    peft_tensor *(*op_scale)(peft_graph *g, peft_tensor *x, float s);
    peft_tensor *(*op_mul_lastdim)(peft_graph *g, peft_tensor *x, peft_tensor *v); /* x(...,n)*v(n) */
    peft_tensor *(*op_dropout)(peft_graph *g, peft_tensor *x, float p); /* identity unless training */

    /* row-major GEMM: C = alpha * op(A) op(B) + beta * C, op = transpose if trans != 0 */
    void (*sgemm)(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);

    /* config getters (adapter_config.json); key lookups on the top-level object */
    int (*cfg_type)(const peft_cfg *c, const char *key); /* PEFT_CFG_* */
    int (*cfg_bool)(const peft_cfg *c, const char *key, int *out);      /* 0 ok, -1 wrong type */
    int (*cfg_int)(const peft_cfg *c, const char *key, int64_t *out);   /* 0 ok, -1 wrong type */
    int (*cfg_real)(const peft_cfg *c, const char *key, double *out);   /* ints accepted */
    const char *(*cfg_str)(const peft_cfg *c, const char *key);         /* NULL if not a string */
    int (*cfg_list_len)(const peft_cfg *c, const char *key);            /* -1 if not a list */
    const char *(*cfg_list_str)(const peft_cfg *c, const char *key, int i);
    /* PEFT's rank_pattern/alpha_pattern lookup: the first dict key k for which module_name
     * matches the regex ".*\.k$" (or equals k); 1 and *out set when found, 0 when not. */
    int (*cfg_pattern_real)(const peft_cfg *c, const char *dict_key, const char *module_name,
                            double *out);
    /* setters: write a default or rewritten value back into the saved config */
    void (*cfg_set_bool)(peft_cfg *c, const char *key, int v);
    void (*cfg_set_int)(peft_cfg *c, const char *key, int64_t v);
    void (*cfg_set_real)(peft_cfg *c, const char *key, double v);
    void (*cfg_set_str)(peft_cfg *c, const char *key, const char *v); /* NULL -> json null */
    /* set key to a JSON value given as text ("{}", "null", "[\"q\",\"v\"]"); -1 if invalid */
    int (*cfg_set_json)(peft_cfg *c, const char *key, const char *json_text);
    /* list element i of key as an integer (layers_to_transform); -1 if not an int */
    int (*cfg_list_int)(const peft_cfg *c, const char *key, int i, int64_t *out);

    /* random numbers from the one seeded generator */
    double (*rng_uniform)(peft_rng *r); /* [0, 1) */
    double (*rng_normal)(peft_rng *r);  /* N(0, 1) */

    /* a warning for the user (the host decides where it goes) */
    void (*warn)(const char *msg);

    /* ---- ABI 1.1 (check host->abi_minor >= 1 or struct_size before use) ---- */
    /* The site's base weight as writable f32, for methods that rewrite it at init (PiSSA's
     * residual, OLoRA): the host makes it an owned f32 copy, which from then on IS the base
     * weight (unload keeps it, as PEFT does). NULL on OOM. */
    float *(*site_weight_writable)(const peft_site_info *site);
    /* thin SVD (LAPACK sgesdd) of a (m, n) row-major: u (m, k), s (k) descending, vt (k, n),
     * k = min(m, n). 0, or -1 when LAPACK fails or a is not finite (NaN or infinity: LAPACK's
     * sgesdd may not return on an infinity). */
    int (*svd)(int m, int n, const float *a, float *u, float *s, float *vt);
    /* thin QR (LAPACK sgeqrf + sorgqr) of a (m, n): q (m, k), r (k, n), k = min(m, n). 0 / -1 */
    int (*qr)(int m, int n, const float *a, float *q, float *r);

    /* ---- ABI 1.2 ---- */
    /* Python-style regex full match (re.fullmatch) of s, through PCRE2 (Python's syntax:
     * \d \w \s, (?:...), (?P<n>...), lazy quantifiers, look-around, back-references), with
     * size and match limits. 1 match, 0 no match, -1 invalid pattern or a limit hit. */
    int (*regex_fullmatch)(const char *pattern, const char *s);
    /* cfg_pattern_real with the rule of the LyCORIS tuners (LoHa, LoKr): a key matches when
     * module_name fullmatches "(.*\.)?key" (cfg_pattern_real uses LoRA's ".*\.key$"). */
    int (*cfg_pattern_real_lycoris)(const peft_cfg *c, const char *dict_key,
                                    const char *module_name, double *out);

    /* ---- ABI 1.3 (check PEFT_HOST_HAS(host, entry) before use) ---- */
    /* Batched linear solve (LAPACK sgesv): for each of `batch` systems, x = a^-1 b with a
     * (batch, n, n) and b, x (batch, n, nrhs), row-major, contiguous. x may alias b. 0, or -1
     * when a matrix is singular (or n, nrhs <= 0). */
    int (*solve)(int batch, int n, int nrhs, const float *a, const float *b, float *x);
    /* Batched inverse (sgetrf + sgetri): inv (batch, n, n) = a^-1 per block; may alias a. 0/-1 */
    int (*inverse)(int batch, int n, const float *a, float *inv);
    /* The site's base bias made a trainable parameter of the adapter being created (LoRA's
     * `bias` option; only during adapter_init / inject / inject_in): the host makes it owned,
     * writable f32, trains it with the adapter, saves it as "<module>.base_layer.bias" (PEFT's
     * key for a wrapped layer's bias) and, as PEFT, leaves the trained bias in the base after
     * unload. Returns the bias tensor (borrowed, the host's), or NULL with err set when the site
     * has no bias or when called outside adapter creation. */
    peft_tensor *(*site_bias_trainable)(const peft_site_info *site, char *err, size_t errlen);
    /* The graph's sticky error: the first message set stays; forward and backward then fail
     * with PEFT_EPLUGIN and this message (a plugin's failure inside forward reaches the user).
     * After setting it, return any tensor of the right shape (e.g. y). */
    void (*graph_set_error)(peft_graph *g, const char *msg);
    /* the sticky error's message, or NULL when none was set */
    const char *(*graph_error)(const peft_graph *g);
    /* key's value as compact JSON text with sorted keys (nested dicts and lists: AdaLoRA's
     * rank_pattern), to be freed with host->free; NULL when the key is missing */
    char *(*cfg_get_json)(const peft_cfg *c, const char *key);

    /* ---- ABI 1.4 ---- */
    /* A norm site's own normalisation (PEFT_SITE_NORM: its norm_type and norm_eps, as the base
     * layer computes it) with the given parameters: x (..., C), weight (C), bias (C) for
     * PEFT_NORM_LAYER (or NULL: none), NULL for the RMS norms -> (..., C), an arena tensor whose
     * backward (to x, weight and bias, where they require grad) is recorded on g. NULL when the
     * site is not a norm site, a shape does not fit, or out of memory. */
    peft_tensor *(*op_site_norm)(peft_graph *g, const peft_site_info *site, peft_tensor *x,
                                 peft_tensor *weight, peft_tensor *bias);

    /* ---- ABI 1.5 (check PEFT_HOST_HAS(host, safetensors_read)) ---- */
    /* Reads tensors of a safetensors file that is not the adapter's own (multitask prompt
     * tuning's prompt_tuning_init_state_dict_path: a source adapter's adapter_model.safetensors).
     * path is opened as given (relative to the working directory) and validated as every load
     * (header, dtypes, shapes, offsets; peft/safetensors.h). For each of the n names, out[i] is a
     * new f32 tensor of the stored shape (F32, F16 or BF16 converted; created by tensor_new, so
     * during adapter creation it counts against the adapter's size bound), owned by the caller
     * (free it with tensor_free), or NULL when the file has no such key. The file is closed
     * before the call returns. 0, or -1 with err naming the file (and the tensor): missing,
     * not safetensors (a PyTorch pickle is named as such), an I32 tensor, out of memory; then
     * every out[i] is NULL. Any thread, any time. */
    int (*safetensors_read)(const char *path, const char *const *names, int n,
                            peft_tensor **out, char *err, size_t errlen);
} peft_host_api;

/* 1 when the host table has `entry` (added in a later minor than the oldest the plugin runs on) */
#define PEFT_HOST_HAS(host, entry) \
    ((host)->struct_size >= offsetof(peft_host_api, entry) + sizeof((host)->entry))

/* One attention module of the base model (ABI 1.4), as an attention-hook method
 * (PEFT_CAP_ATTENTION) sees it. Borrowed: valid as long as the base model. The LLaMA family
 * (core/models/rope_decoder.c) registers one per decoder layer. */
typedef struct peft_attn_info {
    uint32_t struct_size;
    const char *name;       /* Hugging Face module name, e.g. "model.layers.3.self_attn" */
    const char *model_type; /* config.json model_type, e.g. "llama" */
    int32_t index;          /* its place among the model's attention modules (module order) */
    int32_t layer_index;    /* the numbered block holding it */
    int32_t n_heads, n_kv_heads, head_dim, hidden_size;
    /* its projections (sites; their weights read-only, maybe bf16/f16/quantized: use
     * host->op_linear); NULL where the architecture fuses them (Phi-3's qkv_proj) */
    const peft_site_info *q_proj, *k_proj, *v_proj, *o_proj;
} peft_attn_info;

/* What an adapter-level state sees of the model when it is created (ABI 1.3). Borrowed: valid
 * during the adapter_init call only (keep what you need; the site infos themselves live as long
 * as the adapter). */
typedef struct peft_adapter_info {
    uint32_t struct_size;
    const char *model_type;             /* config.json model_type */
    int32_t n_sites;
    const peft_site_info *const *sites; /* every site the adapter's target rules picked, in the
                                           model's module order: inject/inject_in follows for
                                           each, in this order */
    int32_t n_peers;
    void *const *peers;                 /* the adapter-level states of this plugin's other
                                           adapters on the model, in the order added */
    const char *const *peer_names;      /* their adapter names */
    /* ABI 1.4 (check struct_size): every attention module of the model, in module order, for
     * a PEFT_CAP_ATTENTION plugin (which picks its own from target_modules); n_sites is then 0.
     * 0 / NULL for site methods */
    int32_t n_attn;
    const peft_attn_info *const *attn;
} peft_adapter_info;

/* The method's table. Static storage in the plugin. Optional entries may be NULL. */
typedef struct peft_tuner_vtable {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    const char *name;      /* "lora": the plugin file is <name>.so, YAML uses this name */
    const char *peft_type; /* "LORA": adapter_config.json peft_type */
    const char *prefix;    /* "lora_": the state-dict key marker */
    uint32_t caps;         /* PEFT_CAP_* */
    const char *const *config_keys; /* NULL-terminated: every field this method's config may
                                       hold; anything else is refused as an unknown field */

    /* NULL-terminated default target_modules for a model_type, or NULL if none */
    const char *const *(*default_targets)(const char *model_type);

    /* Validate the config and fill in defaults (writing them back with cfg_set_*), returning
     * a parsed config in *out (plugin-owned, freed by config_free). 0 or -1 with err set. */
    int (*config_parse)(peft_cfg *cfg, void **out, char *err, size_t errlen);
    void (*config_free)(void *parsed);

    /* Create this adapter's state on one site. May rewrite cfg (e.g. fan_in_fan_out). Returns
     * plugin-owned state, freed by destroy; NULL with err set on failure. */
    void *(*inject)(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                    const char *adapter_name, peft_rng *rng, char *err, size_t errlen);

    /* Optional (PEFT_CAP_INPUT_TRANSFORM): transform the site input before the base layer. */
    peft_tensor *(*pre_forward)(void *state, peft_graph *g, const peft_site_info *site,
                                peft_tensor *x);
    /* x (..., in) the site input, y (..., out) the output so far; returns the new output. */
    peft_tensor *(*forward)(void *state, peft_graph *g, const peft_site_info *site,
                            peft_tensor *x, peft_tensor *y);

    /* Fold into (sign = +1) or out of (sign = -1) the base weight. weight: f32, writable, in
     * the site's layout; bias: f32 writable or NULL. 0 or -1 with err set. */
    int (*merge)(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
                 char *err, size_t errlen);

    /* Free the state (unload / delete_adapter). */
    void (*destroy)(void *state);

    /* The adapter's tensors on this site. Fills up to max entries and returns the number it
     * has, as snprintf does (ABI 1.3 hosts call again with room for all when that exceeds max;
     * an older plugin returning at most max is read as before). */
    int (*state_dict)(void *state, peft_param_ref *out, int max);

    /* PEFT's module type for status reports, e.g. "lora.Linear". */
    const char *(*module_type)(void *state);

    /* Optional: runtime multiplier on the adapter's scaling (1.0 = as configured). */
    int (*set_scale)(void *state, double mult);

    /* PEFT's tuner model class for status reports, e.g. "LoraModel". */
    const char *model_class;

    /* ---- ABI 1.1: prompt learning (caps has PEFT_CAP_PROMPT_LEARNING; then inject, forward,
     * merge may be NULL and these are required) ---- */
    /* the adapter's state for a model: plugin-owned, freed by destroy; NULL with err set */
    void *(*prompt_init)(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
                         const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
    /* prompt tuning: (B, P, C) virtual token embeddings on g; NULL for prefix methods */
    peft_tensor *(*prompt_embeddings)(void *state, peft_graph *g, int64_t B);
    /* prefix tuning: keys and values for one attention layer, each (B, P, Hkv*D) on g; stack as
     * in the host's hooks (0 decoder-only/encoder, 1 decoder self, 2 decoder cross). 0, or 1
     * when this layer gets no prefix. NULL for prompt-tuning methods. */
    int (*prefix_kv)(void *state, peft_graph *g, int stack, int layer, int64_t B,
                     peft_tensor **k, peft_tensor **v);
    /* PEFT's get_prompt_embedding_to_save: a new f32 tensor the caller frees with
     * host->tensor_free, saved under the key "prompt_embeddings" */
    peft_tensor *(*prompt_to_save)(void *state);
    /* loads a saved "prompt_embeddings" tensor (as PEFT: used directly, no re-projection).
     * 0, or -1 with err naming both shapes */
    int (*prompt_load)(void *state, const peft_tensor *saved, char *err, size_t errlen);
    /* P, the number of virtual tokens the model sees */
    int64_t (*prompt_num_virtual)(void *state);

    /* ---- ABI 1.2: add_weighted_adapter (optional) ---- */
    /* Fill dst, the new adapter's freshly injected state on this site (its config has the
     * combined rank), from the n source adapters' states srcs on this site (NULL where a source
     * has no state on it) with PEFT's semantics: opts holds combination_type ("linear", "cat",
     * "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd", "dare_ties_svd",
     * "magnitude_prune", "magnitude_prune_svd"), density, majority_sign_method, svd_rank,
     * svd_clamp... and rng drives the DARE masks. 0, or -1 with err. */
    int (*combine)(void *dst, void *const *srcs, const double *weights, int n,
                   const peft_cfg *opts, const peft_site_info *site, peft_rng *rng, char *err,
                   size_t errlen);

    /* ---- ABI 1.3: adapter-level state, training hooks (all optional) ---- */
    /* The adapter's model-level state (VeRA's shared projections, VB-LoRA's vector bank),
     * created once per adapter after config_parse and BEFORE any inject, seeing every targeted
     * site and this plugin's other adapters on the model (peers). May rewrite cfg. Plugin-owned,
     * freed by adapter_destroy after every site state of the adapter is destroyed. NULL with
     * err set refuses the adapter. Site methods only (not with PEFT_CAP_PROMPT_LEARNING). */
    void *(*adapter_init)(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                          const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
    void (*adapter_destroy)(void *adapter_state);
    /* inject with the adapter-level state (adapter_init's result, or NULL when the plugin has no
     * adapter_init); when set, the host calls it instead of inject */
    void *(*inject_in)(void *adapter_state, const void *parsed, peft_cfg *cfg,
                       const peft_site_info *site, const char *adapter_name, peft_rng *rng,
                       char *err, size_t errlen);
    /* The adapter-level tensors, like state_dict: saved_name is a model-level key written as
     * "base_model.<saved_name>" (PEFT's base_model.vera_A), memory_name the in-memory name
     * after "base_model." (e.g. "vera_A.default"). Fills up to max; returns the count. */
    int (*adapter_state_dict)(void *adapter_state, peft_param_ref *out, int max);
    /* Extra loss term (AdaLoRA's orthogonal regularisation): called after the model's forward
     * when it computed a loss and this adapter is active (adapters enabled). *term: NULL for
     * none, or a one-element arena tensor whose backward is recorded on g (host ops or
     * tape_push); the host adds it to the loss. 0, or -1 after host->graph_set_error. */
    int (*loss_term)(void *adapter_state, peft_graph *g, peft_tensor **term);
    /* After each optimizer update (peft_model_step_end), for every trainable adapter: step is
     * the 0-based number of the update just made, total_steps the planned count (0 if unknown).
     * The parameters hold their updated values and their gradients are still there (zeroed
     * after this returns). May change the adapter's own tensors in place (masking) and rewrite
     * cfg (AdaLoRA's rank_pattern). 0, or -1 with err. */
    int (*step_end)(void *adapter_state, peft_cfg *cfg, int64_t step, int64_t total_steps,
                    char *err, size_t errlen);
    /* After a load wrote into the adapter's state dicts: called for every site state of the
     * adapter (site_state set; adapter_state as given to inject_in, maybe NULL), then once for
     * the adapter-level state (site_state NULL; only when there is one). Take in
     * PEFT_PARAM_SAVE_ONLY tensors, rebuild derived values. 0, or -1 with err. */
    int (*loaded)(void *adapter_state, void *site_state, char *err, size_t errlen);
    /* NULL-terminated further adapter_config.json peft_type values this plugin serves (besides
     * peft_type), or NULL */
    const char *const *also_serves;
    /* A JSON object (text) that plugin-check lays over its sample config, before --config:
     * values the method needs on the checker's tiny models (VB-LoRA's vector_length, which
     * PEFT's default 256 makes too long for a 32-wide layer), or NULL */
    const char *check_config;

    /* ---- ABI 1.4: the method-specific parts of core operations (all optional) ---- */
    /* add_weighted_adapter's new config. cfg: a copy of the first source's config whose
     * target_modules is already the union of the sources'; srcs/names: the n sources' configs
     * and adapter names; weights as given; opts as for combine, with svd_rank the rank the user
     * asked for (0: the method's choice). Check the sources for this combination (ranks,
     * weights), write the new adapter's method fields into cfg (LoRA: r, lora_alpha, patterns),
     * and the rank the combination makes into opts "svd_rank". 0, or -1 with err (the host
     * reports it as PEFT_EINVAL). Without this entry the new config is cfg as given. */
    int (*combine_config)(peft_cfg *cfg, const peft_cfg *const *srcs, const char *const *names,
                          const double *weights, int n, peft_cfg *opts, char *err,
                          size_t errlen);
    /* peft_save_pretrained_convert (PiSSA/OLoRA -> plain LoRA): rewrite cfg, a copy of the
     * adapter's config, into the converted adapter's config (the host then sets
     * inference_mode), warning through host->warn; 0, or -1 with err refusing the conversion.
     * Both convert entries or neither: without them the host refuses the conversion. */
    int (*convert_config)(peft_cfg *cfg, char *err, size_t errlen);
    /* one tensor of the adapter's saved state dict: key its full saved key, cur its value,
     * initial the same key's tensor in the initial adapter file converted to f32 (NULL when that
     * file lacks the key). 1 with *out a new tensor (host->tensor_new; the host frees it) saved
     * under key, 0 to leave the key out, -1 with err. */
    int (*convert_tensor)(const char *key, const peft_tensor *cur, const peft_tensor *initial,
                          peft_tensor **out, char *err, size_t errlen);
    /* ---- ABI 1.4 too: the attention hook (PEFT_CAP_ATTENTION; required then) ---- */
    /* Called by the architecture for every attention module, after o_proj and before the
     * residual add, once per active adapter of the plugin (in the order added) while adapters
     * are enabled; not while they are disabled. x (B,T,C): the attention's input (the normed
     * hidden states); q (B,T,H*D): its queries as the attention uses them (q_proj output with
     * RoPE applied at the tokens' positions; with the KV cache only the T new tokens); out
     * (B,T,C): the attention output so far. Returns the new output (B,T,C) on g, `out` itself
     * when this module carries nothing of the adapter, or NULL after host->graph_set_error.
     * Record gradients through host ops or tape_push as forward does; x and q may require
     * grad (earlier layers' adapters). */
    peft_tensor *(*attn_forward)(void *adapter_state, peft_graph *g, const peft_attn_info *attn,
                                 peft_tensor *x, peft_tensor *q, peft_tensor *out);
    /* Prompt learning per task (multitask prompt tuning): like prompt_embeddings, (B, P, C) on
     * g for a batch whose row b belongs to task task_ids[b] (the inputs' task_ids, B values;
     * NULL when the inputs have none). When set, the host calls it instead of
     * prompt_embeddings. On task ids it cannot take: host->graph_set_error and NULL. */
    peft_tensor *(*prompt_embeddings_tasks)(void *state, peft_graph *g, int64_t B,
                                            const int32_t *task_ids);
} peft_tuner_vtable;

/* The smallest vtable the host accepts (ABI 1.0). */
#define PEFT_TUNER_VTABLE_MIN_SIZE (offsetof(peft_tuner_vtable, model_class) + sizeof(void *))

typedef const peft_tuner_vtable *(*peft_plugin_init_fn)(const peft_host_api *host, char *err,
                                                         size_t errlen);

/* The one symbol a plugin exports (defined by the plugin, never by libpeft): returns its vtable
 * (static storage) or NULL with a message in err. */
PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen);

#ifdef __cplusplus
}
#endif
#endif

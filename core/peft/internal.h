/* peft_internal.h — the PeftModel's insides, shared by core/peft_*.c (not public). */
#ifndef PEFT_INTERNAL_H
#define PEFT_INTERNAL_H

#include "peft/peft.h"
#include "core/model/site.h"
#include "core/tensor/graph_internal.h"
#include "core/tuner/alloc_guard.h"

struct peft_ctx {
    int code;       /* the last failure's PEFT_E* code (peft_errcode) */
    char err[2048];
    peft_rng rng;
    peft_progress_fn progress; /* peft_set_progress_handler, or NULL */
    void *progress_ud;
    peft_tokenize_fn tokenize; /* peft_set_tokenizer, or NULL */
    void *tokenize_ud;
};

/* the result of an architecture's forward (rc, err) on g: the graph's sticky error first (with
 * its code and message), else PEFT_EINVAL with err, else PEFT_OK; sets ctx's error */
int peft_forward_result(peft_ctx *ctx, const peft_graph *g, int rc, const char *err);

/* core/progress.c: reports one step of a long task to the context's handler (if any) */
void peft_progress(peft_ctx *ctx, const char *task, int64_t done, int64_t total, const char *item);

/* A base parameter made trainable by an adapter's `bias` setting. */
typedef struct peft_trainable_bias {
    peft_param *param;   /* borrowed from the base model */
    peft_site *site;     /* the site whose bias it is, or NULL */
    peft_adapter *owner; /* the adapter whose config asked for it */
} peft_trainable_bias;

/* modules_to_save: a base parameter with one trainable copy per adapter that asked for it.
 * The arch reads the live tensor (param->t); peft_mts_apply points its fields at the copy of
 * the active adapter, or back at the original when none is active or adapters are disabled. */
typedef struct peft_mts_copy {
    peft_adapter *owner;
    peft_tensor *t; /* owned f32 copy; its grad buffer exists from the start */
} peft_mts_copy;

typedef struct peft_mts {
    peft_param *param;       /* borrowed */
    char *module;            /* "classifier" (the param name minus its leaf) */
    const char *leaf;        /* "weight" (points into param->name) */
    peft_tensor original;    /* the fields of param->t as loaded */
    peft_mts_copy *copies;
    int n_copies;
} peft_mts;

/* ---- prompt learning (core/peft_prompt.c) ----
 * An adapter whose plugin has PEFT_CAP_PROMPT_LEARNING sits on no site: its state lives in a
 * slot here, and base->prompt points at `hooks` (forwarding to the one active such adapter)
 * while adapters are enabled. Such models name things as PEFT's prompt-learning PeftModel
 * does: trainable "prompt_encoder.<adapter>.<param>", saved "prompt_embeddings", and
 * modules_to_save under "base_model.<module>" (peft_key_prefix). In a mixed model the hooks and
 * the site chains are independent: layer adapters keep "base_model.model." and a prompt
 * adapter's saved folder is the one it would have alone (peft_saved_prefix). */
typedef struct peft_prompt_slot {
    peft_adapter *adapter; /* borrowed */
    void *state;           /* plugin-owned, freed with adapter->vt->destroy */
    peft_tensor *saved;    /* the last prompt_to_save() (owned): what saved state dicts hold */
    const int32_t *task_ids; /* the running forward's inputs' task_ids (borrowed; NULL outside
                                a forward or when the inputs have none) */
} peft_prompt_slot;

typedef struct peft_prompt_set {
    peft_prompt_slot **slots; /* each owned */
    int n, cap;
    peft_prompt_hooks hooks;  /* hooks.ud = the live slot */
    peft_base_model *hooked;  /* the base whose ->prompt points at hooks, or NULL */
} peft_prompt_set;

struct peft_model {
    peft_ctx *ctx;                 /* borrowed */
    peft_base_model *base;         /* owned */
    peft_adapter **adapters;       /* in the order added */
    int n_adapters, cap_adapters;
    int mixed;                     /* PeftMixedModel */
    int bare;                      /* inject_adapter_in_model: no "base_model.model." prefix */
    int training;
    peft_trainable_bias *biases;
    int n_biases, cap_biases;
    peft_mts *mts;
    int n_mts;
    peft_prompt_set prompt;        /* prompt-learning adapters (peft_prompt.c) */
    const struct peft_st_file *load_file; /* while load_adapter creates an adapter: its weights
                                           (borrowed), checked before memory is taken */
    peft_attn_hooks attn_hooks;    /* base->attn_hook while an attention-hook adapter is on */
};

/* ---- bounds on creating an adapter (core/peft/bounds.c) ---- */
/* the allocation guard's limits for creating one adapter on m (alloc_guard.h) */
void peft_inject_limits(const peft_model *m, size_t *max_one, size_t *max_total);
/* the error (PEFT_EINVAL) for a creation the guard g refused: what was asked, where, and the
 * config field that holds the refused size when one does */
int peft_inject_refused(peft_model *m, const peft_adapter *a, const peft_alloc_guard *g);
/* while loading (m->load_file): the saved tensors of a's state on site s against the file's
 * header; PEFT_OK, or PEFT_EINVAL naming the tensor, both shapes and the config field */
int peft_inject_check_file(peft_model *m, const peft_adapter *a, const peft_site *s, void *state);

/* ---- state-dict references (core/peft/refs.c) ----
 * A plugin's state_dict / adapter_state_dict answer, however many entries it has (the plugin
 * returns the count it needs, as snprintf; the buffer grows and asks again). */
typedef struct peft_refs {
    peft_param_ref local[32];
    peft_param_ref *v; /* local or heap */
    int n;
} peft_refs;
/* fills r from the adapter's state on one site (state != NULL) or from its adapter-level state
 * (state == NULL); 0, or -1 on OOM. Free with peft_refs_free. */
int peft_refs_get(peft_refs *r, const peft_adapter *a, void *state);
void peft_refs_free(peft_refs *r);
/* a ref that is a model parameter (counted, may train, has an in-memory name) */
static inline int peft_ref_is_param(const peft_param_ref *r)
{
    return !(r->flags & (PEFT_PARAM_BUFFER | PEFT_PARAM_SAVE_ONLY));
}
/* a ref written by save_pretrained and expected by a load */
static inline int peft_ref_is_saved(const peft_param_ref *r)
{
    return !(r->flags & PEFT_PARAM_NOT_SAVED);
}

/* the key prefix of tuner-layer names: "base_model.model." or "" for bare models */
const char *peft_key_prefix(const peft_model *m);
/* the prefix of owner's saved keys: peft_key_prefix, except for a prompt-learning adapter of a
 * mixed model, whose folder reads as if it were alone ("base_model.") */
const char *peft_saved_prefix(const peft_model *m, const peft_adapter *owner);
peft_adapter *peft_find_adapter(const peft_model *m, const char *name);
/* parse config text, check peft_type and fields against the plugin; returns a new adapter
 * record (not yet attached) or NULL with the ctx error set */
peft_adapter *peft_adapter_create(peft_model *m, const char *name, const char *config_json,
                                  const char *source);
void peft_adapter_free(peft_adapter *a);
/* attach a created adapter to every matching site; on failure nothing stays attached */
int peft_adapter_inject(peft_model *m, peft_adapter *a);
/* undo peft_adapter_inject: detach from every site, drop its biases and modules_to_save, then
 * free the adapter-level state */
void peft_adapter_uninject(peft_model *m, peft_adapter *a);
/* after a load wrote into a's tensors: the plugin's `loaded` on every site state, then on the
 * adapter-level state. 0, or PEFT_EPLUGIN with the ctx error set */
int peft_adapter_loaded(peft_model *m, peft_adapter *a);
/* host->site_bias_trainable (ABI 1.3): only while an adapter is being created on this thread */
peft_tensor *peft_host_site_bias_trainable(const peft_site_info *site, char *err, size_t errlen);
/* add_adapter with `source` (a file path or "adapter config") named in errors */
int peft_add_adapter_from(peft_model *m, const char *name, const char *config_json,
                          const char *source, peft_adapter **out);
/* requires_grad on an adapter's parameters (and its trainable biases) */
void peft_adapter_set_trainable(peft_model *m, peft_adapter *a, int trainable);
/* does module `name` (a site) match the adapter's target rules? 1/0, -1 bad regex (err set) */
int peft_target_matches(peft_model *m, const json_t *cfg, const peft_site *s);

/* modules_to_save (core/modules_to_save.c) */
int peft_mts_add(peft_model *m, peft_adapter *a);       /* per the adapter's config */
void peft_mts_apply(peft_model *m);                      /* live tensors follow the active set */
void peft_mts_drop(peft_model *m, peft_adapter *a);      /* delete_adapter */
void peft_mts_release(peft_model *m, int keep_active);   /* unload: original or active copy stays */
void peft_mts_set_trainable(peft_model *m, peft_adapter *a, int on);

/* attention-hook methods (core/peft/attn.c, PEFT_CAP_ATTENTION) */
int peft_adapter_is_attn(const peft_adapter *a);
int peft_model_has_attn(const peft_model *m); /* some adapter of m is one */
/* adapter_init over the model's attention modules and base->attn_hook set; refuses mixed models,
 * other methods' adapters and architectures without attention modules. 0 or ctx error */
int peft_attn_inject(peft_model *m, peft_adapter *a);

/* prompt learning (core/peft_prompt.c) */
int peft_adapter_is_prompt(const peft_adapter *a);     /* its plugin is prompt learning */
int peft_model_is_prompt(const peft_model *m);         /* its adapters are */
/* PEFT's _prepare_prompt_learning_config: fills num_layers, token_dim, num_attention_heads
 * (from the model's config.json) and num_transformer_submodules (from task_type) when absent
 * or null, before the plugin parses the config. 0 or PEFT_EINVAL naming source and field. */
int peft_prompt_prepare_config(peft_model *m, json_t *cfg, const char *source);
/* creates the adapter's prompt state (prompt_init) and its task head copies; on failure
 * nothing stays attached */
int peft_prompt_inject(peft_model *m, peft_adapter *a);
void peft_prompt_uninject(peft_model *m, peft_adapter *a); /* frees the state, drops copies */
/* base->prompt follows the active prompt-learning adapter (none when disabled); refuses
 * (PEFT_EINVAL) more than one active */
int peft_prompt_apply(peft_model *m);
void peft_prompt_release(peft_model *m);
/* the inputs' task_ids (B values, borrowed) for the forward about to run, NULL after it */
void peft_prompt_task_ids(peft_model *m, const int32_t *task_ids);                    /* frees every slot, unhooks */
/* the adapter's plugin tensors (vt->state_dict; memory_name relative to PEFT's
 * "prompt_encoder.<adapter>."), up to max; returns the count (0 for other adapters) */
int peft_prompt_params(const peft_model *m, const peft_adapter *a, peft_param_ref *refs, int max);
/* get_prompt_embedding_to_save, refreshed into the slot's `saved` tensor; *out borrowed, valid
 * until the adapter goes. 0, or an error code with the ctx error set */
int peft_prompt_saved(peft_model *m, peft_adapter *a, peft_tensor **out);
/* hands the slot's `saved` tensor (just overwritten from a file) to prompt_load */
int peft_prompt_load_saved(peft_model *m, peft_adapter *a, const char *path);

/* saving (core/peft_io.c) */
/* text file written atomically (tmp, fsync, rename); 0, or -1 with err naming the path */
/* mixed models (core/peft_mixed.c): dir/peft_mixed.json for the adapters just saved (selected,
 * or every adapter when NULL), atomically */
int peft_mixed_write_manifest(peft_model *m, const char *dir, const char *const *selected,
                              int n_selected);

#endif

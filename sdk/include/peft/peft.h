/* peft.h — libpeft's public API: PEFT's PeftModel in C.
 *
 * Naming follows Hugging Face PEFT: peft_get_peft_model, peft_add_adapter, peft_set_adapter,
 * peft_save_pretrained, peft_from_pretrained, peft_merge_and_unload, peft_get_model_status...
 *
 * Errors: functions return PEFT_OK (0) or a negative PEFT_E* code (peft/status.h) and leave
 * the code and a message on the context, read with peft_errcode(ctx) / peft_errmsg(ctx). Inside
 * a step the graph keeps the first failure (peft_graph_errcode / peft_graph_error, graph.h):
 * an op out of arena memory or a plugin's own failure reaches the caller of peft_model_forward
 * and peft_graph_backward with its own code and message. The library never prints, never exits.
 * Ownership: whoever calls *_new / *_load / a function returning an object through
 * an out-pointer frees it with the matching *_free, unless stated otherwise. Borrowed pointers
 * are marked as such.
 * Thread safety: one context and the models made with it are used by one thread at a time;
 * different contexts may run in different threads.
 */
#ifndef PEFT_H
#define PEFT_H

#include "peft/export.h"

#include <stdint.h>
#include <stdio.h>
#include "peft/model.h"
#include "peft/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of these headers; peft_libversion() / peft_libversion_number() give the library's
 * own, so that a program can check at run time that it runs on the libpeft it was built for
 * (as sqlite3_libversion). PEFT_VERSION_NUMBER is major * 1000000 + minor * 1000 + patch. The
 * shared library's SONAME is libpeft.so.1: it changes only when the ABI breaks. */
#define PEFT_VERSION "0.1.0"
#define PEFT_VERSION_NUMBER 1000

/* PEFT_OK and the PEFT_E* codes: peft/status.h */

typedef struct peft_ctx peft_ctx;
typedef struct peft_model peft_model;

/* ---- version ---- */
PEFT_API const char *peft_libversion(void); /* static string, PEFT_VERSION of the library */
PEFT_API int peft_libversion_number(void);  /* PEFT_VERSION_NUMBER of the library */

/* ---- context ---- */
/* A context: the last error, the seeded RNG. Free with peft_ctx_free. */
PEFT_API peft_ctx *peft_ctx_new(uint64_t seed);
PEFT_API void peft_ctx_free(peft_ctx *ctx);
PEFT_API const char *peft_errmsg(const peft_ctx *ctx); /* borrowed; "" when no error */
/* the code of the last failure on ctx (what that call returned), PEFT_OK when none yet or after
 * peft_clear_error */
PEFT_API int peft_errcode(const peft_ctx *ctx);
PEFT_API void peft_clear_error(peft_ctx *ctx);
PEFT_API peft_rng *peft_ctx_rng(peft_ctx *ctx);        /* borrowed */
/* sets the code and message (printf-style) and returns code: for libpeft's own modules, and for
 * applications that report their own failures the same way */
PEFT_API int peft_set_error(peft_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- base model ---- */
/* Loads a Hugging Face model directory: config.json + model.safetensors (or
 * model.safetensors.index.json shards). *out is owned by the caller (peft_base_model_free)
 * until handed to peft_get_peft_model. PEFT_OK, or PEFT_EIO (no such directory, no config.json,
 * no weights, unreadable), PEFT_EFORMAT (malformed content), PEFT_EINVAL (empty path),
 * PEFT_ENOMEM, with the message naming the file and problem on ctx. */
PEFT_API int peft_load_base_model(peft_ctx *ctx, const char *dir, peft_base_model **out);
/* peft_load_base_model with options (peft_load_options, model.h; NULL = the defaults).
 * Quantized at load: every linear layer but the output head (lm_head / score / classifier /
 * qa_outputs, tied embeddings) and the llm_int8_skip_modules of quantization_config. */
PEFT_API int peft_load_base_model_ex(peft_ctx *ctx, const char *dir, const peft_load_options *opts,
                                     peft_base_model **out);
/* A weight-free model from a config.json alone (parameter counts, PEFT's "meta" device): every
 * weight is a zero-page mapping that costs no memory until written. task_type (e.g. "SEQ_CLS",
 * or NULL for config.json's architectures[0]) picks the head class as PEFT's task models do.
 * Forward passes run on zeros; use it to count and inspect. PEFT_OK, or PEFT_EIO (no such
 * file), PEFT_EFORMAT (malformed config), PEFT_EINVAL (no head of task_type for this
 * model_type), PEFT_ENOMEM, with the message on ctx. */
PEFT_API int peft_load_base_model_meta(peft_ctx *ctx, const char *config_path, const char *task_type,
                                       peft_base_model **out);

/* ---- creating a PEFT model ---- */
/* Wraps base (ownership moves into the model; on failure it stays the caller's) with a new
 * adapter `adapter_name` (NULL = "default") described by config_json (adapter_config.json text:
 * peft_type, task_type and the method's fields). mixed != 0 makes a PeftMixedModel (adapters
 * of several methods). */
PEFT_API int peft_get_peft_model(peft_ctx *ctx, peft_base_model *base, const char *config_json,
                                 const char *adapter_name, int mixed, peft_model **out);
/* PEFT's inject_adapter_in_model: adapters only, no PeftModel wrapper (state-dict keys have no
 * "base_model.model." prefix, no modules_to_save). Ownership of base moves into *out (on
 * failure it stays the caller's). */
PEFT_API int peft_inject_adapter_in_model(peft_ctx *ctx, peft_base_model *base, const char *config_json,
                                          const char *adapter_name, peft_model **out);
/* Loads an adapter directory (adapter_config.json + adapter_model.safetensors). */
PEFT_API int peft_from_pretrained(peft_ctx *ctx, peft_base_model *base, const char *adapter_dir,
                                  const char *adapter_name, int is_trainable, peft_model **out);
/* Frees the model and its base. NULL ok. */
PEFT_API void peft_model_free(peft_model *m);

/* ---- adapters ---- */
PEFT_API int peft_add_adapter(peft_model *m, const char *adapter_name, const char *config_json);
PEFT_API int peft_load_adapter(peft_model *m, const char *adapter_dir, const char *adapter_name,
                               int is_trainable);
PEFT_API int peft_set_adapter(peft_model *m, const char *adapter_name);
PEFT_API int peft_set_adapters(peft_model *m, const char *const *names, int n); /* several active */
PEFT_API int peft_delete_adapter(peft_model *m, const char *adapter_name);
PEFT_API int peft_disable_adapter(peft_model *m); /* base model outputs until peft_enable_adapter */
PEFT_API int peft_enable_adapter(peft_model *m);
PEFT_API int peft_set_adapter_scale(peft_model *m, const char *adapter_name, double mult);
/* number of adapters and their names in the order added (borrowed) */
PEFT_API int peft_adapter_count(const peft_model *m);
PEFT_API const char *peft_adapter_name(const peft_model *m, int i);
PEFT_API peft_ctx *peft_model_ctx(peft_model *m); /* borrowed */

/* ---- saving ---- */
/* Writes adapter_config.json + adapter_model.safetensors to dir ("default") or dir/<name>
 * (other adapters), atomically as a set: every file (and a mixed model's manifest) goes to
 * "<dir>.tmp.<pid>", which replaces dir in one swap; other entries of dir are kept and
 * leftovers of killed saves removed. selected: NULL = every adapter. is_main_process == 0 writes
 * nothing and succeeds (distributed runs). */
PEFT_API int peft_save_pretrained(peft_model *m, const char *dir, const char *const *selected,
                                  int n_selected, int is_main_process);

/* ---- parameters and state dicts ---- */
PEFT_API peft_base_model *peft_get_base_model(peft_model *m); /* borrowed */
PEFT_API int peft_get_nb_trainable_parameters(const peft_model *m, int64_t *trainable, int64_t *all);
/* PEFT's exact line: "trainable params: 1,024 || all params: 32,640 || trainable%: 3.1373" */
PEFT_API int peft_format_trainable_parameters(const peft_model *m, char *buf, size_t len);
PEFT_API void peft_print_trainable_parameters(const peft_model *m, FILE *out);

/* A named list of tensors. names owned by the state dict; tensors borrowed from the model
 * (valid until the model changes). */
typedef struct peft_state_dict {
    size_t n;
    char **names;
    peft_tensor **tensors;
} peft_state_dict;
PEFT_API void peft_state_dict_free(peft_state_dict *sd);
/* PEFT's saved key names (base_model.model.<module>.lora_A.weight, adapter name stripped) for
 * one adapter (NULL = "default"). */
PEFT_API int peft_get_peft_model_state_dict(peft_model *m, const char *adapter_name, peft_state_dict **out);
/* Every parameter that requires grad, under PEFT's in-memory names
 * (base_model.model.<module>.lora_A.default.weight), in named_parameters() order. */
PEFT_API int peft_trainable_parameters(peft_model *m, peft_state_dict **out);
/* Copies tensors from a safetensors file into the adapter by saved key names (or in-memory
 * names when memory_names != 0). Unknown keys and shape mismatches are errors naming both. */
PEFT_API int peft_set_peft_model_state_dict(peft_model *m, const char *safetensors_path,
                                            const char *adapter_name, int memory_names);

/* ---- merging ---- */
/* Folds the active adapters (or names[0..n)) into the base weights. safe != 0 checks every
 * merged weight for NaN/Inf on a copy before committing. */
PEFT_API int peft_merge_adapter(peft_model *m, const char *const *names, int n, int safe);
PEFT_API int peft_unmerge_adapter(peft_model *m);
/* merge then drop every adapter; returns the base model in *out and frees m */
PEFT_API int peft_merge_and_unload(peft_model *m, int safe, const char *const *names, int n,
                                   peft_base_model **out);
/* drops every adapter without merging: the base is bit-exactly as loaded; frees m */
PEFT_API int peft_unload(peft_model *m, peft_base_model **out);

/* ---- status (PEFT's TunerModelStatus / TunerLayerStatus as JSON text; caller frees) ---- */
PEFT_API int peft_get_model_status(peft_model *m, char **json_out);
PEFT_API int peft_get_layer_status(peft_model *m, char **json_out);

/* ---- precision and model cards ---- */
/* PEFT's cast_mixed_precision_params: every frozen base parameter to dtype (PEFT_DTYPE_BF16 or
 * _F16; kernels convert to f32 as they read), trainable parameters stay f32. Refused while
 * adapters are merged. */
PEFT_API int peft_cast_mixed_precision_params(peft_model *m, int32_t dtype);
/* PEFT's prepare_model_for_kbit_training on a base model (before get_peft_model): every base
 * parameter frozen; the 1-D parameters (norms, biases) in f32 (the embeddings and the head stay
 * in their storage dtype: the kernels compute in f32 either way, so the numbers are PEFT's); and
 * with use_gradient_checkpointing, the input-embedding outputs require grad
 * (enable_input_require_grads) and gradient checkpointing is on (with the chunked loss). */
PEFT_API int peft_prepare_model_for_kbit_training(peft_ctx *ctx, peft_base_model *b,
                                         int use_gradient_checkpointing);
/* transformers' gradient_checkpointing_enable / _disable: per-block recomputation in backward,
 * and the causal-LM training loss over row chunks (no full logits; the forward then returns
 * the loss without logits) */
PEFT_API void peft_gradient_checkpointing_enable(peft_base_model *b, int on);
/* The chunked causal-LM training loss alone, without checkpointing: while recording with labels
 * (and a frozen, adapter-free head), the loss is computed over row chunks of the logits and the
 * forward returns the loss without logits; the full (B, T, vocab) logits and their gradient are
 * never held. Same loss and gradients as the full loss up to float summation order. Off by
 * default; peft_gradient_checkpointing_enable turns it on or off with checkpointing. */
PEFT_API void peft_chunked_loss_enable(peft_base_model *b, int on);
/* PEFT's create_or_update_model_card: dir/README.md with library_name: peft, base_model and a
 * "Framework versions" line, keeping what a user already wrote there. Atomic. */
PEFT_API int peft_create_or_update_model_card(peft_model *m, const char *dir);

/* ---- running ---- */
/* forward (and loss if labels) on graph g; peft_graph_set_recording(g, 1) first for a backward
 * afterwards */
PEFT_API int peft_model_forward(peft_model *m, peft_graph *g, const peft_model_inputs *in,
                                peft_model_outputs *out);
/* Mixed-batch inference: row b of the batch uses adapter row_adapters[b] ("__base__" = none),
 * whatever the active set, in one forward with one grouped call per adapter and layer. Layer
 * adapters only; refused while adapters are merged. */
PEFT_API int peft_model_forward_rows(peft_model *m, peft_graph *g, const peft_model_inputs *in,
                                     const char *const *row_adapters, peft_model_outputs *out);
/* train / eval mode (dropout) for the next forwards */
PEFT_API void peft_model_train(peft_model *m, int training);
/* After each optimizer update, before the gradients are zeroed: the plugins' training hooks
 * (ABI 1.3 step_end, e.g. AdaLoRA's update_and_allocate) for every trainable adapter. step: the
 * 0-based number of the update just made; total_steps: the planned count (0 if unknown).
 * PEFT_OK, or PEFT_EPLUGIN with the plugin's message. */
PEFT_API int peft_model_step_end(peft_model *m, int64_t step, int64_t total_steps);

/* ---- progress of long tasks ---- */
/* The library never prints: long tasks (merge_adapter, merge_and_unload) report their progress
 * to this handler, called on the calling thread once per layer with the task name
 * ("merge_and_unload"), done (1..total), total and the layer name (borrowed, valid during the
 * call). fn == NULL removes the handler. ud is passed back untouched. */
typedef void (*peft_progress_fn)(void *ud, const char *task, int64_t done, int64_t total,
                                 const char *item);
PEFT_API void peft_set_progress_handler(peft_ctx *ctx, peft_progress_fn fn, void *ud);

/* ---- text for methods that initialise from it (prompt tuning's TEXT init) ----
 * The core links no tokenizer: an application that wants text-initialised adapters registers
 * one. fn tokenizes text (NUL-terminated) with the tokenizer at `where` (a model directory or a
 * tokenizer.json), special tokens added, into *ids (*n of them, freed by the caller with free());
 * it returns PEFT_OK, or a PEFT_E* code with its message set on ctx (peft_set_error), the
 * context it was registered on. The tokenizer library's peft_tokenizer_text_hook
 * (peft/tokenizer.h) is such a function. fn == NULL removes it. */
typedef int (*peft_tokenize_fn)(void *ud, peft_ctx *ctx, const char *where, const char *text,
                                int32_t **ids, size_t *n);
PEFT_API void peft_set_tokenizer(peft_ctx *ctx, peft_tokenize_fn fn, void *ud);

/* ---- mixed models: several methods on one model, saved and loaded as a whole ----
 * A PeftMixedModel (peft_get_peft_model(..., mixed=1)) holds adapters of any methods whose
 * plugins say PEFT_CAP_MIXABLE on the same layers (LoRA + LoHa + IA3), plus prompt-learning
 * adapters (prompt or prefix tuning: they act through the model's prompt hooks, independent of
 * the layers; at most one of them active). On a layer, adapters run in the order added.
 *
 * peft_save_pretrained on a mixed model writes one folder per adapter in PEFT's layout ("default"
 * in dir itself, others in dir/<name>; each folder is an ordinary PEFT adapter) and then, last
 * and atomically, the manifest dir/peft_mixed.json:
 *   {"format": "libpeft-mixed", "format_version": 1,
 *    "adapters": [{"name": "lora", "peft_type": "LORA", "folder": "lora", "scale": 1.0}, ...],
 *    "active_adapters": ["lora", ...], "enabled": true}
 * with the adapters in the order added (folder "." for "default"), the active set, each adapter's
 * runtime scale (peft_set_adapter_scale) and whether adapters are enabled.
 *
 * Status of mixed models (an extension: PEFT's own mixed model has none): one layer entry per
 * adapted layer, its module_type the layer types of its adapters in the order added joined by
 * "+" ("lora.Linear+loha.Linear"), its available/requires_grad/devices/merged fields covering
 * every adapter on the layer; a layer with one method reads exactly as PEFT's get_layer_status.
 * Prompt-learning adapters have no layers and PEFT no status for them: the layer fields leave
 * them out, and get_model_status lists them in a last field, "prompt_learning_adapters":
 * {"<name>": {"peft_type": ..., "active": ..., "requires_grad": ...}} (present only then). */

/* Loads a mixed model. When dir holds peft_mixed.json: every adapter it lists, from its folder,
 * in the manifest's order, with its active set, scales and enabled flag (adapter_name must be
 * NULL: the names come from the manifest); identical outputs to the model that was saved.
 * Otherwise: the one adapter in dir (or dir/<adapter_name>) as adapter_name (NULL = "default")
 * in a new mixed model, as PEFT's PeftMixedModel.from_pretrained; more with peft_load_adapter.
 * is_trainable != 0: the active adapters' parameters require grad. Ownership of base moves
 * into *out on success (the caller keeps it on failure). Errors: PEFT_EFORMAT naming the
 * manifest and the entry (adapters[i] 'name') for a malformed manifest or a folder whose
 * adapter_config.json has another peft_type, PEFT_EIO when a folder or file is missing. */
PEFT_API int peft_mixed_from_pretrained(peft_ctx *ctx, peft_base_model *base, const char *dir,
                                        const char *adapter_name, int is_trainable, peft_model **out);
/* 1 when dir holds a mixed model's manifest (dir/peft_mixed.json), else 0 */
PEFT_API int peft_is_mixed_dir(const char *dir);
/* is adapter i (in the order added) in the active set? 1/0 (0 for a bad index) */
PEFT_API int peft_adapter_active(const peft_model *m, int i);
/* 1 for a PeftMixedModel */
PEFT_API int peft_model_is_mixed(const peft_model *m);

#ifdef __cplusplus
}
#endif
#endif

/* peft_prompt.c — prompt-learning adapters in the PEFT layer (PEFT 0.13.2's PeftModel with a
 * PromptLearningConfig): the model facts filled into the config, the adapter's state made by
 * its plugin's prompt_init, the task head copies PEFT adds, and base->prompt, the hooks the
 * architectures call, forwarding to the one active prompt-learning adapter. A mixed model may
 * hold prompt-learning adapters beside layer adapters (the hooks do not touch the layers).
 *
 * The core never names a method here either: it knows the plugin only through prompt_init
 * (with the application's tokenizer as a callback: the plugin reads its own init fields),
 * prompt_embeddings[_tasks] / prefix_kv, prompt_to_save / prompt_load and prompt_num_virtual. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/io/cfg.h"
#include "core/peft/internal.h"
#include "core/tuner/plugin_call.h"
#include <sys/stat.h>

int peft_adapter_is_prompt(const peft_adapter *a)
{
    return a && (a->vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
}

/* a prompt-learning PeftModel; a mixed model never is one, whatever its adapters */
int peft_model_is_prompt(const peft_model *m)
{
    return !m->mixed && m->n_adapters > 0 && peft_adapter_is_prompt(m->adapters[0]);
}

/* ---- the config: PEFT's _prepare_prompt_learning_config ----------------------------------- */

/* the first of `keys` that config.json holds as an integer (PEFT looks at config.to_dict()) */
static int model_int(const peft_base_model *b, const char *const *keys, int64_t *out)
{
    for (; *keys; keys++) {
        json_t *v = json_object_get(b->config, *keys);
        if (v && json_is_integer(v)) {
            *out = (int64_t)json_integer_value(v);
            return 1;
        }
    }
    return 0;
}

static int fill_field(peft_model *m, json_t *cfg, const char *field, const char *const *keys,
                      int64_t fallback, const char *source)
{
    json_t *v = json_object_get(cfg, field);
    if (v && !json_is_null(v)) return PEFT_OK; /* given: the plugin checks it */
    int64_t n = 0;
    if (!model_int(m->base, keys, &n)) n = fallback; /* a config.json without them: the arch's */
    if (n <= 0) {
        char list[256] = "";
        for (const char *const *k = keys; *k; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k == keys ? "" : ", ", *k);
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "%s: please specify '%s' in the adapter config: %s/config.json has "
                              "none of %s",
                              source, field, m->base->dir ? m->base->dir : "the model", list);
    }
    json_object_set_new(cfg, field, json_integer(n));
    return PEFT_OK;
}

int peft_prompt_prepare_config(peft_model *m, json_t *cfg, const char *source)
{
    static const char *const layers[] = {"num_hidden_layers", "num_layers", "n_layer", NULL};
    static const char *const dims[] = {"hidden_size", "n_embd", "d_model", NULL};
    static const char *const heads[] = {"num_attention_heads", "n_head", "num_heads",
                                        "encoder_attention_heads", NULL};
    const peft_base_model *b = m->base;
    int rc = fill_field(m, cfg, "num_layers", layers, b->n_layers, source);
    if (!rc) rc = fill_field(m, cfg, "token_dim", dims, b->hidden_size, source);
    if (!rc)
        rc = fill_field(m, cfg, "num_attention_heads", heads,
                        b->head_dim > 0 ? b->hidden_size / b->head_dim : 0, source);
    if (rc) return rc;
    /* PeftModel._setup_prompt_encoder: 2 for SEQ_2_SEQ_LM, else 1 */
    json_t *v = json_object_get(cfg, "num_transformer_submodules");
    if (!v || json_is_null(v)) {
        const char *task = json_string_value(json_object_get(cfg, "task_type"));
        json_object_set_new(cfg, "num_transformer_submodules",
                            json_integer(task && !strcmp(task, "SEQ_2_SEQ_LM") ? 2 : 1));
    }
    return PEFT_OK;
}

/* ---- the hooks the architectures call ------------------------------------------------------ */

static peft_tensor *hook_virtual_tokens(void *ud, peft_graph *g, int64_t B)
{
    peft_prompt_slot *s = ud;
    const peft_tuner_vtable *vt = s->adapter->vt;
    if (vt->prompt_embeddings_tasks)
        return PEFT_PLUGIN_CALL(vt, "prompt_embeddings_tasks", s->adapter->name, NULL,
                                vt->prompt_embeddings_tasks(s->state, g, B, s->task_ids));
    return PEFT_PLUGIN_CALL(vt, "prompt_embeddings", s->adapter->name, NULL,
                            vt->prompt_embeddings(s->state, g, B));
}

void peft_prompt_task_ids(peft_model *m, const int32_t *task_ids)
{
    for (int i = 0; i < m->prompt.n; i++) m->prompt.slots[i]->task_ids = task_ids;
}

static int hook_layer_prefix(void *ud, peft_graph *g, int stack, int layer, int64_t B,
                             peft_tensor **k, peft_tensor **v)
{
    peft_prompt_slot *s = ud;
    return PEFT_PLUGIN_CALL(s->adapter->vt, "prefix_kv", s->adapter->name, NULL,
                            s->adapter->vt->prefix_kv(s->state, g, stack, layer, B, k, v));
}

static void unhook(peft_model *m)
{
    peft_prompt_set *p = &m->prompt;
    if (p->hooked && p->hooked->prompt == &p->hooks) p->hooked->prompt = NULL;
    p->hooked = NULL;
    memset(&p->hooks, 0, sizeof p->hooks);
}

int peft_prompt_apply(peft_model *m)
{
    peft_prompt_set *p = &m->prompt;
    peft_prompt_slot *live = NULL;
    for (int i = 0; i < p->n; i++) {
        if (!p->slots[i]->adapter->active) continue;
        if (live)
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "adapters '%s' and '%s' are both active: only one "
                                  "prompt-learning adapter can be active at a time",
                                  live->adapter->name, p->slots[i]->adapter->name);
        live = p->slots[i];
    }
    if (!live || !m->base || m->base->adapters_disabled) {
        unhook(m);
        return PEFT_OK;
    }
    const peft_tuner_vtable *vt = live->adapter->vt;
    p->hooks.ud = live;
    p->hooks.n_virtual = PEFT_PLUGIN_CALL(vt, "prompt_num_virtual", live->adapter->name, NULL,
                                          vt->prompt_num_virtual(live->state));
    p->hooks.virtual_tokens = vt->prompt_embeddings ? hook_virtual_tokens : NULL;
    p->hooks.layer_prefix = vt->prefix_kv ? hook_layer_prefix : NULL;
    m->base->prompt = &p->hooks;
    p->hooked = m->base;
    return PEFT_OK;
}

/* ---- adapter state ------------------------------------------------------------------------- */

static peft_prompt_slot *find_slot(const peft_model *m, const peft_adapter *a, int *index)
{
    for (int i = 0; i < m->prompt.n; i++)
        if (m->prompt.slots[i]->adapter == a) {
            if (index) *index = i;
            return m->prompt.slots[i];
        }
    return NULL;
}

static void slot_free(peft_prompt_slot *s)
{
    if (!s) return;
    if (s->state)
        PEFT_PLUGIN_CALL_VOID(s->adapter->vt, "destroy", s->adapter->name, NULL,
                              s->adapter->vt->destroy(s->state));
    peft_tensor_free(s->saved);
    free(s);
}

/* PEFT's PeftModelForSequenceClassification / ...TokenClassification add "classifier" and
 * "score", ...QuestionAnswering "qa_outputs", to the model's modules_to_save; prompt-learning
 * configs have no such field, so the list only lives while the copies are made */
static int add_task_heads(peft_model *m, peft_adapter *a)
{
    const char *task = json_string_value(json_object_get(a->config, "task_type"));
    static const char *const cls[] = {"classifier", "score", NULL}, *const qa[] = {"qa_outputs", NULL};
    const char *const *heads = !task ? NULL
                               : (!strcmp(task, "SEQ_CLS") || !strcmp(task, "TOKEN_CLS")) ? cls
                               : !strcmp(task, "QUESTION_ANS") ? qa : NULL;
    if (!heads) return PEFT_OK;
    json_t *list = json_array();
    for (; *heads; heads++) json_array_append_new(list, json_string(*heads));
    json_object_set_new(a->config, "modules_to_save", list);
    int rc = peft_mts_add(m, a);
    json_object_del(a->config, "modules_to_save");
    return rc;
}

/* peft_prompt_info.tokenize (ABI 1.4): the application's tokenizer (peft_set_tokenizer) with
 * `where` when that exists on disk, else with the base model's directory. The plugin reads its
 * own fields (which text, which tokenizer) and decides what a failure means. */
static int info_tokenize(void *ud, const char *where, const char *text, int32_t **ids,
                         int32_t *n, char *err, size_t errlen)
{
    peft_model *m = ud;
    peft_ctx *ctx = m->ctx;
    struct stat st;
    size_t count = 0;
    int rc = -1;
    *ids = NULL;
    *n = 0;
    if (!text) {
        snprintf(err, errlen, "no text given");
        return -1;
    }
    if (where && *where && stat(where, &st) == 0)
        rc = ctx->tokenize(ctx->tokenize_ud, ctx, where, text, ids, &count);
    if (rc && m->base->dir) {
        free(*ids);
        *ids = NULL;
        rc = ctx->tokenize(ctx->tokenize_ud, ctx, m->base->dir, text, ids, &count);
    }
    if (rc) snprintf(err, errlen, "%s", peft_errmsg(ctx)); /* the plugin ABI's buffer */
    if (!rc && count > (size_t)INT32_MAX) {
        snprintf(err, errlen, "the text gives %zu tokens", count);
        rc = -1;
    }
    if (rc) {
        free(*ids);
        *ids = NULL;
        return -1;
    }
    *n = (int32_t)count;
    return 0;
}

int peft_prompt_inject(peft_model *m, peft_adapter *a)
{
    const peft_base_model *b = m->base;
    const char *mt = b->arch->model_type;
    if (m->bare)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "%s is a prompt-learning method: inject_adapter_in_model does not "
                              "support prompt learning (as PEFT), use get_peft_model",
                              a->vt->peft_type);
    /* a mixed model takes both: the hooks and the layer chains are independent */
    for (int i = 0; !m->mixed && i < m->n_adapters; i++)
        if (m->adapters[i] != a && !peft_adapter_is_prompt(m->adapters[i]))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "adapter '%s' (%s) is prompt learning and adapter '%s' (%s) is "
                                  "not: they cannot be combined on one model (they can on a mixed "
                                  "model, peft_get_peft_model(..., mixed=1))",
                                  a->name, a->vt->peft_type, m->adapters[i]->name,
                                  m->adapters[i]->vt->peft_type);
    if (b->hidden_size <= 0)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "%s is a prompt-learning method and the %s architecture has no "
                              "prompt-learning hooks yet",
                              a->vt->peft_type, mt);
    if (a->vt->prefix_kv && b->no_past_key_values)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "adapter '%s': %s gives every attention layer past keys/values and "
                              "the %s model takes none: %s",
                              a->name, a->vt->peft_type, mt, b->no_past_key_values);
    peft_prompt_info info = {
        .struct_size = sizeof info,
        .model_type = mt,
        .hidden_size = b->hidden_size,
        .n_layers = b->n_layers,
        .n_kv_heads = b->n_kv_heads,
        .head_dim = b->head_dim,
        .is_encoder_decoder = b->is_encoder_decoder,
        .vocab_size = b->word_embeddings ? (int32_t)b->word_embeddings->shape[0] : 0,
        .word_embeddings = b->word_embeddings,
    };
    peft_prompt_set *p = &m->prompt;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 4;
        peft_prompt_slot **s = realloc(p->slots, (size_t)cap * sizeof *s);
        if (!s) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        p->slots = s;
        p->cap = cap;
    }
    peft_prompt_slot *slot = calloc(1, sizeof *slot);
    if (!slot) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    slot->adapter = a;
    if (m->ctx->tokenize) {
        info.tokenize = info_tokenize;
        info.tokenize_ud = m;
    }
    char err[1024] = "";
    peft_cfg pc = {a->config};
    slot->state = PEFT_PLUGIN_CALL(a->vt, "prompt_init", a->name, NULL,
                                   a->vt->prompt_init(a->parsed, &pc, &info, a->name, &m->ctx->rng, err, sizeof err));
    if (!slot->state) {
        free(slot);
        return peft_set_error(m->ctx, PEFT_EINVAL, "adapter '%s': %s", a->name,
                              err[0] ? err : "prompt_init failed");
    }
    p->slots[p->n++] = slot;
    int rc = add_task_heads(m, a);
    if (rc) {
        peft_prompt_uninject(m, a);
        return rc;
    }
    return PEFT_OK;
}

void peft_prompt_uninject(peft_model *m, peft_adapter *a)
{
    int i;
    peft_prompt_slot *s = find_slot(m, a, &i);
    if (s) {
        if (m->prompt.hooks.ud == s) unhook(m);
        memmove(&m->prompt.slots[i], &m->prompt.slots[i + 1],
                (size_t)(m->prompt.n - i - 1) * sizeof *m->prompt.slots);
        m->prompt.n--;
        slot_free(s);
    }
    peft_mts_drop(m, a);
}

void peft_prompt_release(peft_model *m)
{
    unhook(m);
    for (int i = 0; i < m->prompt.n; i++) slot_free(m->prompt.slots[i]);
    free(m->prompt.slots);
    m->prompt.slots = NULL;
    m->prompt.n = m->prompt.cap = 0;
}

int peft_prompt_params(const peft_model *m, const peft_adapter *a, peft_param_ref *refs, int max)
{
    peft_prompt_slot *s = find_slot(m, a, NULL);
    if (!s) return 0;
    int n = PEFT_PLUGIN_CALL(a->vt, "state_dict", a->name, NULL, a->vt->state_dict(s->state, refs, max));
    return n > max ? max : n < 0 ? 0 : n;
}

/* ---- saving and loading -------------------------------------------------------------------- */

int peft_prompt_saved(peft_model *m, peft_adapter *a, peft_tensor **out)
{
    peft_prompt_slot *s = find_slot(m, a, NULL);
    if (!s)
        return peft_set_error(m->ctx, PEFT_ENOTFOUND,
                              "adapter '%s' is not a prompt-learning adapter", a->name);
    peft_tensor *t = PEFT_PLUGIN_CALL(a->vt, "prompt_to_save", a->name, NULL, a->vt->prompt_to_save(s->state));
    if (!t)
        return peft_set_error(m->ctx, PEFT_ENOMEM,
                              "adapter '%s': out of memory computing prompt_embeddings", a->name);
    /* refreshed in place when the shape holds, so that earlier state dicts stay valid */
    int same = s->saved && s->saved->ndim == t->ndim && s->saved->numel == t->numel;
    for (int d = 0; same && d < t->ndim; d++) same = s->saved->shape[d] == t->shape[d];
    if (same) {
        memcpy(s->saved->data, t->data, (size_t)t->numel * sizeof(float));
        peft_tensor_free(t);
    } else {
        peft_tensor_free(s->saved);
        s->saved = t;
    }
    *out = s->saved;
    return PEFT_OK;
}

int peft_prompt_load_saved(peft_model *m, peft_adapter *a, const char *path)
{
    peft_prompt_slot *s = find_slot(m, a, NULL);
    if (!s || !s->saved)
        return peft_set_error(m->ctx, PEFT_ESTATE, "%s: adapter '%s' has no prompt_embeddings "
                              "to load into", path, a->name);
    char err[1024] = "";
    if (PEFT_PLUGIN_CALL(a->vt, "prompt_load", a->name, NULL,
                         a->vt->prompt_load(s->state, s->saved, err, sizeof err)))
        return peft_set_error(m->ctx, PEFT_EFORMAT, "%s: prompt_embeddings: %s", path,
                              err[0] ? err : "prompt_load failed");
    return PEFT_OK;
}

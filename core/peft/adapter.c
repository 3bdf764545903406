/* peft_adapter.c — one adapter record: parse and check its adapter_config.json against the
 * method's plugin, attach it to the sites its target rules pick (prompt-learning methods go to
 * core/peft_prompt.c instead), and the `bias` setting that makes base biases trainable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/io/cfg.h"
#include "core/peft/internal.h"
#include "core/tuner/plugin_call.h"
#include "peft/plugin_util.h"
#include "core/tuner/registry.h"
#include "peft/util.h"
#include "peft/warn.h"

static int check_known_fields(peft_model *m, const peft_tuner_vtable *vt, json_t *cfg,
                              const char *source)
{
    const char *key;
    json_t *v;
    json_object_foreach(cfg, key, v) {
        int known = 0;
        size_t nk = 0;
        for (const char *const *k = vt->config_keys; k && *k; k++, nk++)
            if (strcmp(*k, key) == 0) known = 1;
        const char *best = known ? NULL : peft_did_you_mean(key, vt->config_keys, nk);
        if (!known) {
            if (best)
                return peft_set_error(m->ctx, PEFT_EINVAL,
                                      "%s: unknown field '%s' for %s (did you mean '%s'?)", source,
                                      key, vt->peft_type, best);
            return peft_set_error(m->ctx, PEFT_EINVAL, "%s: unknown field '%s' for %s", source,
                                  key, vt->peft_type);
        }
    }
    return 0;
}

static int set_default_targets(peft_model *m, const peft_tuner_vtable *vt, json_t *cfg,
                               const char *source)
{
    json_t *t = json_object_get(cfg, "target_modules");
    if (t && !json_is_null(t)) {
        if (json_is_string(t)) return 0;
        if (!json_is_array(t))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "%s: target_modules must be a list of names or a regex string",
                                  source);
        size_t i;
        json_t *v;
        json_array_foreach(t, i, v) if (!json_is_string(v)) return peft_set_error(
            m->ctx, PEFT_EINVAL, "%s: target_modules[%zu] is not a string", source, i);
        return 0;
    }
    const char *mt = m->base->arch->model_type;
    const char *const *defs =
        vt->default_targets ? PEFT_PLUGIN_CALL(vt, "default_targets", NULL, NULL, vt->default_targets(mt)) : NULL;
    if (!defs)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "%s: target_modules is not set and %s has no default targets for "
                              "model_type '%s'; give target_modules",
                              source, vt->peft_type, mt);
    json_t *list = json_array();
    for (; *defs; defs++) json_array_append_new(list, json_string(*defs));
    json_object_set_new(cfg, "target_modules", list);
    return 0;
}

/* PEFT's task models add their head to modules_to_save: PeftModelForSequenceClassification
 * and ...TokenClassification "classifier" and "score", ...QuestionAnswering "qa_outputs" */
static int add_task_modules(json_t *cfg)
{
    const char *task = json_string_value(json_object_get(cfg, "task_type"));
    static const char *const cls[] = {"classifier", "score", NULL}, *const qa[] = {"qa_outputs", NULL};
    const char *const *heads = !task ? NULL
                               : (!strcmp(task, "SEQ_CLS") || !strcmp(task, "TOKEN_CLS")) ? cls
                               : !strcmp(task, "QUESTION_ANS") ? qa : NULL;
    if (!heads) return 0;
    json_t *list = json_object_get(cfg, "modules_to_save");
    if (!list || json_is_null(list)) {
        list = json_array();
        json_object_set_new(cfg, "modules_to_save", list);
    }
    if (!json_is_array(list)) return -1;
    for (; *heads; heads++) {
        int have = 0;
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) have |= json_is_string(v) && !strcmp(json_string_value(v), *heads);
        if (!have) json_array_append_new(list, json_string(*heads));
    }
    return 0;
}

peft_adapter *peft_adapter_create(peft_model *m, const char *name, const char *config_json,
                                  const char *source)
{
    json_error_t jerr;
    json_t *cfg = json_loads(config_json ? config_json : "", JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) {
        peft_set_error(m->ctx, PEFT_EFORMAT, "%s: invalid JSON at line %d column %d: %s", source,
                       jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(cfg)) {
        peft_set_error(m->ctx, PEFT_EFORMAT, "%s: the adapter config must be a JSON object", source);
        json_decref(cfg);
        return NULL;
    }
    json_t *jt = json_object_get(cfg, "peft_type");
    const char *type = json_string_value(jt);
    if (!type) {
        if (jt)
            peft_set_error(m->ctx, PEFT_EINVAL, "%s: field 'peft_type' must be a string (e.g. "
                           "\"LORA\"), got %s", source, json_is_null(jt) ? "null"
                           : json_is_integer(jt) || json_is_real(jt) ? "a number"
                           : json_is_boolean(jt) ? "a boolean" : json_is_array(jt) ? "a list" : "an object");
        else
            peft_set_error(m->ctx, PEFT_EINVAL, "%s: missing field 'peft_type' (e.g. \"LORA\")", source);
        json_decref(cfg);
        return NULL;
    }
    char err[1024] = "";
    const peft_tuner_vtable *vt = peft_registry_get_by_type(type, err, sizeof err);
    if (!vt) { /* the registry's message names the peft_type */
        peft_set_error(m->ctx, PEFT_EPLUGIN, "%s: %s", source, err);
        json_decref(cfg);
        return NULL;
    }
    peft_adapter *a = calloc(1, sizeof *a);
    if (!a) {
        json_decref(cfg);
        peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        return NULL;
    }
    a->name = strdup(name);
    a->source = strdup(source);
    if (!a->name || !a->source) {
        peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        peft_adapter_free(a);
        json_decref(cfg);
        return NULL;
    }
    a->vt = vt;
    a->config = cfg;
    a->scale_mult = 1.0;
    a->trainable_allowed = 1;
    /* prompt learning has no targets; its task heads are the model's, not the config's */
    const int prompt = (vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
    if (check_known_fields(m, vt, cfg, source) ||
        (prompt ? peft_prompt_prepare_config(m, cfg, source) : set_default_targets(m, vt, cfg, source))) {
        peft_adapter_free(a);
        return NULL;
    }
    if (!m->bare && !prompt && add_task_modules(cfg)) {
        peft_set_error(m->ctx, PEFT_EINVAL, "%s: modules_to_save must be a list of names", source);
        peft_adapter_free(a);
        return NULL;
    }
    if (!json_is_string(json_object_get(cfg, "base_model_name_or_path")))
        json_object_set_new(cfg, "base_model_name_or_path", json_string(m->base->dir));
    peft_cfg pc = {cfg};
    if (PEFT_PLUGIN_CALL(vt, "config_parse", name, NULL, vt->config_parse(&pc, &a->parsed, err, sizeof err))) {
        peft_set_error(m->ctx, PEFT_EINVAL, "%s: %s", source, err);
        a->parsed = NULL;
        peft_adapter_free(a);
        return NULL;
    }
    return a;
}

void peft_adapter_free(peft_adapter *a)
{
    if (!a) return;
    if (a->adapter_state) /* after the site states */
        PEFT_PLUGIN_CALL_VOID(a->vt, "adapter_destroy", a->name, NULL, a->vt->adapter_destroy(a->adapter_state));
    a->adapter_state = NULL;
    if (a->parsed) PEFT_PLUGIN_CALL_VOID(a->vt, "config_free", a->name, NULL, a->vt->config_free(a->parsed));
    json_decref(a->config);
    free(a->source);
    free(a->name);
    free(a);
}

static int add_bias(peft_model *m, peft_param *p, peft_site *s, peft_adapter *a)
{
    for (int i = 0; i < m->n_biases; i++)
        if (m->biases[i].param == p) return 0;
    for (int i = 0; i < m->n_mts; i++) /* a modules_to_save copy trains it already */
        if (m->mts[i].param == p) return 0;
    if (m->n_biases == m->cap_biases) {
        int cap = m->cap_biases ? m->cap_biases * 2 : 8;
        peft_trainable_bias *b = realloc(m->biases, (size_t)cap * sizeof *b);
        if (!b) return -1;
        m->biases = b;
        m->cap_biases = cap;
    }
    /* a trainable tensor must be writable f32 memory, never the read-only mapping */
    void *old;
    int32_t dt;
    int owned;
    if (peft_tensor_make_f32_owned(p->t, &old, &dt, &owned)) return -1;
    if (owned) free(old);
    p->t->flags |= PEFT_T_PARAM;
    m->biases[m->n_biases++] = (peft_trainable_bias){p, s, a};
    return 0;
}

static peft_param *param_of(peft_model *m, const peft_tensor *t)
{
    for (size_t i = 0; i < m->base->n_params; i++)
        if (m->base->params[i].t == t) return &m->base->params[i];
    return NULL;
}

/* `bias`: "none", "all" (every base parameter with "bias" in its name) or "<method>_only"
 * (the biases of the layers this adapter is on) */
static int apply_bias_setting(peft_model *m, peft_adapter *a)
{
    const char *bias = json_string_value(json_object_get(a->config, "bias"));
    if (!bias || strcmp(bias, "none") == 0) return 0;
    int all = strcmp(bias, "all") == 0;
    if (all) {
        for (size_t i = 0; i < m->base->n_params; i++)
            if (strstr(m->base->params[i].name, "bias")) {
                peft_site *owner = NULL;
                for (size_t j = 0; j < m->base->n_sites; j++)
                    if (m->base->sites[j]->info.bias == m->base->params[i].t) owner = m->base->sites[j];
                if (add_bias(m, &m->base->params[i], owner, a)) return -1;
            }
        return 0;
    }
    PEFT_EACH_SITE_ADAPTER(it, m->base, a) {
        if (!it.site->info.bias) continue;
        peft_param *p = param_of(m, it.site->info.bias);
        if (p && add_bias(m, p, it.site, a)) return -1;
    }
    return 0;
}

static void detach_everywhere(peft_model *m, peft_adapter *a)
{
    PEFT_EACH_SITE_ADAPTER(it, m->base, a) peft_site_detach(it.site, it.j);
}

static void list_rule(const json_t *t, char *buf, size_t len)
{
    char *s = json_dumps(t, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(buf, len, "%s", s ? s : "?");
    free(s);
}

static int inject_sites(peft_model *m, peft_adapter *a);

int peft_adapter_inject(peft_model *m, peft_adapter *a)
{
    int rc = inject_sites(m, a);
    if (rc && a->source) { /* name the config the adapter came from */
        char msg[sizeof m->ctx->err];
        snprintf(msg, sizeof msg, "%s", peft_errmsg(m->ctx));
        peft_set_error(m->ctx, rc, "%s: %s", a->source, msg);
    }
    return rc;
}

/* the adapter being created on this thread: host->site_bias_trainable acts for it */
static __thread struct {
    peft_model *m;
    peft_adapter *a;
} creating;

peft_tensor *peft_host_site_bias_trainable(const peft_site_info *site, char *err, size_t errlen)
{
    peft_model *m = creating.m;
    if (!m) {
        snprintf(err, errlen, "site_bias_trainable: only while an adapter is being created "
                              "(adapter_init, inject, inject_in)");
        return NULL;
    }
    peft_site *s = NULL;
    for (size_t i = 0; i < m->base->n_sites && !s; i++)
        if (&m->base->sites[i]->info == site) s = m->base->sites[i];
    if (!s) {
        snprintf(err, errlen, "site_bias_trainable: not a site of this model");
        return NULL;
    }
    if (!s->info.bias) {
        snprintf(err, errlen, "%s has no bias to train", s->info.name);
        return NULL;
    }
    peft_param *p = param_of(m, s->info.bias);
    if (!p || add_bias(m, p, s, creating.a)) {
        snprintf(err, errlen, "%s: out of memory making its bias trainable", s->info.name);
        return NULL;
    }
    return s->info.bias;
}

/* the sites a's target rules pick, each checked for mixability; *n of them in a new array */
static int pick_sites(peft_model *m, peft_adapter *a, peft_site ***out, int *n)
{
    peft_site **hit = calloc(m->base->n_sites ? m->base->n_sites : 1, sizeof *hit);
    if (!hit) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    *n = 0;
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        int h = peft_target_matches(m, a->config, s);
        if (h < 0) goto fail;
        if (!h) continue;
        if (s->info.kind != PEFT_SITE_LINEAR && s->info.kind != PEFT_SITE_CONV1D &&
            a->vt->abi_minor < 4) { /* built before ABI 1.4 added the kind: never handed one */
            peft_set_error(m->ctx, PEFT_EINVAL,
                           "adapter '%s': plugin '%s' (ABI %u.%u) does not support %s sites: "
                           "target module '%s' (site kinds other than linear and Conv1D came with "
                           "ABI 1.4)",
                           a->name, a->vt->name, (unsigned)a->vt->abi_major,
                           (unsigned)a->vt->abi_minor, peft_pu_site_kind_name(s->info.kind),
                           s->info.name);
            goto fail;
        }
        for (int j = 0; j < s->n_chain; j++) {
            const peft_tuner_vtable *other = s->chain[j].adapter->vt;
            if (other != a->vt && (!(other->caps & PEFT_CAP_MIXABLE) || !(a->vt->caps & PEFT_CAP_MIXABLE))) {
                peft_set_error(m->ctx, PEFT_EINVAL,
                               "adapter '%s' (%s) cannot share %s with adapter '%s' (%s): %s is "
                               "not mixable",
                               a->name, a->vt->peft_type, s->info.name, s->chain[j].adapter->name,
                               other->peft_type,
                               (other->caps & PEFT_CAP_MIXABLE) ? a->vt->peft_type : other->peft_type);
                goto fail;
            }
        }
        hit[(*n)++] = s;
    }
    *out = hit;
    return PEFT_OK;
fail:
    free(hit);
    return PEFT_EINVAL;
}

/* vt->adapter_init over the picked sites and the plugin's other adapters (ABI 1.3) */
static int init_adapter_state(peft_model *m, peft_adapter *a, peft_site **hit, int n)
{
    if (!a->vt->adapter_init) return PEFT_OK;
    const peft_site_info **infos = calloc((size_t)n, sizeof *infos);
    void **peers = calloc((size_t)m->n_adapters + 1, sizeof *peers);
    const char **names = calloc((size_t)m->n_adapters + 1, sizeof *names);
    if (!infos || !peers || !names) {
        free(infos);
        free(peers);
        free(names);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) infos[i] = &hit[i]->info;
    int np = 0;
    for (int i = 0; i < m->n_adapters; i++)
        if (m->adapters[i] != a && m->adapters[i]->vt == a->vt && m->adapters[i]->adapter_state) {
            peers[np] = m->adapters[i]->adapter_state;
            names[np++] = m->adapters[i]->name;
        }
    peft_adapter_info info = {.struct_size = sizeof info, .model_type = m->base->arch->model_type,
                              .n_sites = n, .sites = infos, .n_peers = np, .peers = peers,
                              .peer_names = names};
    peft_cfg pc = {a->config};
    char err[1024] = "";
    a->adapter_state = PEFT_PLUGIN_CALL(a->vt, "adapter_init", a->name, NULL,
                                        a->vt->adapter_init(a->parsed, &pc, &info, a->name, &m->ctx->rng, err, sizeof err));
    free(infos);
    free(peers);
    free(names);
    if (!a->adapter_state)
        return peft_set_error(m->ctx, PEFT_EINVAL, "adapter '%s': %s", a->name,
                              err[0] ? err : "the plugin's adapter_init failed (no message)");
    return PEFT_OK;
}

/* the first linear (or Conv1D) site's name, for messages */
static const char *first_linear_name(const peft_base_model *b)
{
    for (size_t i = 0; i < b->n_sites; i++)
        if (b->sites[i]->info.kind == PEFT_SITE_LINEAR || b->sites[i]->info.kind == PEFT_SITE_CONV1D)
            return b->sites[i]->info.name;
    return b->n_sites ? b->sites[0]->info.name : "?";
}

static __thread peft_alloc_guard *guard; /* the guard armed by inject_sites, for the loop's module names */

static int inject_sites_in(peft_model *m, peft_adapter *a);

/* creating the adapter's states under the allocation guard (core/tuner/alloc_guard.h): a
 * config that asks for absurd sizes is refused before the memory is taken */
static int inject_sites(peft_model *m, peft_adapter *a)
{
    size_t one, total;
    peft_inject_limits(m, &one, &total);
    peft_alloc_guard g;
    peft_alloc_guard_begin(&g, one, total);
    guard = &g;
    int rc = inject_sites_in(m, a);
    peft_alloc_guard_end();
    guard = NULL;
    if (rc && g.tripped) rc = peft_inject_refused(m, a, &g);
    return rc;
}

/* layers_to_transform: each index must name a block of the model (PEFT would only report that
 * no module matched). 0 or PEFT_EINVAL naming the index and the model's range. */
static int check_layers(peft_model *m, const peft_adapter *a)
{
    const json_t *layers = json_object_get(a->config, "layers_to_transform");
    if (!layers || json_is_null(layers)) return PEFT_OK;
    int64_t n = 0; /* blocks: 1 + the largest layer index of a site */
    for (size_t i = 0; i < m->base->n_sites; i++)
        if (m->base->sites[i]->info.layer_index + 1 > n) n = m->base->sites[i]->info.layer_index + 1;
    size_t cnt = json_is_array(layers) ? json_array_size(layers) : 1;
    for (size_t i = 0; i < cnt; i++) {
        const json_t *v = json_is_array(layers) ? json_array_get(layers, i) : layers;
        if (!json_is_integer(v))
            return peft_set_error(m->ctx, PEFT_EINVAL, "layers_to_transform must be an integer or a "
                                  "list of integers");
        json_int_t k = json_integer_value(v);
        if (k < 0 || k >= n)
            return peft_set_error(m->ctx, PEFT_EINVAL, "layers_to_transform: layer %lld is out of "
                                  "range: the %s model has %lld layers (0..%lld)", (long long)k,
                                  m->base->arch->model_type, (long long)n, (long long)n - 1);
    }
    return PEFT_OK;
}

static int inject_sites_in(peft_model *m, peft_adapter *a)
{
    peft_cfg pc = {a->config};
    char err[1024] = "";
    if (peft_adapter_is_prompt(a)) return peft_prompt_inject(m, a); /* no sites: the hooks */
    if (peft_adapter_is_attn(a)) return peft_attn_inject(m, a);     /* no sites: attention hook */
    for (int i = 0; i < m->n_adapters; i++)
        if (m->adapters[i] != a && peft_adapter_is_attn(m->adapters[i]))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "adapter '%s' (%s) cannot share a model with adapter '%s' (%s): "
                                  "PEFT's %s holds only its own method's adapters", a->name,
                                  a->vt->peft_type, m->adapters[i]->name,
                                  m->adapters[i]->vt->peft_type, m->adapters[i]->vt->model_class);
    peft_site **hit = NULL;
    int n_hit = 0;
    if (check_layers(m, a)) return PEFT_EINVAL;
    if (pick_sites(m, a, &hit, &n_hit)) return PEFT_EINVAL;
    if (n_hit == 0) {
        free(hit);
        char rule[512];
        list_rule(json_object_get(a->config, "target_modules"), rule, sizeof rule);
        peft_set_error(m->ctx, PEFT_EINVAL,
                       "target_modules %s matched no module of the %s model (its linear layers "
                       "are named like '%s')",
                       rule, m->base->arch->model_type, first_linear_name(m->base));
        return PEFT_EINVAL;
    }
    creating.m = m;
    creating.a = a;
    if (init_adapter_state(m, a, hit, n_hit)) goto fail;
    for (int i = 0; i < n_hit; i++) {
        peft_site *s = hit[i];
        if (guard) guard->module = s->info.name;
        void *state = a->vt->inject_in
                          ? PEFT_PLUGIN_CALL(a->vt, "inject_in", a->name, s->info.name,
                                             a->vt->inject_in(a->adapter_state, a->parsed, &pc, &s->info,
                                                              a->name, &m->ctx->rng, err, sizeof err))
                          : PEFT_PLUGIN_CALL(a->vt, "inject", a->name, s->info.name,
                                             a->vt->inject(a->parsed, &pc, &s->info, a->name, &m->ctx->rng,
                                                           err, sizeof err));
        if (!state) {
            peft_set_error(m->ctx, PEFT_EINVAL, "adapter '%s' on %s: %s", a->name, s->info.name, err);
            goto fail;
        }
        if (peft_site_attach(s, a, state)) {
            PEFT_PLUGIN_CALL_VOID(a->vt, "destroy", a->name, s->info.name, a->vt->destroy(state));
            peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
            goto fail;
        }
        /* loading: the first site's tensors against the file before the others are made */
        if (i == 0 && peft_inject_check_file(m, a, s, state)) goto fail;
    }
    creating.m = NULL;
    creating.a = NULL;
    for (int i = 0; i < n_hit; i++)
        if (hit[i]->info.tied) { /* PEFT's inject_adapter warning */
            char msg[512];
            snprintf(msg, sizeof msg, "Model with `tie_word_embeddings=True` and the "
                     "tied_target_modules=['%s'] are part of the adapter. This can lead to "
                     "complications, for example when merging the adapter or converting your "
                     "model to formats other than safetensors. See for example "
                     "https://github.com/huggingface/peft/issues/2018.", hit[i]->info.name);
            peft_warn(msg);
        }
    free(hit);
    if (apply_bias_setting(m, a)) {
        peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory making biases trainable");
        goto fail_after;
    }
    if (peft_mts_add(m, a)) goto fail_after;
    return PEFT_OK;
fail:
    creating.m = NULL;
    creating.a = NULL;
    free(hit);
fail_after:
    peft_adapter_uninject(m, a);
    return PEFT_EINVAL;
}

int peft_adapter_loaded(peft_model *m, peft_adapter *a)
{
    if (!a->vt->loaded) return PEFT_OK;
    char err[1024] = "";
    PEFT_EACH_SITE_ADAPTER(it, m->base, a)
        if (PEFT_PLUGIN_CALL(a->vt, "loaded", a->name, it.site->info.name,
                             a->vt->loaded(a->adapter_state, it.sa->state, err, sizeof err)))
            return peft_set_error(m->ctx, PEFT_EPLUGIN, "adapter '%s' on %s: %s", a->name,
                                  it.site->info.name, err);
    if (a->adapter_state &&
        PEFT_PLUGIN_CALL(a->vt, "loaded", a->name, NULL, a->vt->loaded(a->adapter_state, NULL, err, sizeof err)))
        return peft_set_error(m->ctx, PEFT_EPLUGIN, "adapter '%s': %s", a->name, err);
    return PEFT_OK;
}

void peft_adapter_uninject(peft_model *m, peft_adapter *a)
{
    if (peft_adapter_is_prompt(a)) {
        peft_prompt_uninject(m, a);
        return;
    }
    detach_everywhere(m, a);
    int k = 0;
    for (int i = 0; i < m->n_biases; i++)
        if (m->biases[i].owner != a) m->biases[k++] = m->biases[i];
    m->n_biases = k;
    peft_mts_drop(m, a);
    if (a->adapter_state) /* after every site state */
        PEFT_PLUGIN_CALL_VOID(a->vt, "adapter_destroy", a->name, NULL, a->vt->adapter_destroy(a->adapter_state));
    a->adapter_state = NULL;
}

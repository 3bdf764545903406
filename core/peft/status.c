/* peft_status.c — get_layer_status / get_model_status as PEFT reports them (TunerLayerStatus,
 * TunerModelStatus), as JSON text with PEFT's field names and order; refused, as PEFT does, for
 * prompt-learning models. Mixed models (which PEFT cannot report on) follow the extension
 * documented in core/peft.h: one entry per layer covering all its adapters, and the
 * prompt-learning adapters of a mixed model in a last field of the model status. */
#include <stdlib.h>
#include <string.h>
#include "core/peft/internal.h"
#include "core/tuner/plugin_call.h"

/* true / false / "irregular" over a set of tensors' requires_grad */
static json_t *grad_flag(int n_true, int n_all)
{
    if (n_all > 0 && n_true == n_all) return json_true();
    if (n_true == 0) return json_false();
    return json_string("irregular");
}

static void count_grads(peft_site_adapter *sa, int *n_true, int *n_all)
{
    peft_refs refs;
    if (peft_refs_get(&refs, sa->adapter, sa->state)) return;
    for (int k = 0; k < refs.n; k++) {
        /* PEFT reports its adapter_layer_names: neither buffers nor frozen bookkeeping
         * parameters (AdaLoRA's ranknum, trainable 0) */
        if (!peft_ref_is_param(&refs.v[k]) || !refs.v[k].trainable) continue;
        (*n_all)++;
        *n_true += refs.v[k].tensor->requires_grad != 0;
    }
    peft_refs_free(&refs);
}

static int cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* PEFT reports available (and model-wide merged) adapters sorted by name */
static json_t *sorted(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **items = malloc((n ? n : 1) * sizeof *items);
    for (size_t i = 0; i < n; i++) items[i] = json_incref(json_array_get(arr, i));
    qsort(items, n, sizeof *items, cmp_json_str);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(out, items[i]);
    free(items);
    json_decref(arr);
    return out;
}

static json_t *layer_status(peft_model *m, peft_site *s)
{
    json_t *o = json_object();
    char name[1024];
    snprintf(name, sizeof name, "%s%s", m->bare ? "" : "model.", s->info.name);
    json_object_set_new(o, "name", json_string(name));
    /* one module type per method; a mixed layer lists them joined */
    char types[256] = "";
    for (int j = 0; j < s->n_chain; j++) {
        const peft_adapter *a = s->chain[j].adapter;
        const char *t = PEFT_PLUGIN_CALL(a->vt, "module_type", a->name, s->info.name,
                                         a->vt->module_type(s->chain[j].state));
        if (!strstr(types, t))
            snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s", *types ? "+" : "", t);
    }
    json_object_set_new(o, "module_type", json_string(types));
    json_object_set_new(o, "enabled", json_boolean(!m->base->adapters_disabled));
    json_t *act = json_array(), *mer = json_array(), *rg = json_object(), *av = json_array(),
           *dev = json_object();
    /* as PEFT's set_adapter, every layer holds the whole active set, its own adapters or not */
    for (int i = 0; i < m->n_adapters; i++)
        if (m->adapters[i]->active && !peft_adapter_is_prompt(m->adapters[i]))
            json_array_append_new(act, json_string(m->adapters[i]->name));
    for (int j = 0; j < s->n_chain; j++) {
        peft_site_adapter *sa = &s->chain[j];
        if (sa->merged) json_array_append_new(mer, json_string(sa->adapter->name));
        int t = 0, a = 0;
        count_grads(sa, &t, &a);
        json_object_set_new(rg, sa->adapter->name, grad_flag(t, a));
        json_array_append_new(av, json_string(sa->adapter->name));
        json_t *d = json_array();
        json_array_append_new(d, json_string("cpu"));
        json_object_set_new(dev, sa->adapter->name, d);
    }
    json_object_set_new(o, "active_adapters", act);
    json_object_set_new(o, "merged_adapters", mer);
    json_object_set_new(o, "requires_grad", rg);
    json_object_set_new(o, "available_adapters", sorted(av));
    json_object_set_new(o, "devices", dev);
    return o;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

/* PEFT raises TypeError for prompt-learning and adaption-prompt models (their base_model is no
 * BaseTuner) */
static int refuse_prompt(peft_model *m, const char *fn, char **json_out)
{
    *json_out = NULL;
    return peft_set_error(m->ctx, PEFT_EINVAL,
                          "%s() got an invalid PeftModel instance; prefix tuning and adaption "
                          "prompt are not supported. (Adapter '%s' is %s, %s.)",
                          fn, m->adapters[0]->name, m->adapters[0]->vt->peft_type,
                          peft_adapter_is_attn(m->adapters[0]) ? "an attention-hook method"
                                                               : "a prompt-learning method");
}

int peft_get_layer_status(peft_model *m, char **json_out)
{
    if (peft_model_is_prompt(m) || peft_model_has_attn(m)) return refuse_prompt(m, "get_layer_status", json_out);
    json_t *list = json_array();
    for (size_t i = 0; i < m->base->n_sites; i++)
        if (m->base->sites[i]->n_chain > 0)
            json_array_append_new(list, layer_status(m, m->base->sites[i]));
    *json_out = dump(list);
    return *json_out ? PEFT_OK : peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
}

/* merge a per-layer value into the model-wide one: equal stays, different -> "irregular" */
static void merge_flag(json_t *obj, const char *key, json_t *v)
{
    json_t *old = json_object_get(obj, key);
    if (!old)
        json_object_set(obj, key, v);
    else if (!json_equal(old, v))
        json_object_set_new(obj, key, json_string("irregular"));
}

int peft_get_model_status(peft_model *m, char **json_out)
{
    if (peft_model_is_prompt(m) || peft_model_has_attn(m)) return refuse_prompt(m, "get_model_status", json_out);
    json_t *o = json_object();
    json_object_set_new(o, "base_model_type", json_string(peft_model_class(m->base)));
    const char *cls = m->mixed ? "MixedModel" : m->n_adapters ? m->adapters[0]->vt->model_class : "";
    json_object_set_new(o, "adapter_model_type", json_string(cls ? cls : ""));
    json_t *types = json_object();
    for (int i = 0; i < m->n_adapters; i++)
        json_object_set_new(types, m->adapters[i]->name, json_string(m->adapters[i]->vt->peft_type));
    json_object_set_new(o, "peft_types", types);
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    json_object_set_new(o, "trainable_params", json_integer(t));
    json_object_set_new(o, "total_params", json_integer(a));
    int layers = 0;
    json_t *enabled = NULL, *rg = json_object();
    json_t *merged = json_array(), *avail = json_array(), *act = json_array(), *dev = json_object();
    int any_merged_irregular = 0;
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        if (s->n_chain == 0) continue;
        layers++;
        json_t *ls = layer_status(m, s);
        json_t *en = json_object_get(ls, "enabled");
        if (!enabled) enabled = json_incref(en);
        else if (!json_equal(enabled, en)) { json_decref(enabled); enabled = json_string("irregular"); }
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(ls, "requires_grad"), k, v) merge_flag(rg, k, v);
        json_decref(ls);
    }
    json_t *prompt = json_object(); /* a mixed model's prompt-learning adapters */
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *ad = m->adapters[i];
        if (peft_adapter_is_prompt(ad)) {
            json_t *p = json_object();
            json_object_set_new(p, "peft_type", json_string(ad->vt->peft_type));
            json_object_set_new(p, "active", json_boolean(ad->active));
            peft_param_ref refs[32];
            int n = peft_prompt_params(m, ad, refs, 32), on = 0;
            for (int k = 0; k < n; k++) on += refs[k].tensor->requires_grad != 0;
            json_object_set_new(p, "requires_grad", grad_flag(on, n));
            json_object_set_new(prompt, ad->name, p);
            continue;
        }
        if (ad->active) json_array_append_new(act, json_string(ad->name));
        json_array_append_new(avail, json_string(ad->name));
        int on = 0, all = 0;
        PEFT_EACH_SITE_ADAPTER(it, m->base, ad) {
            all++;
            on += it.sa->merged;
        }
        if (on > 0 && on == all) json_array_append_new(merged, json_string(ad->name));
        else if (on > 0) any_merged_irregular = 1;
        json_t *d = json_array();
        json_array_append_new(d, json_string("cpu"));
        json_object_set_new(dev, ad->name, d);
    }
    json_object_set_new(o, "num_adapter_layers", json_integer(layers));
    json_object_set_new(o, "enabled", enabled ? enabled : json_true());
    json_object_set_new(o, "active_adapters", act);
    if (any_merged_irregular) {
        json_decref(merged);
        json_object_set_new(o, "merged_adapters", json_string("irregular"));
    } else {
        json_object_set_new(o, "merged_adapters", sorted(merged));
    }
    json_object_set_new(o, "requires_grad", rg);
    json_object_set_new(o, "available_adapters", sorted(avail));
    json_object_set_new(o, "devices", dev);
    if (json_object_size(prompt)) json_object_set_new(o, "prompt_learning_adapters", prompt);
    else json_decref(prompt);
    *json_out = dump(o);
    return *json_out ? PEFT_OK : peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
}

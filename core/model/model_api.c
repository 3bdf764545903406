/* model_api.c — the base model seen from outside the core: what an application (the `peft`
 * command, the conformance table) reads of a loaded model through functions, not struct fields
 * (peft/model.h, "reading a loaded model"), and its forward pass with the error on the graph. */
#include <stdio.h>

#include "core/model/model_internal.h"
#include "core/model/site.h"

int peft_base_model_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                            peft_model_outputs *out)
{
    if (!g) return PEFT_EINVAL;
    if (peft_graph_errcode(g)) return peft_graph_errcode(g);
    if (!m || !in || !out)
        return peft_graph_fail(g, PEFT_EINVAL, "peft_base_model_forward: a model, inputs and "
                               "outputs are required");
    char err[1024] = "";
    if (m->arch->forward(m, g, in, out, err, sizeof err)) {
        if (peft_graph_errcode(g)) return peft_graph_errcode(g);
        return peft_graph_fail(g, PEFT_EINVAL, "%s", err[0] ? err : "forward failed");
    }
    return peft_graph_errcode(g);
}

const char *peft_base_model_type(const peft_base_model *m) { return m ? m->arch->model_type : NULL; }
const char *peft_base_model_dir(const peft_base_model *m) { return m ? m->dir : NULL; }
const char *peft_base_model_class(const peft_base_model *m)
{
    return !m ? NULL : m->class_name ? m->class_name : m->arch->class_name;
}
const char *peft_base_model_task(const peft_base_model *m)
{
    return !m ? NULL : m->task_type ? m->task_type : m->arch->task_type;
}

size_t peft_base_model_num_params(const peft_base_model *m) { return m ? m->n_params : 0; }

int64_t peft_base_model_param_count(const peft_base_model *m)
{
    int64_t n = 0;
    for (size_t i = 0; m && i < m->n_params; i++) n += m->params[i].t->numel;
    return n;
}

peft_tensor *peft_base_model_param(const peft_base_model *m, size_t i, const char **name)
{
    if (!m || i >= m->n_params) return NULL;
    if (name) *name = m->params[i].name;
    return m->params[i].t;
}

peft_tensor *peft_base_model_find_param(const peft_base_model *m, const char *name)
{
    const peft_param *p = peft_model_find_param(m, name);
    return p ? p->t : NULL;
}

int64_t peft_base_model_vocab_size(const peft_base_model *m)
{
    return m && m->word_embeddings ? m->word_embeddings->shape[0] : 0;
}

const peft_site_info *peft_site_get_info(const peft_site *s) { return s ? &s->info : NULL; }

size_t peft_base_model_num_sites(const peft_base_model *m) { return m ? m->n_sites : 0; }

const peft_site_info *peft_base_model_site(const peft_base_model *m, size_t i)
{
    return m && i < m->n_sites ? &m->sites[i]->info : NULL;
}

int peft_base_model_site_adapter(const peft_base_model *m, size_t i, int j, const char **adapter,
                                 const char **method, int *merged)
{
    if (!m || i >= m->n_sites || j < 0 || j >= m->sites[i]->n_chain) return 0;
    const peft_site *s = m->sites[i];
    if (adapter) *adapter = s->chain[j].adapter->name;
    if (method) *method = s->chain[j].adapter->vt->name;
    if (merged) *merged = s->chain[j].merged;
    return 1;
}

int64_t peft_base_model_num_labels(const peft_base_model *m)
{
    if (!m) return 0;
    json_t *id2label = json_object_get(m->config, "id2label");
    if (json_is_object(id2label) && json_object_size(id2label) > 0)
        return (int64_t)json_object_size(id2label);
    json_t *n = json_object_get(m->config, "num_labels");
    return json_is_integer(n) ? (int64_t)json_integer_value(n) : 2;
}

int peft_base_model_is_encoder_decoder(const peft_base_model *m)
{
    return m ? m->is_encoder_decoder : 0;
}

/* attn.c — the base model's attention modules (ABI 1.4): what an architecture registers for the
 * attention hook (peft_attn_hooks, peft/model.h), and their release with the model. */
#include <stdlib.h>
#include <string.h>
#include "core/model/attn.h"
#include "core/model/name_index.h"

int peft_model_add_attn(peft_base_model *m, const char *name, int layer, peft_site *q,
                        peft_site *k, peft_site *v, peft_site *o, int n_heads, int n_kv_heads,
                        int head_dim, int hidden_size)
{
    if (!m || !name) return -1;
    /* module names are unique: a hash lookup (a scan made building n layers O(n^2): 10000
     * layers took 1.9 s, found by fuzzing), or a scan if the index was dropped */
    ptrdiff_t at = peft_name_index_find(m->attn_index, (size_t)m->n_attn, name);
    if (at >= 0) return -1;
    for (int i = 0; at == -2 && i < m->n_attn; i++)
        if (!strcmp(m->attn[i]->name, name)) return -1;
    if (m->n_attn == m->cap_attn) {
        int cap = m->cap_attn ? 2 * m->cap_attn : 16;
        peft_attn_info **na = realloc(m->attn, (size_t)cap * sizeof *na);
        if (!na) return -1;
        m->attn = na;
        m->cap_attn = cap;
    }
    peft_attn_info *a = calloc(1, sizeof *a);
    char *nm = strdup(name);
    if (!a || !nm) {
        free(a);
        free(nm);
        return -1;
    }
    a->struct_size = (uint32_t)sizeof *a;
    a->name = nm;
    a->model_type = json_string_value(json_object_get(m->config, "model_type"));
    a->index = m->n_attn;
    a->layer_index = layer;
    a->n_heads = n_heads;
    a->n_kv_heads = n_kv_heads;
    a->head_dim = head_dim;
    a->hidden_size = hidden_size;
    a->q_proj = q ? &q->info : NULL;
    a->k_proj = k ? &k->info : NULL;
    a->v_proj = v ? &v->info : NULL;
    a->o_proj = o ? &o->info : NULL;
    m->attn[m->n_attn] = a;
    peft_name_index_track(&m->attn_index, nm, (size_t)m->n_attn);
    return m->n_attn++;
}

/* called by peft_base_model_free */
void peft_model_free_attn(peft_base_model *m)
{
    for (int i = 0; i < m->n_attn; i++) {
        free((char *)m->attn[i]->name);
        free(m->attn[i]);
    }
    free(m->attn);
    m->attn = NULL;
    if (m->attn_index) peft_name_index_free(m->attn_index);
    free(m->attn_index);
    m->attn_index = NULL;
    m->n_attn = m->cap_attn = 0;
}

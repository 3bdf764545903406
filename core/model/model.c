/* model.c — loading a Hugging Face model directory into a peft_base_model: config.json, the
 * weights (model.safetensors, or the shards listed by model.safetensors.index.json, all mmap'd
 * and wrapped zero-copy), the parameter and site registries the architectures fill in, and the
 * config.json getters they read their dimensions with. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "core/io/safetensors.h"
#include "core/model/model_internal.h"
#include "core/model/name_index.h"
#include "core/model/attn.h"
#include "core/model/storage.h"
#include "peft/peft.h"
#include "core/util/errbuf.h"

#define WEIGHTS_FILE "model.safetensors"
#define INDEX_FILE "model.safetensors.index.json"

static char *path_join(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0) return NULL;
    return p;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "[32, 96]" into buf */
static const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

static const char *dtype_name(int32_t dt)
{
    switch (dt) {
    case PEFT_DTYPE_F32: return "F32";
    case PEFT_DTYPE_F16: return "F16";
    case PEFT_DTYPE_BF16: return "BF16";
    case PEFT_DTYPE_I32: return "I32";
    default: return "unknown";
    }
}

/* ---- weight files ---------------------------------------------------------------------------- */

/* 0, or a PEFT_E* code with err set */
static int add_file(peft_base_model *m, const char *path, char *err, size_t errlen)
{
    peft_st_file **nf = realloc(m->files, (m->n_files + 1) * sizeof *nf);
    if (!nf) { peft_errbuf(err, errlen, "%s: out of memory", path); return PEFT_ENOMEM; }
    m->files = nf;
    peft_st_file *f = NULL;
    int rc = peft_st_open_buf(path, &f, err, errlen);
    if (rc) return rc;
    m->files[m->n_files++] = f;
    return 0;
}

/* model.safetensors.index.json: {"weight_map": {"tensor": "model-00001-of-00002.safetensors"}};
 * opens every distinct shard once, in order of first appearance. */
static int open_shards(peft_base_model *m, const char *index_path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *idx = json_load_file(index_path, 0, &je);
    if (!idx) {
        peft_errbuf(err, errlen, "%s: invalid JSON at line %d: %s", index_path, je.line, je.text);
        return -1;
    }
    int rc = -1;
    const char **seen = NULL;
    size_t n_seen = 0;
    json_t *wm = json_object_get(idx, "weight_map");
    if (!json_is_object(wm)) {
        peft_errbuf(err, errlen, "%s: no \"weight_map\" object", index_path);
        goto out;
    }
    if (json_object_size(wm) == 0) {
        peft_errbuf(err, errlen, "%s: \"weight_map\" is empty", index_path);
        goto out;
    }
    seen = calloc(json_object_size(wm), sizeof *seen);
    if (!seen) { peft_errbuf(err, errlen, "%s: out of memory", index_path); goto out; }
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        const char *shard = json_string_value(val);
        if (!shard || !*shard) {
            peft_errbuf(err, errlen, "%s: weight_map[\"%s\"] must be a file name string", index_path, key);
            goto out;
        }
        if (shard[0] == '/' || strstr(shard, "..")) {
            peft_errbuf(err, errlen, "%s: weight_map[\"%s\"] = \"%s\" must name a file inside the model "
                        "directory", index_path, key, shard);
            goto out;
        }
        size_t i;
        for (i = 0; i < n_seen; i++)
            if (strcmp(seen[i], shard) == 0) break;
        if (i < n_seen) continue;
        seen[n_seen++] = shard;
        char *sp = path_join(m->dir, shard);
        if (!sp) { peft_errbuf(err, errlen, "%s: out of memory", index_path); goto out; }
        if (!file_exists(sp)) {
            peft_errbuf(err, errlen, "%s: shard %s (for tensor '%s') does not exist", index_path, sp, key);
            free(sp);
            goto out;
        }
        int r = add_file(m, sp, err, errlen);
        free(sp);
        if (r != 0) goto out;
    }
    rc = 0;
out:
    free(seen);
    json_decref(idx);
    return rc;
}

/* ---- load / free --------------------------------------------------------------------------- */

/* config.json into m->config and its architecture into m->arch. 0 or -1 with err. */
static int read_config(peft_base_model *m, const char *cfg_path, char *err, size_t errlen)
{
    json_error_t je;
    m->config = json_load_file(cfg_path, 0, &je);
    if (!m->config) {
        peft_errbuf(err, errlen, "%s: invalid JSON at line %d: %s", cfg_path, je.line, je.text);
        return -1;
    }
    if (!json_is_object(m->config)) {
        peft_errbuf(err, errlen, "%s: expected a JSON object", cfg_path);
        return -1;
    }
    json_t *mt = json_object_get(m->config, "model_type");
    if (!mt) {
        peft_errbuf(err, errlen, "%s: no \"model_type\" field", cfg_path);
        return -1;
    }
    if (!json_is_string(mt)) {
        peft_errbuf(err, errlen, "%s: \"model_type\" must be a string", cfg_path);
        return -1;
    }
    m->arch = peft_arch_find(json_string_value(mt));
    if (!m->arch) {
        char list[256] = "";
        size_t o = 0;
        for (size_t i = 0; peft_arch_at(i) && o < sizeof list; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
                                  peft_arch_at(i)->model_type);
        peft_errbuf(err, errlen, "%s: unknown model_type \"%s\" (supported: %s)", cfg_path,
                    json_string_value(mt), list);
        return -1;
    }

    return 0;
}

int peft_model_load_dir(const char *dir, const peft_load_options *opts, peft_base_model **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    if (!dir || !*dir) { peft_errbuf(err, errlen, "model directory: empty path"); return PEFT_EINVAL; }
    peft_base_model *m = calloc(1, sizeof *m);
    char *cfg_path = NULL, *w_path = NULL, *i_path = NULL;
    int rc = PEFT_EFORMAT; /* what is in the files is wrong, unless said otherwise below */
    if (!m || !(m->dir = strdup(dir))) goto oom;
    /* strip trailing slashes so that joined paths read well */
    for (size_t n = strlen(m->dir); n > 1 && m->dir[n - 1] == '/'; n--) m->dir[n - 1] = 0;

    if (!(cfg_path = path_join(m->dir, "config.json"))) goto oom;
    if (!file_exists(cfg_path)) {
        struct stat st;
        if (stat(m->dir, &st) != 0)
            peft_errbuf(err, errlen, "%s: no such model directory", m->dir);
        else
            peft_errbuf(err, errlen, "%s: no such file (a Hugging Face model directory needs "
                        "config.json)", cfg_path);
        rc = PEFT_EIO;
        goto fail;
    }
    if (read_config(m, cfg_path, err, errlen)) goto fail;
    if ((rc = peft_storage_setup(m, opts, err, errlen)) != 0) goto fail;
    rc = PEFT_EFORMAT;
    if (m->random_init) goto build; /* weights drawn in memory: no files */

    if (!(w_path = path_join(m->dir, WEIGHTS_FILE)) || !(i_path = path_join(m->dir, INDEX_FILE)))
        goto oom;
    if (file_exists(w_path)) {
        if ((rc = add_file(m, w_path, err, errlen)) != 0) goto fail;
        rc = PEFT_EFORMAT;
    } else if (file_exists(i_path)) {
        if (open_shards(m, i_path, err, errlen) != 0) goto fail;
    } else {
        peft_errbuf(err, errlen, "%s: no weights: neither %s nor %s exists", m->dir, w_path, i_path);
        rc = PEFT_EIO;
        goto fail;
    }

build:
    if (m->arch->build(m, err, errlen) != 0) goto fail;
    free(cfg_path);
    free(w_path);
    free(i_path);
    *out = m;
    return 0;
oom:
    peft_errbuf(err, errlen, "%s: out of memory", dir);
    rc = PEFT_ENOMEM;
fail:
    free(cfg_path);
    free(w_path);
    free(i_path);
    peft_base_model_free(m);
    return rc;
}

/* PEFT task type -> the Hugging Face head class of a model_type (for weight-free counts) */
static const char *task_class(const char *model_type, const char *task)
{
    static const char *const map[][3] = {
        {"gpt2", "CAUSAL_LM", "GPT2LMHeadModel"},
        {"gpt2", "SEQ_CLS", "GPT2ForSequenceClassification"},
        {"llama", "CAUSAL_LM", "LlamaForCausalLM"},
        {"llama", "SEQ_CLS", "LlamaForSequenceClassification"},
        {"qwen2", "CAUSAL_LM", "Qwen2ForCausalLM"},
        {"qwen2", "SEQ_CLS", "Qwen2ForSequenceClassification"},
        {"mistral", "CAUSAL_LM", "MistralForCausalLM"},
        {"mistral", "SEQ_CLS", "MistralForSequenceClassification"},
        {"gemma", "CAUSAL_LM", "GemmaForCausalLM"},
        {"gemma", "SEQ_CLS", "GemmaForSequenceClassification"},
        {"gemma2", "CAUSAL_LM", "Gemma2ForCausalLM"},
        {"gemma2", "SEQ_CLS", "Gemma2ForSequenceClassification"},
        {"phi3", "CAUSAL_LM", "Phi3ForCausalLM"},
        {"phi3", "SEQ_CLS", "Phi3ForSequenceClassification"},
        {"bert", "SEQ_CLS", "BertForSequenceClassification"},
        {"bert", "TOKEN_CLS", "BertForTokenClassification"},
        {"bert", "QUESTION_ANS", "BertForQuestionAnswering"},
        {"bert", "FEATURE_EXTRACTION", "BertModel"},
        {"t5", "SEQ_2_SEQ_LM", "T5ForConditionalGeneration"},
    };
    for (size_t i = 0; task && i < sizeof map / sizeof *map; i++)
        if (!strcmp(map[i][0], model_type) && !strcmp(map[i][1], task)) return map[i][2];
    return NULL;
}

int peft_model_load_config(const char *config_path, const char *task_type,
                           peft_base_model **out, char *err, size_t errlen)
{
    *out = NULL;
    peft_base_model *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(config_path ? config_path : ""))) {
        free(m);
        peft_errbuf(err, errlen, "out of memory");
        return PEFT_ENOMEM;
    }
    m->meta = 1;
    int rc = PEFT_EFORMAT; /* what is in config.json is wrong, unless said otherwise below */
    if (!config_path || !file_exists(config_path)) {
        peft_errbuf(err, errlen, "%s: no such file", config_path ? config_path : "(null)");
        rc = config_path ? PEFT_EIO : PEFT_EINVAL;
        goto fail;
    }
    if (read_config(m, config_path, err, errlen)) goto fail;
    if (task_type) { /* the head that task type implies, as PEFT's task models load it */
        const char *cls = task_class(m->arch->model_type, task_type);
        if (!cls) {
            peft_errbuf(err, errlen, "%s: no %s head for model_type \"%s\"", config_path, task_type,
                        m->arch->model_type);
            rc = PEFT_EINVAL;
            goto fail;
        }
        json_t *arr = json_array();
        json_array_append_new(arr, json_string(cls));
        json_object_set_new(m->config, "architectures", arr);
    }
    if (m->arch->build(m, err, errlen) != 0) goto fail;
    *out = m;
    return 0;
fail:
    peft_base_model_free(m);
    return rc;
}

/* meta models: zero pages reserved, never touched (reads see zeros, nothing is allocated).
 * Tensors are carved from chunks of at least META_CHUNK reserved bytes (one mmap per tensor
 * made `peft info --config` with 100000 layers spend most of its 14 s in mmap/munmap); the
 * first META_ALIGN bytes of a chunk hold how much of it is used. */
#define META_CHUNK ((size_t)64 << 20)
#define META_ALIGN ((size_t)64)
static void *meta_map(peft_base_model *m, size_t bytes)
{
    if (bytes > SIZE_MAX / 2) return NULL;
    bytes = bytes ? (bytes + META_ALIGN - 1) & ~(META_ALIGN - 1) : META_ALIGN;
    if (m->n_meta) { /* room in the last chunk */
        unsigned char *c = m->meta_maps[m->n_meta - 1];
        size_t *used = (size_t *)(void *)c;
        if (*used + bytes <= m->meta_lens[m->n_meta - 1]) {
            void *p = c + *used;
            *used += bytes;
            return p;
        }
    }
    void **maps = realloc(m->meta_maps, (m->n_meta + 1) * sizeof *maps);
    size_t *lens = maps ? realloc(m->meta_lens, (m->n_meta + 1) * sizeof *lens) : NULL;
    if (maps) m->meta_maps = maps;
    if (!lens) return NULL;
    m->meta_lens = lens;
    size_t len = META_ALIGN + bytes > META_CHUNK ? META_ALIGN + bytes : META_CHUNK;
    unsigned char *c = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (c == MAP_FAILED) return NULL;
    *(size_t *)(void *)c = META_ALIGN + bytes;
    m->meta_maps[m->n_meta] = c;
    m->meta_lens[m->n_meta++] = len;
    return c + META_ALIGN;
}

void peft_base_model_free(peft_base_model *m)
{
    if (!m) return;
    if (m->arch && m->arch->free_state && m->arch_state) m->arch->free_state(m->arch_state);
    for (size_t i = 0; i < m->n_sites; i++) {
        peft_site *s = m->sites[i];
        free(s->chain);
        /* a weight or bias still merged: the tensor owns the merged copy, the site the
         * original when it was owned (borrowed mmap data is not freed) */
        if (s->orig_weight_owned) free(s->orig_weight_data);
        if (s->orig_bias_owned) free(s->orig_bias_data);
        free((char *)s->info.name);
        free(s);
    }
    free(m->sites);
    peft_model_free_attn(m);
    for (size_t i = 0; i < m->n_params; i++) {
        free(m->params[i].name);
        peft_tensor_free(m->params[i].t);
    }
    free(m->params);
    if (m->param_index) peft_name_index_free(m->param_index);
    if (m->site_index) peft_name_index_free(m->site_index);
    free(m->param_index);
    free(m->site_index);
    /* the files last: the parameter tensors borrowed their mappings */
    for (size_t i = 0; i < m->n_files; i++) peft_st_close(m->files[i]);
    for (size_t i = 0; i < m->n_meta; i++) munmap(m->meta_maps[i], m->meta_lens[i]);
    free(m->meta_maps);
    free(m->meta_lens);
    free(m->files);
    json_decref(m->config);
    json_decref(m->quant_skip);
    for (int i = 0; m->quant_layers && i < m->n_quantized; i++) free(m->quant_layers[i].name);
    free(m->quant_layers);
    free(m->dir);
    free(m);
}

/* ---- parameters ------------------------------------------------------------------------------ */

peft_param *peft_model_find_param(const peft_base_model *m, const char *name)
{
    if (!m || !name) return NULL;
    ptrdiff_t pos = peft_name_index_find(m->param_index, m->n_params, name);
    if (pos != -2) return pos >= 0 ? &m->params[pos] : NULL;
    for (size_t i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

static const peft_st_entry *find_entry(const peft_base_model *m, const char *name,
                                       const peft_st_file **file)
{
    for (size_t i = 0; i < m->n_files; i++) {
        const peft_st_entry *e = peft_st_find(m->files[i], name);
        if (e) { *file = m->files[i]; return e; }
    }
    return NULL;
}

static int push_param(peft_base_model *m, const char *name, peft_tensor *t)
{
    if (m->n_params == m->cap_params) {
        size_t cap = m->cap_params ? 2 * m->cap_params : 64;
        peft_param *np = realloc(m->params, cap * sizeof *np);
        if (!np) return -1;
        m->params = np;
        m->cap_params = cap;
    }
    char *pname = strdup(name);
    if (!pname) return -1;
    t->flags |= PEFT_T_PARAM;
    t->requires_grad = 0;
    m->params[m->n_params].name = pname;
    m->params[m->n_params].t = t;
    peft_name_index_track(&m->param_index, pname, m->n_params);
    m->n_params++;
    return 0;
}

static peft_tensor *take_meta(peft_base_model *m, const char *name, int ndim, const int64_t *shape,
                              char *err, size_t errlen)
{
    int64_t n = peft_shape_numel(ndim, shape);
    void *p = n >= 0 ? meta_map(m, (size_t)n * sizeof(float)) : NULL;
    peft_tensor *t = p ? peft_tensor_wrap(PEFT_DTYPE_F32, ndim, shape, p) : NULL;
    if (!t || push_param(m, name, t)) {
        peft_tensor_free(t);
        peft_errbuf(err, errlen, "%s: out of memory describing tensor '%s'", m->dir, name);
        return NULL;
    }
    return t;
}

peft_tensor *peft_model_take_weight(peft_base_model *m, const char *name, const char *alt_name,
                                    int ndim, const int64_t *shape, char *err, size_t errlen)
{
    char a[96], b[96];
    if (ndim < 0 || ndim > PEFT_MAX_DIMS) {
        peft_errbuf(err, errlen, "%s: tensor '%s': bad expected rank %d", m->dir, name, ndim);
        return NULL;
    }
    /* a tied or repeated request: hand back the registered tensor if its shape fits */
    peft_param *have = peft_model_find_param(m, name);
    if (have) {
        int ok = have->t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++) ok = have->t->shape[i] == shape[i];
        if (!ok) {
            peft_errbuf(err, errlen, "%s: tensor '%s' has shape %s, config.json implies %s", m->dir,
                        name, shape_str(a, sizeof a, have->t->ndim, have->t->shape),
                        shape_str(b, sizeof b, ndim, shape));
            return NULL;
        }
        return have->t;
    }

    if (m->meta) return take_meta(m, name, ndim, shape, err, errlen);
    if (m->random_init) {
        peft_tensor *t = peft_storage_random(m, name, ndim, shape);
        if (!t || push_param(m, name, t)) {
            peft_tensor_free(t);
            goto oom;
        }
        return t;
    }
    const peft_st_file *f = NULL;
    const peft_st_entry *e = find_entry(m, name, &f);
    if (!e && alt_name) e = find_entry(m, alt_name, &f);
    if (!e) {
        const char *where = m->n_files == 1 && strstr(m->files[0]->path, WEIGHTS_FILE)
                                ? WEIGHTS_FILE
                                : "the shards of " INDEX_FILE;
        if (alt_name)
            peft_errbuf(err, errlen, "%s: no tensor '%s' (nor '%s') in %s", m->dir, name, alt_name, where);
        else
            peft_errbuf(err, errlen, "%s: no tensor '%s' in %s", m->dir, name, where);
        return NULL;
    }
    if (e->dtype != PEFT_DTYPE_F32 && e->dtype != PEFT_DTYPE_F16 && e->dtype != PEFT_DTYPE_BF16) {
        peft_errbuf(err, errlen, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16",
                    f->path, e->name, dtype_name(e->dtype));
        return NULL;
    }
    int ok = e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = e->shape[i] == shape[i];
    if (!ok) {
        peft_errbuf(err, errlen, "%s: tensor '%s' has shape %s, config.json implies %s", f->path,
                    e->name, shape_str(a, sizeof a, e->ndim, e->shape), shape_str(b, sizeof b, ndim, shape));
        return NULL;
    }

    /* the base model is frozen: requires_grad 0 */
    peft_tensor *t = peft_tensor_wrap(e->dtype, ndim, shape, (void *)e->data);
    if (!t || push_param(m, name, t)) {
        peft_tensor_free(t);
        goto oom;
    }
    if (peft_storage_take(m, name, t, err, errlen)) return NULL;
    return t;
oom:
    peft_errbuf(err, errlen, "%s: out of memory taking tensor '%s'", m->dir, name);
    return NULL;
}

/* ---- sites ----------------------------------------------------------------------------------- */

peft_site *peft_model_find_site(const peft_base_model *m, const char *name)
{
    if (!m || !name) return NULL;
    ptrdiff_t pos = peft_name_index_find(m->site_index, m->n_sites, name);
    if (pos != -2) return pos >= 0 ? m->sites[pos] : NULL;
    for (size_t i = 0; i < m->n_sites; i++)
        if (strcmp(m->sites[i]->info.name, name) == 0) return m->sites[i];
    return NULL;
}

static peft_site *add_site(peft_base_model *m, const char *name, int kind, peft_tensor *weight,
                           peft_tensor *bias, int layer_index, int64_t in, int64_t outf);

peft_site *peft_model_add_site(peft_base_model *m, const char *name, int kind,
                               peft_tensor *weight, peft_tensor *bias, int layer_index)
{
    if (!m || !name || !weight || weight->ndim != 2) return NULL;
    if (kind != PEFT_SITE_LINEAR && kind != PEFT_SITE_CONV1D && kind != PEFT_SITE_EMBEDDING)
        return NULL;
    if (kind == PEFT_SITE_EMBEDDING && bias) return NULL;
    /* Conv1D and embeddings keep their rows first: (in, out), (num_embeddings, dim) */
    int in_first = kind == PEFT_SITE_CONV1D || kind == PEFT_SITE_EMBEDDING;
    int64_t in = in_first ? weight->shape[0] : weight->shape[1];
    int64_t outf = in_first ? weight->shape[1] : weight->shape[0];
    if (bias && bias->numel != outf) return NULL;
    return add_site(m, name, kind, weight, bias, layer_index, in, outf);
}

peft_site *peft_model_add_norm_site(peft_base_model *m, const char *name, peft_tensor *weight,
                                    peft_tensor *bias, int layer_index, int norm_type, float eps)
{
    if (!m || !name || !weight || weight->ndim != 1) return NULL;
    if (norm_type != PEFT_NORM_LAYER && norm_type != PEFT_NORM_RMS && norm_type != PEFT_NORM_RMS_1P)
        return NULL;
    if (bias && (norm_type != PEFT_NORM_LAYER || bias->numel != weight->numel)) return NULL;
    peft_site *s = add_site(m, name, PEFT_SITE_NORM, weight, bias, layer_index, weight->numel,
                            weight->numel);
    if (s) {
        s->info.norm_type = norm_type;
        s->info.norm_eps = eps;
    }
    return s;
}

void peft_site_set_tied(peft_site *s)
{
    if (s) s->info.tied = 1;
}

/* the site record; in/outf as the kind reads its weight */
static peft_site *add_site(peft_base_model *m, const char *name, int kind, peft_tensor *weight,
                           peft_tensor *bias, int layer_index, int64_t in, int64_t outf)
{
    if (peft_model_find_site(m, name)) return NULL; /* module names are unique */

    if (m->n_sites == m->cap_sites) {
        size_t cap = m->cap_sites ? 2 * m->cap_sites : 32;
        peft_site **ns = realloc(m->sites, cap * sizeof *ns);
        if (!ns) return NULL;
        m->sites = ns;
        m->cap_sites = cap;
    }
    peft_site *s = calloc(1, sizeof *s);
    char *nm = strdup(name);
    if (!s || !nm) { free(s); free(nm); return NULL; }
    s->info.struct_size = (uint32_t)sizeof s->info;
    s->info.kind = kind;
    s->info.name = nm;
    s->info.model_type = json_string_value(json_object_get(m->config, "model_type"));
    s->info.in_features = in;
    s->info.out_features = outf;
    s->info.fan_in_fan_out = kind == PEFT_SITE_CONV1D;
    s->info.layer_index = layer_index;
    s->info.weight = weight;
    s->info.bias = bias;
    s->owner = m;
    peft_name_index_track(&m->site_index, nm, m->n_sites);
    m->sites[m->n_sites++] = s;
    char err[512];
    if (peft_storage_site(m, s, err, sizeof err)) return NULL; /* out of memory quantizing */
    return s;
}

/* ---- config.json getters --------------------------------------------------------------------- */

/* what follows m->dir in a message about its config: a model directory's config.json, or nothing
 * for a meta model (built from a config file, whose path m->dir then is) */
static const char *cfg_suffix(const peft_base_model *m) { return m->meta ? "" : "/config.json"; }

/* the value of key, NULL when absent or JSON null */
static json_t *cfg_get(const peft_base_model *m, const char *key)
{
    json_t *v = json_object_get(m->config, key);
    return json_is_null(v) ? NULL : v;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

int peft_config_int_buf(const peft_base_model *m, const char *key, int has_def, int64_t def,
                    int64_t *out, char *err, size_t errlen)
{
    json_t *v = cfg_get(m, key);
    if (!v) {
        if (has_def) { *out = def; return 0; }
        peft_errbuf(err, errlen, "%s%s: missing field \"%s\" (an integer)",
                    m->dir, cfg_suffix(m), key);
        return -1;
    }
    if (json_is_integer(v)) { *out = (int64_t)json_integer_value(v); return 0; }
    if (json_is_real(v)) { /* 1024.0 is tolerated, 0.5 is not */
        double d = json_real_value(v);
        if (d > -9.0e18 && d < 9.0e18 && d == (double)(int64_t)d) { *out = (int64_t)d; return 0; }
    }
    peft_errbuf(err, errlen, "%s%s: field \"%s\" must be an integer, got %s",
                m->dir, cfg_suffix(m), key,
                json_kind(v));
    return -1;
}

int peft_config_layers(const peft_base_model *m, const char *key, int has_def, int64_t def,
                       int64_t *out, char *err, size_t errlen)
{
    if (peft_config_int_buf(m, key, has_def, def, out, err, errlen)) return -1;
    if (*out >= 0 && *out <= PEFT_MAX_LAYERS) return 0;
    peft_errbuf(err, errlen, "%s%s: field \"%s\" is %lld; a layer count must be 0..%d",
                m->dir, cfg_suffix(m), key, (long long)*out, PEFT_MAX_LAYERS);
    return -1;
}

int peft_config_real_buf(const peft_base_model *m, const char *key, int has_def, double def,
                     double *out, char *err, size_t errlen)
{
    json_t *v = cfg_get(m, key);
    if (!v) {
        if (has_def) { *out = def; return 0; }
        peft_errbuf(err, errlen, "%s%s: missing field \"%s\" (a number)",
                    m->dir, cfg_suffix(m), key);
        return -1;
    }
    if (json_is_number(v)) { *out = json_number_value(v); return 0; }
    peft_errbuf(err, errlen, "%s%s: field \"%s\" must be a number, got %s",
                m->dir, cfg_suffix(m), key,
                json_kind(v));
    return -1;
}

int peft_config_bool_buf(const peft_base_model *m, const char *key, int has_def, int def, int *out,
                     char *err, size_t errlen)
{
    json_t *v = cfg_get(m, key);
    if (!v) {
        if (has_def) { *out = def; return 0; }
        peft_errbuf(err, errlen, "%s%s: missing field \"%s\" (true or false)",
                    m->dir, cfg_suffix(m), key);
        return -1;
    }
    if (json_is_boolean(v)) { *out = json_is_true(v); return 0; }
    peft_errbuf(err, errlen, "%s%s: field \"%s\" must be true or false, got %s",
                m->dir, cfg_suffix(m), key,
                json_kind(v));
    return -1;
}

int peft_config_str_buf(const peft_base_model *m, const char *key, const char *def,
                    const char **out, char *err, size_t errlen)
{
    json_t *v = cfg_get(m, key);
    if (!v) {
        if (def) { *out = def; return 0; }
        peft_errbuf(err, errlen, "%s%s: missing field \"%s\" (a string)",
                    m->dir, cfg_suffix(m), key);
        return -1;
    }
    if (json_is_string(v)) { *out = json_string_value(v); return 0; }
    peft_errbuf(err, errlen, "%s%s: field \"%s\" must be a string, got %s",
                m->dir, cfg_suffix(m), key,
                json_kind(v));
    return -1;
}

/* the public getters: the same with the code and the message on the context */
#define CONFIG_GETTER(fn, call)                                                                 \
    {                                                                                           \
        char err[1024] = "";                                                                    \
        if (!m || !key || !out)                                                                 \
            return peft_set_error(ctx, PEFT_EINVAL, fn ": a model, a key and out are required"); \
        return call ? peft_set_error(ctx, PEFT_EFORMAT, "%s", err) : PEFT_OK;                  \
    }

int peft_config_int(peft_ctx *ctx, const peft_base_model *m, const char *key, int has_def,
                    int64_t def, int64_t *out)
CONFIG_GETTER("peft_config_int", peft_config_int_buf(m, key, has_def, def, out, err, sizeof err))

int peft_config_real(peft_ctx *ctx, const peft_base_model *m, const char *key, int has_def,
                     double def, double *out)
CONFIG_GETTER("peft_config_real", peft_config_real_buf(m, key, has_def, def, out, err, sizeof err))

int peft_config_bool(peft_ctx *ctx, const peft_base_model *m, const char *key, int has_def, int def,
                     int *out)
CONFIG_GETTER("peft_config_bool", peft_config_bool_buf(m, key, has_def, def, out, err, sizeof err))

int peft_config_str(peft_ctx *ctx, const peft_base_model *m, const char *key, const char *def,
                    const char **out)
CONFIG_GETTER("peft_config_str", peft_config_str_buf(m, key, def, out, err, sizeof err))
#undef CONFIG_GETTER

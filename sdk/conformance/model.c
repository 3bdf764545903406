/* model.c — what every conformance check does with a model: the sample adapter
 * config, loading a base with its inputs, injecting, perturbing the trainable tensors, a
 * forward (and backward) with a fixed objective, and comparisons.
 *
 * The objective is J = sum over the model's outputs of mean((out - target)^2), target a fixed
 * N(0, 1) draw: it works for every head (LM logits, QA start/end logits, hidden states), and
 * computed in double from the f32 outputs it gives finite differences far less noise than the
 * f32 loss would. */
#include <stddef.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peft/tokenizer.h"
#include "conformance.h"

char *pc_sample_config(const pc_env *env, const pc_model *model)
{
    const char *model_type = model->model_type;
    json_t *cfg = json_object();
    json_object_set_new(cfg, "peft_type", json_string(env->vt->peft_type));
    const char *const *defs = env->vt->default_targets ? env->vt->default_targets(model_type) : NULL;
    if (env->vt->caps & PEFT_CAP_PROMPT_LEARNING) {
        /* PromptLearningConfig: no target modules; a few virtual tokens */
        for (const char *const *k = env->vt->config_keys; k && *k; k++)
            if (!strcmp(*k, "num_virtual_tokens"))
                json_object_set_new(cfg, "num_virtual_tokens", json_integer(4));
            else if (!strcmp(*k, "task_type") && model->task_type[0])
                json_object_set_new(cfg, "task_type", json_string(model->task_type));
    } else if (defs) {
        json_t *list = json_array();
        for (; *defs; defs++) json_array_append_new(list, json_string(*defs));
        json_object_set_new(cfg, "target_modules", list);
    } else {
        json_object_set_new(cfg, "target_modules", json_string("all-linear"));
    }
    /* the plugin's own values for tiny models (ABI 1.3), then --config */
    if (env->vt->struct_size >= offsetof(peft_tuner_vtable, check_config) + sizeof(void *) &&
        env->vt->check_config) {
        json_t *own = json_loads(env->vt->check_config, 0, NULL);
        if (json_is_object(own)) json_object_update(cfg, own);
        json_decref(own);
    }
    if (env->config_extra) {
        json_t *extra = json_loads(env->config_extra, 0, NULL); /* checked when read */
        if (json_is_object(extra)) json_object_update(cfg, extra);
        json_decref(extra);
    }
    char *text = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(cfg);
    return text;
}

/* B = 2 rows of T = 8 random ids in [0, vocab); an encoder-decoder also gets Td = 6 random
 * decoder_input_ids (what a directory without an inputs.json runs on) */
static int random_inputs(peft_inputs *in, int64_t vocab, int enc_dec, uint64_t seed)
{
    memset(in, 0, sizeof *in);
    in->B = 2;
    in->T = 8;
    in->Td = enc_dec ? 6 : 0;
    in->input_ids = malloc((size_t)(in->B * in->T) * sizeof *in->input_ids);
    if (enc_dec) in->decoder_input_ids = malloc((size_t)(in->B * in->Td) * sizeof(int32_t));
    if (!in->input_ids || (enc_dec && !in->decoder_input_ids)) return -1;
    peft_rng rng;
    peft_rng_seed(&rng, seed ^ 0x1d5u);
    uint64_t v = (uint64_t)(vocab > 0 ? vocab : 2);
    for (int64_t i = 0; i < in->B * in->T; i++) in->input_ids[i] = (int32_t)(peft_rng_next(&rng) % v);
    for (int64_t i = 0; i < in->B * in->Td; i++)
        in->decoder_input_ids[i] = (int32_t)(peft_rng_next(&rng) % v);
    return 0;
}

int pc_open_base(const pc_env *env, const pc_model *model, pc_run_state *r, uint64_t seed,
                 char *msg, size_t len)
{
    (void)env;
    memset(r, 0, sizeof *r);
    r->ctx = peft_ctx_new(seed);
    peft_set_tokenizer(r->ctx, peft_tokenizer_text_hook, NULL);
    if (!r->ctx) return pc_msg(msg, len, -1, "out of memory");
    if (peft_load_base_model(r->ctx, model->dir, &r->base))
        return pc_msg(msg, len, -1, "the host cannot load base model %s: %s", model->dir,
                      peft_errmsg(r->ctx));
    if (model->inputs[0]) {
        if (peft_inputs_load_json(r->ctx, model->inputs, &r->in))
            return pc_msg(msg, len, -1, "%s", peft_errmsg(r->ctx));
    } else if (random_inputs(&r->in, model->vocab, peft_base_model_is_encoder_decoder(r->base), seed)) {
        return pc_msg(msg, len, -1, "out of memory");
    }
    r->g = peft_graph_new(peft_ctx_rng(r->ctx));
    if (!r->g) return pc_msg(msg, len, -1, "out of memory");
    return 0;
}

int pc_inject(const pc_env *env, const pc_model *model, pc_run_state *r, char *msg, size_t len)
{
    char *cfg = pc_sample_config(env, model);
    if (!cfg) return pc_msg(msg, len, -1, "out of memory");
    int rc = peft_get_peft_model(r->ctx, r->base, cfg, "default", 0, &r->m);
    if (rc) {
        pc_msg(msg, len, -1, "get_peft_model(%s) on %s failed: %s", cfg, model->label,
               peft_errmsg(r->ctx));
        free(cfg);
        return -1;
    }
    free(cfg);
    r->base = NULL; /* owned by the model now */
    peft_model_train(r->m, 0);
    return 0;
}

int pc_perturb(pc_run_state *r, uint64_t seed, char *msg, size_t len)
{
    peft_state_dict *sd;
    if (peft_trainable_parameters(r->m, &sd)) return pc_msg(msg, len, -1, "%s", peft_errmsg(r->ctx));
    peft_rng rng;
    peft_rng_seed(&rng, seed ^ 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < sd->n; i++) {
        peft_tensor *t = sd->tensors[i];
        if (t->dtype != PEFT_DTYPE_F32) {
            pc_msg(msg, len, -1, "trainable tensor %s is not f32 (dtype %d)", sd->names[i],
                   (int)t->dtype);
            peft_state_dict_free(sd);
            return -1;
        }
        float *p = peft_f32(t);
        for (int64_t k = 0; k < t->numel; k++) p[k] += (float)(0.05 * peft_rng_normal(&rng));
    }
    peft_state_dict_free(sd);
    return 0;
}

/* the outputs the objective covers, in a fixed order */
static int outputs_of(const peft_model_outputs *o, peft_tensor *ts[4])
{
    int n = 0;
    if (o->logits) ts[n++] = o->logits;
    if (o->start_logits) ts[n++] = o->start_logits;
    if (o->end_logits) ts[n++] = o->end_logits;
    if (n == 0 && o->last_hidden_state) ts[n++] = o->last_hidden_state;
    return n;
}

int pc_forward(pc_run_state *r, int record, char *msg, size_t len)
{
    peft_graph_reset(r->g);
    peft_graph_set_recording(r->g, record);
    peft_graph_set_training(r->g, 0);
    memset(&r->out, 0, sizeof r->out);
    peft_model_inputs mi;
    peft_inputs_view(&r->in, &mi);
    /* inputs without task_ids run as task 0 (every per-task method has it; others ignore it) */
    int32_t *tasks = mi.task_ids ? NULL : calloc((size_t)(mi.B > 0 ? mi.B : 1), sizeof *tasks);
    if (tasks) mi.task_ids = tasks;
    int rc = r->m ? peft_model_forward(r->m, r->g, &mi, &r->out)
                  : peft_base_model_forward(r->base, r->g, &mi, &r->out);
    free(tasks);
    if (rc) return pc_msg(msg, len, -1, "forward failed: %s",
                          r->m ? peft_errmsg(r->ctx) : peft_graph_error(r->g));
    peft_tensor *ts[4];
    int nt = outputs_of(&r->out, ts);
    if (nt == 0) return pc_msg(msg, len, -1, "forward gave no outputs");
    int64_t total = 0;
    for (int k = 0; k < nt; k++) total += ts[k]->numel;
    if (total != r->n_out) { /* one fixed target per output shape */
        free(r->target);
        r->target = malloc((size_t)total * sizeof *r->target);
        if (!r->target) return pc_msg(msg, len, -1, "out of memory");
        peft_rng rng;
        peft_rng_seed(&rng, 0x7a46e7u + (uint64_t)total);
        for (int64_t i = 0; i < total; i++) r->target[i] = (float)peft_rng_normal(&rng);
        r->n_out = total;
    }
    if (!record) return 0;
    peft_tensor *J = NULL;
    int64_t off = 0;
    for (int k = 0; k < nt; k++) {
        peft_tensor *e = peft_graph_mse(r->g, ts[k], r->target + off);
        off += ts[k]->numel;
        J = !e ? NULL : J ? peft_graph_add(r->g, J, e) : e;
        if (!J) return pc_msg(msg, len, -1, "out of arena memory building the objective");
    }
    if (!J || !J->requires_grad) return 0; /* nothing trainable reaches the outputs */
    if (peft_graph_backward(r->g, J)) return pc_msg(msg, len, -1, "%s", peft_graph_error(r->g));
    return 0;
}

double pc_objective(const pc_run_state *r)
{
    peft_tensor *ts[4];
    int nt = outputs_of(&r->out, ts);
    double J = 0;
    int64_t off = 0;
    for (int k = 0; k < nt; k++) {
        const float *o = peft_f32(ts[k]);
        double s = 0;
        for (int64_t i = 0; i < ts[k]->numel; i++) {
            double d = (double)o[i] - (double)r->target[off + i];
            s += d * d;
        }
        J += s / (double)ts[k]->numel;
        off += ts[k]->numel;
    }
    return J;
}

float *pc_copy_outputs(const pc_run_state *r, int64_t *n)
{
    peft_tensor *ts[4];
    int nt = outputs_of(&r->out, ts);
    int64_t total = 0;
    for (int k = 0; k < nt; k++) total += ts[k]->numel;
    float *c = malloc((size_t)(total ? total : 1) * sizeof *c), *p = c;
    if (!c) return NULL;
    for (int k = 0; k < nt; k++) {
        memcpy(p, ts[k]->data, (size_t)ts[k]->numel * sizeof *c);
        p += ts[k]->numel;
    }
    *n = total;
    return c;
}

void pc_close(pc_run_state *r)
{
    peft_graph_free(r->g);
    peft_model_free(r->m);
    peft_base_model_free(r->base);
    peft_inputs_free(&r->in);
    free(r->target);
    peft_ctx_free(r->ctx);
    memset(r, 0, sizeof *r);
}

double pc_max_diff(const float *a, const float *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

double pc_max_abs(const float *a, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

int pc_base_unchanged(peft_base_model *base, const char *dir, char *msg, size_t len)
{
    peft_base_model *fresh;
    char err[1024];
    peft_ctx *lctx = peft_ctx_new(0);
    int lrc = lctx ? peft_load_base_model(lctx, dir, &fresh) : PEFT_ENOMEM;
    if (lrc) snprintf(err, sizeof err, "%s", lctx ? peft_errmsg(lctx) : "out of memory");
    peft_ctx_free(lctx);
    if (lrc)
        return pc_msg(msg, len, -1, "reloading %s: %s", dir, err);
    int rc = 0;
    const size_t n = peft_base_model_num_params(base);
    if (n != peft_base_model_num_params(fresh)) {
        rc = pc_msg(msg, len, -1, "the base has %zu parameters after unload, %zu as loaded",
                    n, peft_base_model_num_params(fresh));
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *na, *nb;
        peft_tensor *a = peft_base_model_param(base, i, &na), *b = peft_base_model_param(fresh, i, &nb);
        if (strcmp(na, nb) || a->dtype != b->dtype ||
            a->numel != b->numel ||
            memcmp(a->data, b->data, (size_t)a->numel * peft_dtype_size(a->dtype)) != 0)
            rc = pc_msg(msg, len, -1, "base parameter %s differs from the file after unload",
                        na);
    }
    peft_base_model_free(fresh);
    return rc;
}

int pc_temp_template(char *buf, size_t len, const char *what)
{
    const char *t = getenv("TMPDIR");
    int n = snprintf(buf, len, "%s/peft-plugin-check-%s-XXXXXX", t && *t ? t : "/tmp", what);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

void pc_rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4600];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}


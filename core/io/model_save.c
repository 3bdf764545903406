/* model_save.c — a base model back to a Hugging Face directory: config.json and
 * model.safetensors, each written atomically (temporary name, fsync, rename). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util/fs.h"
#include "core/io/safetensors.h"
#include "core/io/dirsave.h"
#include "peft/dtype.h"
#include "peft/graph.h"
#include "peft/peft.h"
#include "peft/model_save.h"
#include "core/model/model_internal.h"
#include "peft/util.h"
#include "peft/safetensors.h"

static const char *torch_dtype(int32_t dtype)
{
    return dtype == PEFT_DTYPE_BF16 ? "bfloat16" : dtype == PEFT_DTYPE_F16 ? "float16" : "float32";
}

static int write_config(const peft_base_model *m, const char *dir, int32_t dtype, char *err, size_t errlen)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    json_t *cfg = json_deep_copy(m->config);
    if (!cfg) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    json_object_set_new(cfg, "torch_dtype", json_string(torch_dtype(dtype)));
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(cfg);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = peft_write_file_atomic_buf(path, text, strlen(text), err, errlen);
    free(text);
    if (rc) return -1;
    return 0;
}

/* the save with the message in err: PEFT_OK or a PEFT_E* code */
static int model_save(const peft_base_model *m, const char *dir, int32_t dtype, char *err,
                      size_t errlen)
{
    if (!m || !dir || !*dir) {
        snprintf(err, errlen, "peft_base_model_save: a model and a directory are required");
        return PEFT_EINVAL;
    }
    if (m->meta) {
        snprintf(err, errlen, "%s: a weight-free (config-only) model cannot be saved", dir);
        return PEFT_EINVAL;
    }
    if (dtype != PEFT_DTYPE_F32 && dtype != PEFT_DTYPE_BF16 && dtype != PEFT_DTYPE_F16) {
        snprintf(err, errlen, "save: dtype must be F32, BF16 or F16");
        return PEFT_EINVAL;
    }
    /* config.json and model.safetensors as one set: staged, then swapped in (dirsave.h) */
    peft_dirsave ds;
    if (peft_dirsave_begin(&ds, dir, err, errlen)) return PEFT_EIO;
    peft_st_out *outs = calloc(m->n_params + 1, sizeof *outs);
    void **bufs = calloc(m->n_params + 1, sizeof *bufs);
    int rc = PEFT_ENOMEM;
    if (!outs || !bufs) goto oom;
    for (size_t i = 0; i < m->n_params; i++) {
        const peft_tensor *t = m->params[i].t;
        const void *data = t->data;
        if (t->dtype != dtype) { /* through f32: every stored dtype converts to f32 exactly */
            float *f = malloc((size_t)t->numel * sizeof *f + 1);
            bufs[i] = malloc((size_t)t->numel * peft_dtype_size(dtype) + 1);
            if (!f || !bufs[i]) {
                free(f);
                goto oom;
            }
            peft_tensor_to_f32(t, f);
            peft_convert_from_f32(dtype, f, bufs[i], t->numel);
            free(f);
            data = bufs[i];
        }
        outs[i] = (peft_st_out){m->params[i].name, dtype, t->ndim, t->shape, data};
    }
    char path[4096];
    static const char *const meta[] = {"format", "pt", NULL};
    rc = peft_path_join(path, sizeof path, ds.stage, "model.safetensors") ? PEFT_EINVAL : PEFT_OK;
    if (rc) snprintf(err, errlen, "%s: path too long", ds.stage);
    else rc = peft_st_write_buf(path, outs, m->n_params, meta, err, errlen);
    if (rc == 0 && write_config(m, ds.stage, dtype, err, errlen)) rc = PEFT_EIO;
    if (rc == 0) rc = peft_dirsave_commit(&ds, err, errlen) ? PEFT_EIO : PEFT_OK;
    else peft_dirsave_abort(&ds);
    goto out;
oom:
    snprintf(err, errlen, "%s: out of memory", dir);
    peft_dirsave_abort(&ds);
out:
    for (size_t i = 0; bufs && i < m->n_params; i++) free(bufs[i]);
    free(bufs);
    free(outs);
    return rc;
}

int peft_base_model_save(peft_ctx *ctx, const peft_base_model *m, const char *dir, int32_t dtype)
{
    char err[8192] = ""; /* paths up to 4 KiB and the message */
    int rc = model_save(m, dir, dtype, err, sizeof err);
    return rc ? peft_set_error(ctx, rc, "%s", err) : PEFT_OK;
}

/* threads.c — the thread check: two models (each its own context, base and
 * adapter) run forward and backward at the same time in two threads and give the same outputs
 * and gradients, bit for bit, as one model alone. Catches plugins that keep per-call state in
 * globals or statics. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

typedef struct job {
    const pc_env *env;
    const pc_model *model;
    float *out, *grads; /* outputs; every trainable tensor's gradient concatenated */
    int64_t n_out, n_grads;
    int rc;
    char msg[PC_MSG];
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    pc_run_state r;
    peft_state_dict *sd = NULL;
    j->rc = -1;
    if (pc_open_base(j->env, j->model, &r, 8, j->msg, sizeof j->msg) ||
        pc_inject(j->env, j->model, &r, j->msg, sizeof j->msg) ||
        pc_perturb(&r, 8, j->msg, sizeof j->msg))
        goto done;
    if (peft_trainable_parameters(r.m, &sd)) {
        snprintf(j->msg, sizeof j->msg, "%s", peft_errmsg(r.ctx));
        goto done;
    }
    for (size_t i = 0; i < sd->n; i++) peft_tensor_zero_grad(sd->tensors[i]);
    if (pc_forward(&r, 1, j->msg, sizeof j->msg)) goto done;
    if (!(j->out = pc_copy_outputs(&r, &j->n_out))) goto done;
    int64_t total = 0;
    for (size_t i = 0; i < sd->n; i++) total += sd->tensors[i]->numel;
    j->grads = calloc((size_t)(total ? total : 1), sizeof *j->grads);
    if (!j->grads) goto done;
    for (size_t i = 0, off = 0; i < sd->n; off += (size_t)sd->tensors[i]->numel, i++)
        if (sd->tensors[i]->grad)
            memcpy(j->grads + off, sd->tensors[i]->grad, (size_t)sd->tensors[i]->numel * sizeof(float));
    j->n_grads = total;
    j->rc = 0;
done:
    peft_state_dict_free(sd);
    pc_close(&r);
    return NULL;
}

static int same(const job *a, const job *b)
{
    return a->n_out == b->n_out && a->n_grads == b->n_grads &&
           memcmp(a->out, b->out, (size_t)a->n_out * sizeof(float)) == 0 &&
           memcmp(a->grads, b->grads, (size_t)a->n_grads * sizeof(float)) == 0;
}

int pc_check_threads(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    job ref = {.env = env, .model = model};
    job t[2] = {{.env = env, .model = model}, {.env = env, .model = model}};
    int status = PC_FAIL;
    run_job(&ref);
    if (ref.rc) {
        pc_msg(msg, len, PC_FAIL, "%s", ref.msg);
        goto done;
    }
    pthread_t th[2];
    int started = 0;
    for (; started < 2; started++)
        if (pthread_create(&th[started], NULL, run_job, &t[started]) != 0) break;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    if (started < 2) {
        pc_msg(msg, len, PC_FAIL, "pthread_create failed");
        goto done;
    }
    for (int i = 0; i < 2; i++) {
        if (t[i].rc) {
            pc_msg(msg, len, PC_FAIL, "thread %d: %s", i + 1, t[i].msg);
            goto done;
        }
        if (!same(&t[i], &ref)) {
            double d = t[i].n_out == ref.n_out ? pc_max_diff(t[i].out, ref.out, ref.n_out) : -1;
            double dg = t[i].n_grads == ref.n_grads ? pc_max_diff(t[i].grads, ref.grads, ref.n_grads) : -1;
            pc_msg(msg, len, PC_FAIL, "thread %d differs from the single-threaded run: outputs by "
                   "%.3g, gradients by %.3g (global state in the plugin?)", i + 1, d, dg);
            goto done;
        }
    }
    status = pc_msg(msg, len, PC_PASS, "two models in two threads: outputs and %lld gradient "
                    "values identical to one model alone", (long long)ref.n_grads);
done:
    free(ref.out);
    free(ref.grads);
    for (int i = 0; i < 2; i++) {
        free(t[i].out);
        free(t[i].grads);
    }
    return status;
}

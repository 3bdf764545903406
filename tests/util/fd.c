/* fd.c — the finite-difference gradient harness (fd.h). */
#include "fd.h"
#include "core/tensor/graph_internal.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


peft_rng fd_rng;

peft_tensor *fd_rand_tensor(int ndim, const int64_t *shape, float scale, int requires_grad)
{
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->numel; i++) peft_f32(t)[i] = scale * (float)peft_rng_normal(&fd_rng);
    t->requires_grad = requires_grad;
    return t;
}

/* scalar L = sum(out * R) in double (L = out for a scalar output), forward only */
static double eval_loss(const fd_opts *o, fd_build_fn f, peft_tensor **in, const void *ud,
                        const float *R)
{
    peft_rng r;
    peft_rng_seed(&r, o->graph_seed);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_training(g, o->training);
    peft_graph_set_recording(g, 0);
    peft_tensor *out = f(g, in, ud);
    ck_assert_ptr_nonnull(out);
    double L = 0.0;
    for (int64_t i = 0; i < out->numel; i++) L += (double)peft_f32(out)[i] * (R ? R[i] : 1.0);
    peft_graph_free(g);
    return L;
}

void fd_check_grads(const fd_opts *o, const char *name, fd_build_fn f, peft_tensor **in, int n_in,
                    const void *ud, double eps, double rtol, double atol)
{
    for (int i = 0; i < n_in; i++)
        if (in[i]->grad) peft_tensor_zero_grad(in[i]);
    peft_rng r;
    peft_rng_seed(&r, o->graph_seed);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_training(g, o->training);
    peft_graph_set_recording(g, 1);
    peft_tensor *out = f(g, in, ud);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(out->requires_grad, 1);
    ck_assert_uint_gt(g->n_nodes, 0);
    float *R = NULL;
    if (out->ndim == 0) {
        ck_assert_int_eq(peft_graph_backward(g, out), 0);
    } else {
        R = malloc((size_t)out->numel * sizeof *R);
        for (int64_t i = 0; i < out->numel; i++) R[i] = (float)peft_rng_normal(&fd_rng);
        float *go = peft_grad_of(g, out);
        ck_assert_ptr_nonnull(go);
        memcpy(go, R, (size_t)out->numel * sizeof *R);
        for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    }
    peft_graph_free(g);

    for (int i = 0; i < n_in; i++) {
        peft_tensor *t = in[i];
        if (!t->requires_grad) {
            ck_assert_msg(t->grad == NULL, "%s: input %d got a grad it does not need", name, i);
            continue;
        }
        ck_assert_msg(t->grad != NULL, "%s: input %d has no grad", name, i);
        float *x = peft_f32(t);
        for (int64_t j = 0; j < t->numel; j++) {
            const float orig = x[j];
            x[j] = (float)(orig + eps);
            const double hp = (double)x[j] - orig;
            const double lp = eval_loss(o, f, in, ud, R);
            x[j] = (float)(orig - eps);
            const double hm = orig - (double)x[j];
            const double lm = eval_loss(o, f, in, ud, R);
            x[j] = orig;
            const double num = (lp - lm) / (hp + hm);
            const double ana = t->grad[j];
            const double tol = atol + rtol * fmax(fabs(num), fabs(ana));
            ck_assert_msg(fabs(num - ana) <= tol, "%s: input %d elem %ld: analytic %.6g numeric %.6g",
                          name, i, (long)j, ana, num);
        }
    }
    free(R);
}

void fd_free_all(peft_tensor **in, int n)
{
    for (int i = 0; i < n; i++) peft_tensor_free(in[i]);
}

/* grad.c — the backward check: the gradient the plugin's backward gives every
 * trainable tensor matches central finite differences of the objective (model.c).
 *
 * Per tensor, two directional derivatives are compared: along the gradient itself (its slope
 * must be |g|: catches a scaled or partly wrong gradient) and along a random unit direction
 * (catches errors orthogonal to g, and a zero gradient where the objective does move).
 * fd = (J(t + eps d) - J(t - eps d)) / (2 eps), J in double from the f32 outputs. The f32
 * rounding of the outputs is noise of about 1e-8 / eps in fd, the curvature an error of about
 * eps^2 J''' (and ReLU kinks one that grows with eps): eps = 3e-2 first, and when that misses,
 * 1e-2, 1e-1, then 3e-3 and 1e-3 (a ReLU kink a few 1e-3 away from a pre-activation: the
 * error of a kink shrinks only linearly with eps; P-tuning's MLP on the fixture GPT-2); a wrong
 * gradient misses at every eps.
 *
 * A plugin with PEFT_CAP_STRAIGHT_THROUGH (ABI 1.3) declares that some gradients are
 * straight-through estimates (OFT's coft: forward projects, backward passes through): a tensor
 * whose gradient misses the finite differences then passes when its gradient is finite and a
 * descent direction (the objective falls along -g), and the summary counts such tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

static const double FD_EPS[] = {3e-2, 1e-2, 1e-1, 3e-3, 1e-3};
#define FD_RTOL 2e-2  /* of |g|, the largest slope any unit direction can have */
#define FD_ATOL 2e-6  /* f32 rounding of the outputs, seen through eps */
#define FD_MAX_TENSORS 48

/* J(t + s d) with t restored bit-exactly afterwards */
static int objective_at(pc_run_state *r, peft_tensor *t, const float *t0, const double *d,
                        double s, double *J, char *msg, size_t len)
{
    float *p = peft_f32(t);
    for (int64_t k = 0; k < t->numel; k++) p[k] = (float)((double)t0[k] + s * d[k]);
    int rc = pc_forward(r, 0, msg, len);
    *J = rc ? NAN : pc_objective(r);
    memcpy(p, t0, (size_t)t->numel * sizeof *p);
    return rc;
}

/* what the tensors checked so far add up to */
typedef struct fd_tally {
    peft_rng rng;           /* the random directions */
    int straight;           /* the plugin declares straight-through estimates */
    double worst;           /* the largest error / allowed error */
    const char *worst_name;
    size_t n_straight;      /* tensors passed as straight-through estimates */
} fd_tally;

/* copies of the first nt tensors' gradients; NULL with msg (no gradient, or out of memory) */
static float **copy_grads(const peft_state_dict *sd, size_t nt, char *msg, size_t len)
{
    float **grads = calloc(nt, sizeof *grads);
    if (!grads) return pc_msg(msg, len, PC_FAIL, "out of memory"), NULL;
    for (size_t i = 0; i < nt; i++) {
        const peft_tensor *t = sd->tensors[i];
        if (!t->grad) {
            pc_msg(msg, len, PC_FAIL, "no gradient for %s (does forward record its backward with "
                   "tape_push when graph_recording is on?)", sd->names[i]);
            goto fail;
        }
        if (!(grads[i] = malloc((size_t)t->numel * sizeof(float)))) {
            pc_msg(msg, len, PC_FAIL, "out of memory");
            goto fail;
        }
        memcpy(grads[i], t->grad, (size_t)t->numel * sizeof(float));
    }
    return grads;
fail:
    for (size_t i = 0; i < nt; i++) free(grads[i]);
    free(grads);
    return NULL;
}

static int all_zero(const peft_state_dict *sd, size_t nt, float *const *grads)
{
    for (size_t i = 0; i < nt; i++)
        for (int64_t k = 0; k < sd->tensors[i]->numel; k++)
            if (grads[i][k] != 0.0f) return 0;
    return 1;
}

/* A straight-through estimate g (see the top): finite, and J falls along -g. 1 it is (counted),
 * else 0 with msg */
static int straight_through_ok(pc_run_state *r, peft_tensor *t, const char *name, const float *g,
                               double gn, const float *t0, double *d, fd_tally *y, char *msg, size_t len)
{
    const int64_t n = t->numel;
    int finite = 1;
    for (int64_t k = 0; k < n && finite; k++) finite = isfinite(g[k]);
    for (int64_t k = 0; k < n && gn > 0; k++) d[k] = g[k] / gn;
    double jp, jm;
    if (finite && gn > 0 &&
        !objective_at(r, t, t0, d, FD_EPS[1], &jp, msg, len) &&
        !objective_at(r, t, t0, d, -FD_EPS[1], &jm, msg, len) && jm < jp) {
        y->n_straight++;
        return 1;
    }
    pc_msg(msg, len, PC_FAIL, "gradient of %s (straight-through): %s", name,
           !finite ? "not finite" : "not a descent direction of the objective");
    return 0;
}

/* The directional derivative of tensor t (data t0, gradient g, |g| = gn) along g (dir 0) or a
 * random unit direction (dir 1), d its scratch: 0 it matches the finite differences, 1 a
 * straight-through estimate passed (the other direction says nothing), -1 with msg */
static int check_direction(pc_run_state *r, peft_tensor *t, const char *name, const float *g, double gn,
                           const float *t0, double *d, int dir, fd_tally *y, char *msg, size_t len)
{
    const int64_t n = t->numel;
    double dn = 0;
    for (int64_t k = 0; k < n; k++) {
        d[k] = dir == 0 ? g[k] : peft_rng_normal(&y->rng);
        dn += d[k] * d[k];
    }
    if (dn == 0) return 0; /* a zero gradient: the random direction tests it */
    dn = sqrt(dn);
    double an = 0;
    for (int64_t k = 0; k < n; k++) {
        d[k] /= dn;
        an += g[k] * d[k];
    }
    double fd = 0, err = INFINITY, allowed = FD_RTOL * gn + FD_ATOL;
    for (size_t e = 0; e < sizeof FD_EPS / sizeof FD_EPS[0] && !(err <= allowed); e++) {
        double jp, jm;
        if (objective_at(r, t, t0, d, FD_EPS[e], &jp, msg, len) ||
            objective_at(r, t, t0, d, -FD_EPS[e], &jm, msg, len))
            return -1;
        double fd_e = (jp - jm) / (2 * FD_EPS[e]);
        if (fabs(fd_e - an) < err) err = fabs(fd_e - an), fd = fd_e;
    }
    if (!(err <= allowed) && y->straight)
        return straight_through_ok(r, t, name, g, gn, t0, d, y, msg, len) ? 1 : -1;
    if (!(err <= allowed)) {
        pc_msg(msg, len, PC_FAIL, "gradient of %s: along %s the backward gives %.6g, "
               "finite differences %.6g (|g| = %.3g, allowed error %.2g)", name,
               dir == 0 ? "the gradient" : "a random direction", an, fd, gn, allowed);
        return -1;
    }
    double rel = err / allowed;
    if (rel > y->worst) y->worst = rel, y->worst_name = name;
    return 0;
}

/* one tensor, along its gradient and a random direction: 0, or -1 with msg */
static int check_tensor(pc_run_state *r, peft_tensor *t, const char *name, const float *g, fd_tally *y,
                        char *msg, size_t len)
{
    const int64_t n = t->numel;
    float *t0 = malloc((size_t)n * sizeof *t0);
    double *d = malloc((size_t)n * sizeof *d);
    int rc = 0;
    if (!t0 || !d) {
        pc_msg(msg, len, PC_FAIL, "out of memory");
        rc = -1;
        goto out;
    }
    memcpy(t0, t->data, (size_t)n * sizeof *t0);
    double gn = 0;
    for (int64_t k = 0; k < n; k++) gn += (double)g[k] * g[k];
    gn = sqrt(gn);
    for (int dir = 0; dir < 2; dir++) {
        rc = check_direction(r, t, name, g, gn, t0, d, dir, y, msg, len);
        if (rc) break;
    }
out:
    free(t0);
    free(d);
    return rc < 0 ? -1 : 0;
}

int pc_check_backward(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    pc_run_state r;
    int status = PC_FAIL;
    peft_state_dict *sd = NULL;
    float **grads = NULL;
    size_t nt = 0;
    if (pc_open_base(env, model, &r, 3, msg, len)) {
        pc_close(&r);
        return PC_SKIP;
    }
    if (pc_inject(env, model, &r, msg, len) || pc_perturb(&r, 3, msg, len)) goto done;
    if (peft_trainable_parameters(r.m, &sd)) {
        pc_msg(msg, len, PC_FAIL, "%s", peft_errmsg(r.ctx));
        goto done;
    }
    nt = sd->n < FD_MAX_TENSORS ? sd->n : FD_MAX_TENSORS;
    if (nt == 0) {
        pc_msg(msg, len, PC_FAIL, "no trainable tensors");
        goto done;
    }
    for (size_t i = 0; i < sd->n; i++) peft_tensor_zero_grad(sd->tensors[i]);
    if (pc_forward(&r, 1, msg, len) || !(grads = copy_grads(sd, nt, msg, len))) goto done;
    if (all_zero(sd, nt, grads)) {
        pc_msg(msg, len, PC_FAIL, "every gradient is zero, yet the outputs depend on the "
               "trainable tensors (does forward record its backward?)");
        goto done;
    }

    fd_tally y = {.straight = env->vt && (env->vt->caps & PEFT_CAP_STRAIGHT_THROUGH), .worst_name = ""};
    peft_rng_seed(&y.rng, 17);
    for (size_t i = 0; i < nt; i++)
        if (check_tensor(&r, sd->tensors[i], sd->names[i], grads[i], &y, msg, len)) goto done;
    if (y.n_straight)
        status = pc_msg(msg, len, PC_PASS, "%zu trainable tensors%s: %zu match finite differences "
                        "(worst: %.1f%% of the tolerance, %s), %zu straight-through estimates "
                        "are descent directions", nt, sd->n > nt ? " (the first)" : "",
                        nt - y.n_straight, 100 * y.worst, y.worst_name, y.n_straight);
    else
        status = pc_msg(msg, len, PC_PASS, "%zu trainable tensors%s match finite differences "
                        "(worst: %.1f%% of the tolerance, %s)", nt,
                        sd->n > nt ? " (the first)" : "", 100 * y.worst, y.worst_name);
done:
    if (grads)
        for (size_t i = 0; i < nt; i++) free(grads[i]);
    free(grads);
    peft_state_dict_free(sd);
    pc_close(&r);
    return status;
}

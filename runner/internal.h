/* runner_internal.h — the state of one run in training, shared by the training loop
 * (runner_train.c) and its checkpoints (runner_ckpt.c). Not part of the public API. */
#ifndef PEFT_RUNNER_INTERNAL_H
#define PEFT_RUNNER_INTERNAL_H

#include "peft/optim.h"
#include "runner/runner.h"

typedef struct runner_state {
    int64_t step;            /* optimizer updates done */
    int64_t epoch;           /* passes over the training set begun */
    int64_t pos;             /* next index into perm */
    peft_rng epoch_rng;      /* the data RNG before this epoch's shuffle (regenerates perm) */
    peft_rng data_rng;       /* the data RNG now */
    size_t *perm;            /* this epoch's order of the training examples (owned) */
    size_t n_train;
    runner_result *res;      /* curves, best, timings (borrowed) */
    double train_seconds;    /* accumulated over sessions */
    double elapsed_seconds;  /* wall time of earlier sessions (evaluations included) */
} runner_state;

/* shuffles perm for a new epoch from data_rng (Fisher-Yates), remembering the RNG before */
void runner_state_new_epoch(runner_state *s);

/* One file, written atomically: every trainable parameter, AdamW's moments and step, and the
 * runner state (step, epoch, data order, both RNGs, curves, best, timings) as metadata. */
int runner_ckpt_save(const char *path, const peft_adamw *opt, const runner_state *s,
                     const peft_rng *model_rng, const json_t *config, char *err, size_t errlen);
/* Restores a checkpoint into an optimizer bound to the same run's parameters; a checkpoint of
 * another configuration (config differs) is refused. */
int runner_ckpt_load(const char *path, peft_adamw *opt, runner_state *s, peft_rng *model_rng,
                     const json_t *config, char *err, size_t errlen);

/* ---- MPI scheduling (runner_sched.c) ---- */
/* trains run i of the batch: 0, RUNNER_STOPPED, or -1 with err */
typedef int (*runner_job_fn)(void *ud, int i, char *err, size_t errlen);
/* rank 0: hands out queue[0..n) (in that order) to the ranks that ask, runs them itself too;
 * sets o->poll while it trains. 0, RUNNER_STOPPED, or -1 (a run failed here or elsewhere). */
int runner_sched_lead(const int *queue, int n, runner_job_fn job, void *ud, runner_opts *o, char *err,
                      size_t errlen);
/* the other ranks: ask rank 0 for runs until it has none. 0, RUNNER_STOPPED or -1. */
int runner_sched_work(runner_job_fn job, void *ud, const runner_opts *o, char *err, size_t errlen);

/* curves */
int runner_curve_push(runner_point **pts, size_t *n, int64_t step, double v);

#endif

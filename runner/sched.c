/* runner_sched.c — the runs of a batch spread over MPI ranks by dynamic scheduling. Rank 0 holds
 * the queue (longest run first) and hands out one run at a time: a rank that finishes asks for
 * the next. Rank 0 trains runs too, and answers the others' requests between its own runs and
 * after each of its optimizer updates (runner_opts.poll), so that with 2 ranks on 2 cores both
 * compute. Messages (dist.h, one int each): a request carries the sender's last outcome (ready,
 * done, stopped, failed); the answer is a run index or -1 (no more work). A stop request
 * (Ctrl-C, SIGTERM) or a failure anywhere ends the handing out; every rank then finishes or
 * checkpoints its current run and the batch can be resumed by running the same command. */
#include <stdio.h>
#include <stdlib.h>
#include "runner/dist.h"
#include "runner/internal.h"

#define TAG_REQ 11
#define TAG_RUN 12
#define ST_READY 0
#define ST_DONE 1
#define ST_STOPPED 2
#define ST_FAILED 3

typedef struct lead {
    const int *queue;
    int n, next;
    int active;               /* ranks that have not been told "no more work" */
    int stopped, failed, failed_rank;
    volatile sig_atomic_t *stop;
} lead;

static int handing_out(const lead *l)
{
    return l->next < l->n && !l->stopped && !l->failed && !(l->stop && *l->stop);
}

static void answer(lead *l, int src, int status)
{
    if (status == ST_STOPPED) l->stopped = 1;
    if (status == ST_FAILED && !l->failed) l->failed = 1, l->failed_rank = src;
    if (handing_out(l)) {
        runner_dist_send(src, TAG_RUN, l->queue[l->next++]);
    } else {
        runner_dist_send(src, TAG_RUN, -1);
        l->active--;
    }
}

static void service(void *ud)
{
    lead *l = ud;
    int src, status;
    while (runner_dist_poll(TAG_REQ, &src, &status)) answer(l, src, status);
}

int runner_sched_lead(const int *queue, int n, runner_job_fn job, void *ud, runner_opts *o, char *err,
                      size_t errlen)
{
    lead l = {.queue = queue, .n = n, .active = runner_dist_size() - 1, .stop = o->stop};
    o->poll = service;
    /* borrowed only while the loop below runs: both are cleared before returning */
    // cppcheck-suppress autoVariables
    o->poll_ud = &l;
    int own = 0;
    service(&l);
    while (handing_out(&l)) {
        int i = l.queue[l.next++];
        int rc = job(ud, i, err, errlen);
        if (rc == RUNNER_STOPPED) l.stopped = 1;
        else if (rc) own = -1, l.failed = 1, l.failed_rank = 0;
        service(&l);
    }
    o->poll = NULL;
    o->poll_ud = NULL;
    while (l.active > 0) { /* the others' last runs */
        int src, status;
        if (runner_dist_wait(-1, TAG_REQ, &status, &src)) break;
        answer(&l, src, status);
    }
    if (own) return -1;
    if (l.failed) return snprintf(err, errlen, "a run failed on rank %d (its message is above)", l.failed_rank), -1;
    if (l.stopped || (o->stop && *o->stop)) return RUNNER_STOPPED;
    return 0;
}

int runner_sched_work(runner_job_fn job, void *ud, const runner_opts *o, char *err, size_t errlen)
{
    int status = ST_READY, rc = 0;
    for (;;) {
        if (o->stop && *o->stop && status != ST_FAILED) status = ST_STOPPED;
        if (runner_dist_send(0, TAG_REQ, status)) return snprintf(err, errlen, "cannot reach rank 0"), -1;
        int i;
        if (runner_dist_wait(0, TAG_RUN, &i, NULL)) return snprintf(err, errlen, "cannot reach rank 0"), -1;
        if (i < 0) break;
        rc = job(ud, i, err, errlen);
        status = rc == 0 ? ST_DONE : rc == RUNNER_STOPPED ? ST_STOPPED : ST_FAILED;
    }
    return status == ST_FAILED ? -1 : status == ST_STOPPED ? RUNNER_STOPPED : 0;
}

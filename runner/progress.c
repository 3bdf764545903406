/* runner_progress.c — the per-run progress display: on a terminal a bar redrawn in place
 * (step, loss, learning rate, tokens/s); otherwise nothing per step (the training loop prints a
 * plain log line at every evaluation). Writes only to the caller's opts->log. */
#include <stdio.h>
#include "runner/runner.h"

void runner_progress(const runner_opts *o, const char *run, int64_t step, int64_t total,
                     double loss, double lr, double tok_s)
{
    if (!o || !o->log || !o->progress_bar || total <= 0) return;
    enum { WIDTH = 28 };
    int done = (int)(WIDTH * step / total);
    fprintf(o->log, "\r  %-24.24s [%.*s%*s] %lld/%lld loss %.4f lr %.2e %.0f tok/s \033[K", run, done,
            "############################", WIDTH - done, "", (long long)step, (long long)total, loss, lr, tok_s);
    fflush(o->log);
}

void runner_progress_done(const runner_opts *o)
{
    if (!o || !o->log || !o->progress_bar) return;
    fputs("\r\033[K", o->log);
    fflush(o->log);
}

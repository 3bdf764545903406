/* test_pool_crash.c — Check suite (white box) for the crash report of a fault in a kernel slice
 * that a pool worker thread runs (core/ops/pool.c, core/tuner/plugin_call.h): the worker takes
 * the record of the plugin call that started the parallel region, so a fault in the worker's
 * slice names the plugin, its entry, adapter and module exactly as a fault on the calling thread
 * does ("in its forward entry ..."); with no plugin call running, no plugin is named. Each case
 * runs in a forked child whose stderr is read back. */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/ops/pool.h"
#include "core/tuner/plugin_call.h"
#include "testutil.h"

/* a slice that faults when it is not the first: slice 0 runs on the caller, the others on the
 * pool's workers, so the fault happens on a worker thread */
static void fault_off_caller(void *ctx, int64_t lo, int64_t hi)
{
    (void)hi;
    if (lo > 0) {
        volatile int *p = (volatile int *)ctx; /* NULL */
        *p = 1;
    }
}

/* the child: (with a plugin call record when *arg) a 2-thread parallel region whose worker
 * slice faults */
static void faulting_region(void *arg)
{
    peft_plugin_crash_handlers_install();
    peft_plugin_call c;
    if (*(const int *)arg)
        peft_plugin_call_enter(&c, "poolfault", "forward", "mine", "transformer.h.0.attn.c_attn");
    ops_parallel_n(2, 2, 1, fault_off_caller, NULL);
}

/* the child's wait status, its stderr in text */
static int run_child(int with_record, char *text, size_t len)
{
    return tu_child_stderr(faulting_region, &with_record, text, len);
}


START_TEST(worker_fault_names_plugin)
{
    char text[4096];
    int st = run_child(1, text, sizeof text);
    ck_assert_msg(tu_died_of_segv(st), "child status %d, stderr: %s", st, text);
    ck_assert_msg(strstr(text, "libpeft: plugin 'poolfault' crashed with SIGSEGV (segmentation fault) "
                               "in its forward entry (adapter 'mine', module 'transformer.h.0.attn.c_attn')"),
                  "stderr: %s", text);
}
END_TEST

START_TEST(worker_fault_without_plugin_names_none)
{
    char text[4096];
    int st = run_child(0, text, sizeof text);
    ck_assert_msg(tu_died_of_segv(st), "child status %d, stderr: %s", st, text);
    ck_assert_msg(!strstr(text, "plugin '"), "a fault outside any plugin call blamed one: %s", text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool_crash");
    TCase *tc = tcase_create("worker");
    tcase_add_test(tc, worker_fault_names_plugin);
    tcase_add_test(tc, worker_fault_without_plugin_names_none);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}

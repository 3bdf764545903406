/* testutil.h — helpers shared by the Check suites: fixture paths, temp dirs, comparisons. */
#ifndef PEFT_TESTUTIL_H
#define PEFT_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* "$PEFT_FIXTURES/<rel>" (default tests/fixtures); static buffer rotated over 8 calls */
const char *tu_fixture(const char *rel);
/* a context for the calls that report on one (created on first use, lives as long as the test
 * process; each test runs in its own fork) */
typedef struct peft_ctx peft_ctx;
peft_ctx *tu_ctx(void);
/* "$PEFT_BUILD/<rel>" (default ./build) */
const char *tu_build(const char *rel);
/* a fresh empty temp directory (mkdtemp under $TMPDIR or /tmp); caller frees the string */
char *tu_tmpdir(void);
/* rm -rf path (for temp dirs made by tu_tmpdir) */
void tu_rmtree(const char *path);
/* largest |a[i]-b[i]| */
double tu_max_abs_diff(const float *a, const float *b, int64_t n);
/* reads a whole file; caller frees; NULL if unreadable */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);

/* a warning handler that drops the message (peft_set_warning_handler(tu_quiet, NULL)) */
void tu_quiet(const char *msg, void *ud);

/* runs suite s (CK_NORMAL output) and frees its runner; the number of failed checks */
int tu_run_suite(Suite *s);

/* The tag of a long suite's second part: `make check` runs such a suite as two processes side
 * by side, CK_EXCLUDE_TAGS=part2 and CK_INCLUDE_TAGS=part2 (two logs, one summary); run alone,
 * the suite runs both parts. */
#define TU_PART2 "part2"

/* runs child(arg) in a forked process whose stderr goes to a pipe (the child exits 0 if child
 * returns); its stderr in text (NUL-terminated, at most len - 1 bytes); returns the child's wait
 * status (for the crash-report tests: a child that dies of a signal, what it printed first) */
int tu_child_stderr(void (*child)(void *arg), void *arg, char *text, size_t len);
/* wait status st says the child died of a segmentation fault: SIGSEGV; in a build under
 * AddressSanitizer (`make asan`), which reports the fault itself after libpeft's crash report
 * and exits, exit status 1. Inline: decided by how the calling suite is compiled. */
#include <signal.h>
#include <sys/wait.h>
static inline int tu_died_of_segv(int st)
{
#ifdef __SANITIZE_ADDRESS__
    return WIFEXITED(st) && WEXITSTATUS(st) == 1;
#else
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
#endif
}

/* runs the shell command line cmd; its whole stdout in *out (caller frees); returns pclose's
 * wait status (fails the test if popen does) */
int tu_run_cmd(const char *cmd, char **out);
/* runs build/peft with the printf-formatted args, stdout+stderr captured (`2>&1`); returns the
 * exit code (128 if it did not exit normally); the output in *out (caller frees), or freed when
 * out is NULL */
int tu_run_peft(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

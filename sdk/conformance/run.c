/* run.c — how `peft plugin-check` runs a check: in a forked child with a timeout,
 * so that a plugin that crashes or hangs in one check fails that check (naming the signal) and
 * the others still run; and the valgrind run of the forward/backward check. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"

int pc_msg(char *msg, size_t len, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return status;
}

/* "SIGSEGV (Segmentation fault)" */
static void signal_name(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    const char *desc = strsignal(sig);
    if (abbrev)
        snprintf(buf, len, "SIG%s (%s)", abbrev, desc ? desc : "?");
    else
        snprintf(buf, len, "signal %d", sig);
}

/* what a child sends back through its pipe */
typedef struct pc_wire {
    int status;
    char msg[PC_MSG];
} pc_wire;

int pc_run(const pc_env *env, const pc_model *model, pc_check_fn fn, int fork_it, char *msg,
           size_t len)
{
    msg[0] = 0;
    if (!fork_it) return fn(env, model, msg, len);

    int fd[2];
    if (pipe(fd) != 0) return pc_msg(msg, len, PC_FAIL, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return pc_msg(msg, len, PC_FAIL, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fd[0]);
        signal(SIGALRM, SIG_DFL);
        alarm((unsigned)env->timeout);
        pc_wire w;
        memset(&w, 0, sizeof w);
        w.status = fn(env, model, w.msg, sizeof w.msg);
        ssize_t off = 0;
        while (off < (ssize_t)sizeof w) {
            ssize_t n = write(fd[1], (const char *)&w + off, sizeof w - (size_t)off);
            if (n <= 0) break;
            off += n;
        }
        close(fd[1]);
        _exit(0);
    }
    close(fd[1]);
    pc_wire w;
    ssize_t got = 0;
    while (got < (ssize_t)sizeof w) {
        ssize_t n = read(fd[0], (char *)&w + got, sizeof w - (size_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += n;
    }
    close(fd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(ws)) {
        int sig = WTERMSIG(ws);
        if (sig == SIGALRM)
            return pc_msg(msg, len, PC_FAIL, "timed out after %d s (killed)", env->timeout);
        char name[128];
        signal_name(sig, name, sizeof name);
        return pc_msg(msg, len, PC_FAIL, "crashed: killed by %s", name);
    }
    if (got != (ssize_t)sizeof w) {
        if (WIFEXITED(ws))
            return pc_msg(msg, len, PC_FAIL, "the check's process exited with status %d before "
                          "reporting (the plugin called exit?)", WEXITSTATUS(ws));
        return pc_msg(msg, len, PC_FAIL, "the check's process ended without a report");
    }
    w.msg[sizeof w.msg - 1] = 0;
    snprintf(msg, len, "%s", w.msg);
    return w.status == PC_PASS || w.status == PC_SKIP ? w.status : PC_FAIL;
}

/* the full path of prog on $PATH, or 0 */
static int on_path(const char *prog, char *out, size_t len)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    while (*path) {
        const char *c = strchr(path, ':');
        size_t n = c ? (size_t)(c - path) : strlen(path);
        snprintf(out, len, "%.*s/%s", (int)n, path, prog);
        if (n && access(out, X_OK) == 0) return 1;
        path += n + (c ? 1 : 0);
    }
    return 0;
}

/* the last lines of a log that say what valgrind found */
static void summarise_log(const char *path, char *msg, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512], found[PC_MSG] = "";
    size_t off = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        const char *p = strstr(line, "== ");
        p = p ? p + 3 : line;
        if (!strncmp(p, "FAIL", 4) || strstr(p, "definitely lost") || strstr(p, "Invalid ") || strstr(p, "uninitialised") ||
            strstr(p, "ERROR SUMMARY"))
            if (off < sizeof found)
                off += (size_t)snprintf(found + off, sizeof found - off, "%s%s", off ? "; " : "", p);
    }
    fclose(f);
    if (found[0]) snprintf(msg, len, "%s", found);
}

/* the verdict of the inner check's run under valgrind (wait status ws, its log at log) */
static int valgrind_verdict(int ws, const pc_model *model, const char *log, char *msg, size_t len)
{
    int status;
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
        status = pc_msg(msg, len, PC_PASS, "forward/backward on %s under valgrind: no leaks, no "
                        "memory errors", model->label);
    } else if (WIFEXITED(ws) && WEXITSTATUS(ws) == 99) {
        status = pc_msg(msg, len, PC_FAIL, "valgrind found leaks or memory errors");
        char found[PC_MSG] = "";
        summarise_log(log, found, sizeof found);
        if (found[0]) snprintf(msg, len, "valgrind: %s (full log kept: %s)", found, log);
    } else if (WIFEXITED(ws)) {
        char found[PC_MSG] = "";
        summarise_log(log, found, sizeof found);
        status = pc_msg(msg, len, PC_FAIL, "forward/backward under valgrind failed (exit status "
                        "%d: %s; log kept: %s)", WEXITSTATUS(ws), found[0] ? found : "?", log);
    } else {
        char name[128];
        signal_name(WTERMSIG(ws), name, sizeof name);
        status = pc_msg(msg, len, PC_FAIL, "forward/backward under valgrind killed by %s (log "
                        "kept: %s)", name, log);
    }
    return status;
}

int pc_check_valgrind(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    char vg[4096];
    if (getenv("PEFT_PLUGIN_CHECK_NO_VALGRIND"))
        return pc_msg(msg, len, PC_SKIP, "PEFT_PLUGIN_CHECK_NO_VALGRIND is set");
    if (dlsym(RTLD_DEFAULT, "__asan_init")) /* valgrind cannot run AddressSanitizer builds */
        return pc_msg(msg, len, PC_SKIP, "this peft is built with AddressSanitizer, which "
                      "checks the same things");
    if (!on_path("valgrind", vg, sizeof vg))
        return pc_msg(msg, len, PC_SKIP, "valgrind is not on PATH");
    char log[4096];
    int lfd = pc_temp_template(log, sizeof log, "vg") ? -1 : mkstemp(log);
    if (lfd < 0) return pc_msg(msg, len, PC_FAIL, "mkstemp: %s", strerror(errno));

    char logopt[64 + sizeof log];
    snprintf(logopt, sizeof logopt, "--log-fd=%d", lfd);
    const char *argv[24];
    int a = 0;
    argv[a++] = vg;
    argv[a++] = "-q";
    argv[a++] = "--leak-check=full";
    argv[a++] = "--errors-for-leak-kinds=definite";
    argv[a++] = "--error-exitcode=99";
    argv[a++] = logopt;
    argv[a++] = env->self_exe;
    argv[a++] = "plugin-check";
    argv[a++] = env->plugin;
    argv[a++] = "--inner";
    argv[a++] = "backward";
    argv[a++] = "--model";
    argv[a++] = model->dir;
    if (env->config_path) {
        argv[a++] = "--config";
        argv[a++] = env->config_path;
    }
    argv[a] = NULL;

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(lfd);
        unlink(log);
        return pc_msg(msg, len, PC_FAIL, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(lfd, 1); /* the inner check's own line lands in the log next to valgrind's */
        dup2(lfd, 2);
        /* valgrind emulates no AVX-512: let OpenBLAS pick its kernels from what valgrind's
         * CPUID reports, and stop `peft` from re-executing itself with a faster core type */
        unsetenv("OPENBLAS_CORETYPE");
        setenv("PEFT_NO_BLAS_TUNE", "1", 1);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        execv(vg, (char *const *)argv);
        _exit(127);
    }
    close(lfd);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    int status = valgrind_verdict(ws, model, log, msg, len);
    if (status == PC_PASS) unlink(log);
    return status;
}

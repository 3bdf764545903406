/* lock.c — one peft run per run directory: an exclusive flock on <run dir>/.peft-run.lock
 * held while the run trains, holding the holder's pid, host and start time, so that a second
 * `peft run` on the same output stops at once naming the holder instead of training the same
 * run twice (the last writer winning). The kernel drops the lock when the holder exits or is
 * killed, so a crash never leaves a stale lock. Per run, not per output dir: shards of one
 * batch may share the output dir and train different runs side by side. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "runner/runner.h"

int runner_lock_run_dir(const char *dir, int *fd_out, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.peft-run.lock", dir);
    *fd_out = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return snprintf(err, errlen, "%s: cannot open the run lock: %s", path, strerror(errno)), -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char holder[512] = "";
        for (int tries = 0; tries < 20 && !holder[0]; tries++) { /* it writes right after locking */
            ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
            holder[n > 0 ? n : 0] = 0;
            if (!holder[0]) usleep(10000);
        }
        holder[strcspn(holder, "\n")] = 0;
        close(fd);
        if (e == EWOULDBLOCK)
            return snprintf(err, errlen, "%s is in use by another peft run (%s): wait for it to "
                            "finish, or give this one another output_dir / --output",
                            dir, holder[0] ? holder : "holder unknown"), -1;
        return snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(e)), -1;
    }
    char host[256] = "?", when[64] = "?", line[600];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    int len = snprintf(line, sizeof line, "pid %ld on %s, since %s\n", (long)getpid(), host, when);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len) {
        /* the lock holds all the same; only the holder's description is missing */
    }
    *fd_out = fd;
    return 0;
}

void runner_unlock_run_dir(int fd)
{
    if (fd >= 0) close(fd); /* the file stays: removing it would race with a new locker */
}

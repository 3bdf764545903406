/* blas_check.c — warns once per process when OpenBLAS runs kernels far below the CPU's.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not know recent Intel CPUs (Sapphire and Emerald
 * Rapids among them) and falls back to its SSE3 "Prescott" kernels, 2-3x slower. OpenBLAS reads
 * OPENBLAS_CORETYPE once, in its ELF constructor, before any code of libpeft or of the
 * application runs, and cannot be re-targeted afterwards through its API; so the library cannot
 * fix the choice for an arbitrary program (the `peft` command re-executes itself with the
 * variable set). What it does: the first model load checks the kernel set and, when it is one
 * of the pre-AVX sets on a CPU with AVX2 or AVX-512, gives a warning (peft_warn) naming the
 * variable to set. PEFT_NO_BLAS_TUNE=1 silences it. */
#include "core/ops/blas_check.h"
#include "peft/warn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

extern char *openblas_get_corename(void);

/* the kernel set the CPU supports (OPENBLAS_CORETYPE value), or NULL */
const char *ops_blas_coretype_for_cpu(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

/* 1 when OpenBLAS's kernel set `core` predates AVX */
int ops_blas_core_is_old(const char *core)
{
    static const char *const old[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                      "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                      "Opteron", "Opteron_SSE3", "Barcelona", "Nano", "Athlon"};
    if (!core) return 0;
    for (size_t i = 0; i < sizeof old / sizeof *old; i++)
        if (!strcasecmp(core, old[i])) return 1;
    return 0;
}

static void check_once(void)
{
    if (getenv("PEFT_NO_BLAS_TUNE")) return;
    const char *core = openblas_get_corename();
    const char *want = ops_blas_coretype_for_cpu();
    if (!want || !ops_blas_core_is_old(core)) return;
    char msg[512];
    snprintf(msg, sizeof msg,
             "OpenBLAS runs its '%s' kernels on this CPU, which supports %s's (2-3x faster "
             "GEMMs): start the program with OPENBLAS_CORETYPE=%s in its environment (OpenBLAS "
             "reads it only at load time; the peft command does this itself)",
             core, want, want);
    peft_warn(msg);
}

void ops_blas_check(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, check_once);
}

/* fuzz_yaml.c — an experiment YAML (runner_config_load: the whole schema, sweeps, file:line:col
 * errors), without running it. */
#include "fuzz_util.h" /* first: it defines _GNU_SOURCE */
#include "runner/runner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fuzz_file("exp.yaml", data, size);
    runner_config *c = NULL;
    char err[1024];
    if (runner_config_load(p, NULL, &c, err, sizeof err) == 0) runner_config_free(c);
    return 0;
}

/* fuzz_jsonl.c — JSONL training data for each task (the input's first byte picks the task). */
#include "fuzz_util.h" /* first: it defines _GNU_SOURCE */
#include "runner/runner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *p = fuzz_file("data.jsonl", data + 1, size - 1);
    runner_dataset d;
    char err[1024];
    if (runner_data_load(p, data[0] % 5, 64, 128, 3, NULL, &d, err, sizeof err) == 0) runner_data_free(&d);
    return 0;
}

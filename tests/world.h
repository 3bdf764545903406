/* world.h — the scratch worlds the `peft run` suites (test_runner.c, test_dist.c,
 * test_crash_safety.c) build in a temp dir: the fixture LLaMA copied as <dir>/model, counting
 * JSONL data, files written into the dir, byte-for-byte file comparison and summaries without
 * their timings. */
#ifndef PEFT_TEST_WORLD_H
#define PEFT_TEST_WORLD_H

/* copies file from to to (fails the test if either side fails) */
void tu_copy_file(const char *from, const char *to);
/* <dir>/model: config.json and model.safetensors of the fixture hf-peft/_models/llama (vocab 128) */
void tu_world_llama(const char *dir);
/* <dir>/train.jsonl (40 rows) and <dir>/eval.jsonl (12): sequences of 8-12 ids that count up by
 * a step of 1-3, labels -100 on the first half */
void tu_world_counting_data(const char *dir);
/* writes text to <dir>/<name>; returns that path (caller frees) */
char *tu_world_write(const char *dir, const char *name, const char *text);
/* <dir>/summary.md with the run table's timing columns (train s, tokens/s) blanked: what two
 * batches that trained the same runs share; caller frees */
char *tu_summary_sans_timings(const char *dir);
/* fails the test unless files a and b both exist and hold the same bytes */
void tu_same_file(const char *a, const char *b);

#endif

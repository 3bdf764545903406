/* testutil.h — helpers shared by the Check suites: fixture paths, temp dirs, comparisons. */
#ifndef PEFT_TESTUTIL_H
#define PEFT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* "$PEFT_FIXTURES/<rel>" (default ../shared/fixtures); static buffer rotated over 8 calls */
const char *tu_fixture(const char *rel);
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

#endif

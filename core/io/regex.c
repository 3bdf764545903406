/* regex.c — PEFT's Python-style regular expressions (target_modules / exclude_modules as a
 * string, layers_pattern, rank_pattern / alpha_pattern keys) through PCRE2, whose syntax is a
 * superset of what Python's `re` patterns use here: \d \w \s, (?:...), (?P<name>...), lazy
 * quantifiers, look-ahead and look-behind, back-references, \b. Unicode (PCRE2_UTF | PCRE2_UCP),
 * as Python's str patterns. Bounded, so that a hostile config cannot cost minutes or gigabytes
 * (issue 16): a pattern of at most 4 KiB (PCRE2 refuses a compiled pattern over 64 KiB, which
 * `((a{1,100}){1,100}){1,100}` is, in microseconds), at most 10^6 backtracking steps, a
 * backtracking depth of 10^4 and 16 MiB of heap per match. A pattern that hits a limit answers
 * -1 with a message, as an invalid one does. */
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <string.h>
#include "core/io/cfg.h"

#define RE_MAX_PATTERN 4096u
#define RE_MATCH_LIMIT 1000000u
#define RE_DEPTH_LIMIT 10000u
#define RE_HEAP_LIMIT_KIB (16u << 10)

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen) snprintf(err, errlen, fmt, a, b);
    return -1;
}

/* compile prefix + pattern + suffix and match s anchored at its start (and at its end when
 * end_anchored); 1 match, 0 no match, -1 (message in err) invalid or over a limit */
static int match_wrapped(const char *prefix, const char *pattern, const char *suffix, const char *s,
                         int end_anchored, char *err, size_t errlen)
{
    if (err && errlen) *err = 0;
    if (!pattern || !s) return fail(err, errlen, "%s%s", "no pattern or no text", "");
    size_t lp = strlen(prefix), lb = strlen(pattern), ls = strlen(suffix);
    if (lb > RE_MAX_PATTERN) {
        char n[32];
        snprintf(n, sizeof n, "%zu", lb);
        return fail(err, errlen, "pattern of %s bytes is longer than the limit of %s bytes", n, "4096");
    }
    char full[RE_MAX_PATTERN + 64];
    snprintf(full, sizeof full, "%s%s%s", prefix, pattern, suffix);
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (!cctx) return fail(err, errlen, "%s%s", "out of memory", "");
    pcre2_set_max_pattern_length(cctx, RE_MAX_PATTERN + 64);
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)full, lp + lb + ls, PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, cctx);
    pcre2_compile_context_free(cctx);
    if (!re) {
        PCRE2_UCHAR msg[256];
        char where[320];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        size_t off = eoff > lp ? eoff - lp : 0;
        snprintf(where, sizeof where, "%s at offset %zu", (const char *)msg, off > lb ? lb : off);
        return fail(err, errlen, "%s%s", where, "");
    }
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc;
    if (!mctx || !md) {
        rc = fail(err, errlen, "%s%s", "out of memory", "");
    } else {
        pcre2_set_match_limit(mctx, RE_MATCH_LIMIT);
        pcre2_set_depth_limit(mctx, RE_DEPTH_LIMIT);
        pcre2_set_heap_limit(mctx, RE_HEAP_LIMIT_KIB);
        int m = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0,
                            PCRE2_ANCHORED | (end_anchored ? PCRE2_ENDANCHORED : 0), md, mctx);
        if (m >= 0) rc = 1;
        else if (m == PCRE2_ERROR_NOMATCH) rc = 0;
        else if (m == PCRE2_ERROR_BADUTFOFFSET || (m <= PCRE2_ERROR_UTF8_ERR1 && m >= PCRE2_ERROR_UTF8_ERR21))
            rc = fail(err, errlen, "%s%s", "the name is not valid UTF-8", "");
        else {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = fail(err, errlen, "matching gave up: %s (limits: 10^6 steps, depth 10^4, 16 MiB)%s", (const char *)msg, "");
        }
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    pcre2_code_free(re);
    return rc;
}

int peft_regex_fullmatch_err(const char *pattern, const char *s, char *err, size_t errlen)
{
    /* (?: ... ) so that an alternation is matched whole, as re.fullmatch does */
    return match_wrapped("(?:", pattern, ")", s, 1, err, errlen);
}

int peft_regex_fullmatch(const char *pattern, const char *s)
{
    return peft_regex_fullmatch_err(pattern, s, NULL, 0);
}

int peft_regex_match_key(const char *key, const char *name, int lycoris)
{
    /* Python's re.match(rf".*\.{key}$", name) (or rf"(.*\.)?{key}$"): anchored at the start
     * only, the key inserted raw (not grouped), so "a|b" keeps Python's precedence */
    return match_wrapped(lycoris ? "(.*\\.)?" : ".*\\.", key, "$", name, 0, NULL, 0);
}

long peft_regex_layer_index(const char *pattern, const char *name)
{
    /* PEFT 0.13.2: re.match(r".*\.[^.]*\.(\d+)\.", key), or rf".*\.{pattern}\.(\d+)\." per
     * layers_pattern, then int(m.group(1)) — group 1, which is the pattern's own first group
     * when it has one (then not a number: no index here, where Python would raise) */
    char full[RE_MAX_PATTERN + 64];
    if (!name) return -1;
    if (pattern && strlen(pattern) > RE_MAX_PATTERN) return -1;
    snprintf(full, sizeof full, ".*\\.%s\\.(\\d+)\\.", pattern ? pattern : "[^.]*");
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)full, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ecode, &eoff, NULL);
    if (!re) return -1;
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    long idx = -1;
    if (mctx && md) {
        pcre2_set_match_limit(mctx, RE_MATCH_LIMIT);
        pcre2_set_depth_limit(mctx, RE_DEPTH_LIMIT);
        pcre2_set_heap_limit(mctx, RE_HEAP_LIMIT_KIB);
        if (pcre2_match(re, (PCRE2_SPTR)name, strlen(name), 0, PCRE2_ANCHORED, md, mctx) >= 2) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[2] != PCRE2_UNSET && ov[3] > ov[2] && ov[3] - ov[2] < 12) {
                idx = 0;
                for (PCRE2_SIZE i = ov[2]; i < ov[3] && idx >= 0; i++)
                    idx = name[i] >= '0' && name[i] <= '9' ? idx * 10 + (name[i] - '0') : -1;
            }
        }
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    pcre2_code_free(re);
    return idx;
}

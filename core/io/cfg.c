/* cfg.c — peft_cfg: typed getters and setters over an adapter_config.json object (jansson),
 * PEFT's rank_pattern/alpha_pattern key lookup, and Python-flavoured regex full matching on
 * top of POSIX extended regular expressions.
 *
 * Every getter tolerates a NULL cfg, a NULL/non-object json, a missing key and a wrong type:
 * it reports "missing"/"wrong type" and never crashes. Setters silently do nothing when the
 * cfg holds no JSON object (there is nowhere to write). */
#define _GNU_SOURCE
#include "core/io/cfg.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

static json_t *get(const peft_cfg *c, const char *key)
{
    if (!c || !c->obj || !key || !json_is_object(c->obj)) return NULL;
    return json_object_get(c->obj, key);
}

int peft_cfg_type(const peft_cfg *c, const char *key)
{
    json_t *v = get(c, key);
    if (!v) return PEFT_CFG_MISSING;
    switch (json_typeof(v)) {
    case JSON_NULL: return PEFT_CFG_NULL;
    case JSON_TRUE:
    case JSON_FALSE: return PEFT_CFG_BOOL;
    case JSON_INTEGER: return PEFT_CFG_INT;
    case JSON_REAL: return PEFT_CFG_REAL;
    case JSON_STRING: return PEFT_CFG_STRING;
    case JSON_ARRAY: return PEFT_CFG_LIST;
    case JSON_OBJECT: return PEFT_CFG_DICT;
    }
    return PEFT_CFG_MISSING;
}

int peft_cfg_bool(const peft_cfg *c, const char *key, int *out)
{
    json_t *v = get(c, key);
    if (!v || !json_is_boolean(v)) return -1;
    if (out) *out = json_is_true(v) ? 1 : 0;
    return 0;
}

int peft_cfg_int(const peft_cfg *c, const char *key, int64_t *out)
{
    json_t *v = get(c, key);
    if (!v || !json_is_integer(v)) return -1;
    if (out) *out = (int64_t)json_integer_value(v);
    return 0;
}

int peft_cfg_real(const peft_cfg *c, const char *key, double *out)
{
    json_t *v = get(c, key);
    if (!v || !json_is_number(v)) return -1; /* integer or real */
    if (out) *out = json_number_value(v);
    return 0;
}

const char *peft_cfg_str(const peft_cfg *c, const char *key)
{
    json_t *v = get(c, key);
    return (v && json_is_string(v)) ? json_string_value(v) : NULL;
}

int peft_cfg_list_len(const peft_cfg *c, const char *key)
{
    json_t *v = get(c, key);
    if (!v || !json_is_array(v)) return -1;
    size_t n = json_array_size(v);
    return n > (size_t)0x7fffffff ? 0x7fffffff : (int)n;
}

static json_t *list_elem(const peft_cfg *c, const char *key, int i)
{
    json_t *v = get(c, key);
    if (!v || !json_is_array(v) || i < 0 || (size_t)i >= json_array_size(v)) return NULL;
    return json_array_get(v, (size_t)i);
}

const char *peft_cfg_list_str(const peft_cfg *c, const char *key, int i)
{
    json_t *e = list_elem(c, key, i);
    return (e && json_is_string(e)) ? json_string_value(e) : NULL;
}

int peft_cfg_list_int(const peft_cfg *c, const char *key, int i, int64_t *out)
{
    json_t *e = list_elem(c, key, i);
    if (!e || !json_is_integer(e)) return -1;
    if (out) *out = (int64_t)json_integer_value(e);
    return 0;
}

/* ---- setters: replace the key's value ---- */

static void set(peft_cfg *c, const char *key, json_t *v)
{
    if (!v) return;
    if (!c || !c->obj || !key || !json_is_object(c->obj)) {
        json_decref(v);
        return;
    }
    json_object_set_new(c->obj, key, v); /* steals v even on failure */
}

void peft_cfg_set_bool(peft_cfg *c, const char *key, int v) { set(c, key, json_boolean(v)); }
void peft_cfg_set_int(peft_cfg *c, const char *key, int64_t v)
{
    set(c, key, json_integer((json_int_t)v));
}
void peft_cfg_set_real(peft_cfg *c, const char *key, double v) { set(c, key, json_real(v)); }
void peft_cfg_set_str(peft_cfg *c, const char *key, const char *v)
{
    set(c, key, v ? json_string(v) : json_null()); /* json_string: NULL if not UTF-8 */
}

int peft_cfg_set_json(peft_cfg *c, const char *key, const char *json_text)
{
    if (!c || !c->obj || !key || !json_is_object(c->obj) || !json_text) return -1;
    json_error_t e;
    json_t *v = json_loads(json_text, JSON_DECODE_ANY, &e);
    if (!v) return -1;
    return json_object_set_new(c->obj, key, v) == 0 ? 0 : -1;
}

/* ---- Python regex -> POSIX ERE ----
 * PEFT's patterns are Python `re` syntax. We translate the common subset that ERE lacks:
 *   \d \w \s \D \W \S  -> bracket expressions (also inside [...] for \d \w \s)
 *   \. \\ \( ... (escaped punctuation) -> kept escaped (ERE agrees); \t \n \r \f \v -> the char
 *   (?:...) and (?P<name>...) -> (...)
 *   lazy quantifiers *? +? ?? {m,n}? -> greedy (same match/no-match answer when anchored)
 *   [...] with Python escapes inside -> an ERE bracket expression with ] first and - last
 * Anything else Python-specific (lookaround, backreferences, \b \A \Z, flags) is refused as
 * invalid rather than silently given another meaning. Returns a malloc'd string or NULL. */

typedef struct {
    char *s;
    size_t n, cap;
    int bad;
} sbuf;

static void sb_putc(sbuf *b, char ch)
{
    if (b->bad) return;
    if (b->n + 2 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        char *p = realloc(b->s, nc);
        if (!p) {
            b->bad = 1;
            return;
        }
        b->s = p;
        b->cap = nc;
    }
    b->s[b->n++] = ch;
    b->s[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s)
{
    while (*s) sb_putc(b, *s++);
}

#define CLS_DIGIT "0-9"
#define CLS_WORD "A-Za-z0-9_"
#define CLS_SPACE " \t\n\r\f\v"

static int esc_char(char ch)
{
    switch (ch) {
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    default: return -1;
    }
}

/* translate a Python bracket expression starting after '['; *pp advanced past ']'.
 * ']' '[' '^' '-' are collected as flags and placed where ERE reads them literally. */
static int tr_bracket(const char **pp, sbuf *out)
{
    const char *p = *pp;
    int neg = 0, has_rbr = 0, has_lbr = 0, has_dash = 0, has_caret = 0;
    sbuf body = {0};
    if (*p == '^') {
        neg = 1;
        p++;
    }
    int first = 1;
    for (;;) {
        char ch = *p;
        if (!ch) goto fail; /* unterminated */
        if (ch == ']' && !first) {
            p++;
            break;
        }
        first = 0;
        int lit = -1; /* a literal character to add, or -1 if already handled */
        if (ch == '\\') {
            char e = p[1];
            if (!e) goto fail;
            p += 2;
            if (e == 'd') sb_puts(&body, CLS_DIGIT);
            else if (e == 'w') sb_puts(&body, CLS_WORD);
            else if (e == 's') sb_puts(&body, CLS_SPACE);
            else if (esc_char(e) >= 0) lit = esc_char(e);
            else if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
                goto fail; /* \D \W \S inside [...], \x.., \b: not expressible here */
            else lit = (unsigned char)e;
        } else {
            p++;
            /* a range x-y of plain characters */
            if (p[0] == '-' && p[1] && p[1] != ']' && p[1] != '\\' && ch != '[' && p[1] != '[') {
                if ((unsigned char)p[1] < (unsigned char)ch) goto fail; /* Python: bad range */
                sb_putc(&body, ch);
                sb_putc(&body, '-');
                sb_putc(&body, p[1]);
                p += 2;
                continue;
            }
            lit = (unsigned char)ch;
        }
        if (lit == ']') has_rbr = 1;
        else if (lit == '[') has_lbr = 1;
        else if (lit == '-') has_dash = 1;
        else if (lit == '^') has_caret = 1;
        else if (lit >= 0) sb_putc(&body, (char)lit);
    }
    if (body.bad) goto fail;
    if (!neg && !has_rbr && !has_lbr && body.n == 0) {
        /* only '^' and/or '-': a leading '^' would negate */
        if (has_caret && has_dash) sb_puts(out, "[-^]");
        else if (has_caret) sb_puts(out, "\\^");
        else if (has_dash) sb_puts(out, "-");
        else goto fail;
    } else {
        sb_putc(out, '[');
        if (neg) sb_putc(out, '^');
        if (has_rbr) sb_putc(out, ']');
        if (body.s) sb_puts(out, body.s);
        if (has_lbr) sb_putc(out, '['); /* never followed by . = : (those are in body) */
        if (has_caret) sb_putc(out, '^');
        if (has_dash) sb_putc(out, '-');
        sb_putc(out, ']');
    }
    free(body.s);
    *pp = p;
    return 0;
fail:
    free(body.s);
    return -1;
}

static char *py_to_ere(const char *pat)
{
    sbuf b = {0};
    const char *p = pat;
    int after_quant = 0; /* previous token was a quantifier (for lazy '?') */
    while (*p && !b.bad) {
        char ch = *p;
        if (ch == '\\') {
            char e = p[1];
            if (!e) goto fail;
            p += 2;
            after_quant = 0;
            switch (e) {
            case 'd': sb_puts(&b, "[" CLS_DIGIT "]"); break;
            case 'w': sb_puts(&b, "[" CLS_WORD "]"); break;
            case 's': sb_puts(&b, "[" CLS_SPACE "]"); break;
            case 'D': sb_puts(&b, "[^" CLS_DIGIT "]"); break;
            case 'W': sb_puts(&b, "[^" CLS_WORD "]"); break;
            case 'S': sb_puts(&b, "[^" CLS_SPACE "]"); break;
            default:
                if (esc_char(e) >= 0) {
                    sb_putc(&b, (char)esc_char(e));
                } else if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') ||
                           (e >= '0' && e <= '9')) {
                    goto fail; /* \b \A \Z \1 ...: no faithful ERE equivalent */
                } else {
                    sb_putc(&b, '\\');
                    sb_putc(&b, e);
                }
            }
            continue;
        }
        if (ch == '[') {
            p++;
            if (tr_bracket(&p, &b) != 0) goto fail;
            after_quant = 0;
            continue;
        }
        if (ch == '(' && p[1] == '?') {
            if (p[2] == ':') {
                p += 3;
            } else if (p[2] == 'P' && p[3] == '<') {
                const char *q = strchr(p + 4, '>');
                if (!q) goto fail;
                p = q + 1;
            } else {
                goto fail; /* lookaround, flags, named backreference */
            }
            sb_putc(&b, '(');
            after_quant = 0;
            continue;
        }
        if (ch == '?' && after_quant) { /* lazy modifier: drop */
            p++;
            after_quant = 0;
            continue;
        }
        if (ch == '*' || ch == '+' || ch == '?') {
            sb_putc(&b, ch);
            p++;
            after_quant = 1;
            continue;
        }
        if (ch == '{') {
            /* a quantifier {m}, {m,}, {m,n} (Python treats other braces literally) */
            const char *q = p + 1;
            int digits = 0;
            while (*q >= '0' && *q <= '9') q++, digits++;
            if (digits && *q == ',') {
                q++;
                while (*q >= '0' && *q <= '9') q++;
            }
            if (digits && *q == '}') {
                while (p <= q) sb_putc(&b, *p++);
                after_quant = 1;
            } else {
                sb_puts(&b, "\\{");
                p++;
                after_quant = 0;
            }
            continue;
        }
        if (ch == '}') { /* a lone '}' is literal in Python */
            sb_puts(&b, "\\}");
            p++;
            after_quant = 0;
            continue;
        }
        sb_putc(&b, ch);
        p++;
        after_quant = 0;
    }
    if (b.bad) goto fail;
    if (!b.s) return strdup("");
    return b.s;
fail:
    free(b.s);
    return NULL;
}

/* compile prefix + translate(pattern) + suffix; 0 or -1 */
static int compile_wrapped(regex_t *re, const char *prefix, const char *pattern,
                           const char *suffix)
{
    char *body = py_to_ere(pattern);
    if (!body) return -1;
    size_t n = strlen(prefix) + strlen(body) + strlen(suffix) + 1;
    char *full = malloc(n);
    if (!full) {
        free(body);
        return -1;
    }
    snprintf(full, n, "%s%s%s", prefix, body, suffix);
    free(body);
    int rc = regcomp(re, full, REG_EXTENDED | REG_NOSUB);
    free(full);
    return rc == 0 ? 0 : -1;
}

int peft_regex_fullmatch(const char *pattern, const char *s)
{
    if (!pattern || !s) return -1;
    regex_t re;
    if (compile_wrapped(&re, "^(", pattern, ")$") != 0) return -1;
    int m = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

/* Python's re.match(rf".*\.{key}$", name) (LoRA), or rf"(.*\.)?{key}$" (LyCORIS: LoHa, LoKr):
 * anchored at the start only; key is inserted raw (not grouped, not escaped), exactly as PEFT
 * does, so "a|b" keeps Python's precedence. */
static int pattern_key_matches(const char *key, const char *name, int lycoris)
{
    regex_t re;
    if (compile_wrapped(&re, lycoris ? "^((.*\\.)?" : "^(.*\\.", key, "$)") != 0) return 0; /* Python would raise */
    int m = regexec(&re, name, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

/* PEFT 0.13.2 get_pattern_key over one dict:
 *   next(filter(lambda k: re.match(rf".*\.{k}$", name), keys), name)
 * i.e. the first key (in the dict's order) whose regex matches, else the name itself used as
 * an exact key. jansson (>= 2.8) iterates objects in insertion order, which is the order the
 * JSON file lists the keys in — the order Python's dict keeps too.
 * Differences from PEFT, on purpose: the lookup is per dict (PEFT chains rank_pattern and
 * alpha_pattern keys before looking either up), a key that is an invalid regex is skipped
 * (Python raises), and a matching entry whose value is not a number answers 0 (not found). */
static int pattern_real(const peft_cfg *c, const char *dict_key, const char *module_name,
                        double *out, int lycoris)
{
    json_t *d = get(c, dict_key);
    if (!d || !json_is_object(d) || !module_name) return 0;
    const char *k;
    json_t *v;
    json_t *hit = NULL;
    json_object_foreach(d, k, v) {
        if (pattern_key_matches(k, module_name, lycoris)) {
            hit = v;
            break;
        }
    }
    if (!hit) hit = json_object_get(d, module_name);
    if (!hit || !json_is_number(hit)) return 0;
    if (out) *out = json_number_value(hit);
    return 1;
}

int peft_cfg_pattern_real(const peft_cfg *c, const char *dict_key, const char *module_name,
                          double *out)
{
    return pattern_real(c, dict_key, module_name, out, 0);
}

int peft_cfg_pattern_real_lycoris(const peft_cfg *c, const char *dict_key, const char *module_name,
                                  double *out)
{
    return pattern_real(c, dict_key, module_name, out, 1);
}

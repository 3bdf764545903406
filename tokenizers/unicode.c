/* tokenizer_unicode.c — the Unicode properties the tokenizers ask about (general category,
 * White_Space, \p{L}/\p{N}/\p{P}, \w, combining class), full lowercase of a code point and
 * canonical decomposition (NFD, with Hangul syllables decomposed algorithmically and marks put
 * in canonical order). Searches the generated tables of tokenizer_unicode_tables.c. */
#include "peft/peft.h"
#include "tokenizers/internal.h"

extern const tk_range8 tk_ucd_cat[];
extern const size_t tk_ucd_cat_n;
extern const tk_range8 tk_ucd_ccc[];
extern const size_t tk_ucd_ccc_n;
extern const uint32_t tk_ucd_space[][2];
extern const size_t tk_ucd_space_n;
extern const uint32_t tk_ucd_lower[][2];
extern const size_t tk_ucd_lower_n;
extern const uint32_t tk_ucd_decomp[][3];
extern const size_t tk_ucd_decomp_n;

/* value of the last run starting at or before cp */
static int run_lookup(const tk_range8 *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (r[mid].start <= cp) lo = mid;
        else hi = mid;
    }
    return n && r[lo].start <= cp ? r[lo].v : 0;
}

/* index of cp in a table sorted by its first column, or -1 */
static long find_cp(const uint32_t *tab, size_t stride, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t v = tab[mid * stride];
        if (v == cp) return (long)mid;
        if (v < cp) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

int tk_ucat(uint32_t cp)
{
    if (cp > 0x10FFFF) return TK_Cn;
    if (cp < 0x80) { /* fast path for ASCII */
        if (cp >= 'a' && cp <= 'z') return TK_Ll;
        if (cp >= 'A' && cp <= 'Z') return TK_Lu;
        if (cp >= '0' && cp <= '9') return TK_Nd;
    }
    return run_lookup(tk_ucd_cat, tk_ucd_cat_n, cp);
}

int tk_is_space(uint32_t cp)
{
    if (cp == ' ' || (cp >= 9 && cp <= 13)) return 1;
    if (cp < 0x85) return 0;
    for (size_t i = 0; i < tk_ucd_space_n; i++)
        if (cp >= tk_ucd_space[i][0] && cp <= tk_ucd_space[i][1]) return 1;
    return 0;
}

int tk_is_letter(uint32_t cp)
{
    int c = tk_ucat(cp);
    return c >= TK_Lu && c <= TK_Lo;
}

int tk_is_number(uint32_t cp)
{
    int c = tk_ucat(cp);
    return c >= TK_Nd && c <= TK_No;
}

int tk_is_punct(uint32_t cp)
{
    int c = tk_ucat(cp);
    return c >= TK_Pc && c <= TK_Po;
}

int tk_is_word(uint32_t cp)
{
    int c = tk_ucat(cp);
    return (c >= TK_Lu && c <= TK_Nd) || c == TK_Nl || c == TK_Pc || cp == 0x200C || cp == 0x200D;
}

int tk_ccc(uint32_t cp)
{
    if (cp < 0x300) return 0;
    return run_lookup(tk_ucd_ccc, tk_ucd_ccc_n, cp);
}

int tk_lower_append(uint32_t cp, tk_cps *out)
{
    if (cp < 0x80) return tk_cps_push(out, cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    if (cp == 0x130) /* SpecialCasing: İ -> i + combining dot above */
        return tk_cps_push(out, 'i') || tk_cps_push(out, 0x307) ? PEFT_ENOMEM : 0;
    long i = find_cp(&tk_ucd_lower[0][0], 2, tk_ucd_lower_n, cp);
    return tk_cps_push(out, i >= 0 ? tk_ucd_lower[i][1] : cp);
}

/* Hangul syllables (Unicode 3.12) */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7, L_COUNT = 19,
       V_COUNT = 21, T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

static int decompose(uint32_t cp, tk_cps *out, int depth)
{
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        if (tk_cps_push(out, L_BASE + s / N_COUNT) || tk_cps_push(out, V_BASE + (s % N_COUNT) / T_COUNT))
            return PEFT_ENOMEM;
        if (s % T_COUNT && tk_cps_push(out, T_BASE + s % T_COUNT)) return PEFT_ENOMEM;
        return 0;
    }
    long i = cp < 0xC0 || depth > 8 ? -1 : find_cp(&tk_ucd_decomp[0][0], 3, tk_ucd_decomp_n, cp);
    if (i < 0) return tk_cps_push(out, cp);
    if (decompose(tk_ucd_decomp[i][1], out, depth + 1)) return PEFT_ENOMEM;
    if (tk_ucd_decomp[i][2] && decompose(tk_ucd_decomp[i][2], out, depth + 1)) return PEFT_ENOMEM;
    return 0;
}

int tk_nfd(const uint32_t *in, size_t n, tk_cps *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < n; i++)
        if (decompose(in[i], out, 0)) return PEFT_ENOMEM;
    /* canonical ordering: stable insertion sort of each run of non-starters by class */
    uint32_t *c = out->c;
    for (size_t i = start + 1; i < out->n; i++) {
        int ci = tk_ccc(c[i]);
        if (!ci) continue;
        size_t j = i;
        uint32_t v = c[i];
        while (j > start && tk_ccc(c[j - 1]) > ci) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = v;
    }
    return 0;
}

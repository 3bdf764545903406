/* json_arena.c — where jansson allocates while a large tokenizer.json is parsed and walked: a
 * bump arena private to the calling thread, unmapped whole once the tree is done with, instead of
 * one malloc per node and json_decref walking ~2 million nodes through free() (and malloc then
 * consolidating them): a fifth of Gemma2's load. jansson's allocator is process-wide
 * (json_set_alloc_funcs), so the hook, installed once, sends an allocation to the arena only on a
 * thread that has one open, and everything else to the functions installed before it (malloc and
 * free unless the application chose others); a pointer outside the open arena is freed by them.
 * Other threads, and objects made before or after, are untouched. An arena that fills up passes
 * the rest to those functions and is then closed by json_decref (its own pointers: no-ops). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include "tokenizers/internal.h"

/* address space reserved per byte of text (pages are only touched as used: Gemma2's 34 MB text
 * becomes an ~87 MB tree; a file of tiny values can reach ~10x) */
#define RESERVE_RATIO 16
#define ALIGN 16 /* malloc's alignment on x86-64 */

struct tk_json_arena {
    char *base;
    size_t size, used;
    int spilled; /* some nodes came from the previous allocator: close with json_decref */
};

static __thread tk_json_arena *open_arena;
static json_malloc_t prev_malloc = malloc;
static json_free_t prev_free = free;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *arena_malloc(size_t n)
{
    tk_json_arena *a = open_arena;
    if (a) {
        size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
        if (need >= n && a->size - a->used >= need) {
            void *p = a->base + a->used;
            a->used += need;
            return p;
        }
        a->spilled = 1;
    }
    return prev_malloc(n);
}

static void arena_free(void *p)
{
    const tk_json_arena *a = open_arena;
    if (a && (char *)p >= a->base && (char *)p < a->base + a->size) return;
    prev_free(p);
}

static void install(void)
{
    json_get_alloc_funcs(&prev_malloc, &prev_free);
    json_set_alloc_funcs(arena_malloc, arena_free);
}

tk_json_arena *tk_json_arena_open(size_t text_len)
{
    if (text_len < TK_JSON_ARENA_MIN || text_len > SIZE_MAX / (2 * RESERVE_RATIO) || open_arena) return NULL;
    pthread_once(&once, install);
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (m != arena_malloc || f != arena_free) return NULL; /* the application has replaced them since */
    tk_json_arena *a = malloc(sizeof *a);
    if (!a) return NULL;
    a->size = text_len * RESERVE_RATIO + ((size_t)1 << 20);
    a->used = 0;
    a->spilled = 0;
    a->base = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (a->base == MAP_FAILED) {
        free(a);
        return NULL;
    }
    madvise(a->base, a->size, MADV_HUGEPAGE); /* one fault per 2 MB where THP allows (a hint) */
    open_arena = a;
    return a;
}

void tk_json_arena_close(tk_json_arena *a, json_t *j)
{
    if (!a || a->spilled) json_decref(j);
    if (!a) return;
    open_arena = NULL;
    munmap(a->base, a->size);
    free(a);
}

/* runner_yaml.c — reads an experiments YAML file with libyaml into a small tree of nodes that
 * remember their line and column, so that every configuration error can name file:line:col.
 * Scalars are typed by YAML 1.2's core schema (null, true/false, integers, floats, strings;
 * quoted scalars are always strings). Anchors and aliases, tags and several documents are
 * refused; duplicate mapping keys are errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include "runner/runner.h"

void runner_node_free(runner_node *n)
{
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys) runner_node_free(n->keys[i]);
        runner_node_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n->text);
    free(n->origin);
    free(n);
}

static runner_node *node_new(int kind, const yaml_mark_t *mk)
{
    runner_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = (int)mk->line + 1;
    n->col = (int)mk->column + 1;
    return n;
}

static int node_push(runner_node *p, runner_node *key, runner_node *item)
{
    runner_node **items = realloc(p->items, (p->n + 1) * sizeof *items);
    if (!items) return -1;
    p->items = items;
    if (p->kind == RUNNER_NODE_MAP) {
        runner_node **keys = realloc(p->keys, (p->n + 1) * sizeof *keys);
        if (!keys) return -1;
        p->keys = keys;
        p->keys[p->n] = key;
    }
    p->items[p->n++] = item;
    return 0;
}

typedef struct yctx {
    yaml_parser_t parser;
    const char *path;
    int no_pos; /* a command-line value: name it, without line:column */
    char *err;
    size_t errlen;
} yctx;

static int fail_at(yctx *c, const yaml_mark_t *mk, const char *what)
{
    if (c->no_pos) return snprintf(c->err, c->errlen, "%s: %s", c->path, what), -1;
    snprintf(c->err, c->errlen, "%s:%d:%d: %s", c->path, (int)mk->line + 1, (int)mk->column + 1, what);
    return -1;
}

static int next_event(yctx *c, yaml_event_t *ev)
{
    if (yaml_parser_parse(&c->parser, ev)) return 0;
    const char *prob = c->parser.problem ? c->parser.problem : "invalid YAML";
    char what[512];
    if (c->parser.context)
        snprintf(what, sizeof what, "%s %s", c->parser.context, prob);
    else
        snprintf(what, sizeof what, "%s", prob);
    return fail_at(c, &c->parser.problem_mark, what);
}

/* a node's explicit tag: none, or !!str on a scalar (forces a string), else refused: libpeft
 * reads plain data (a `!!python/object:...` tag would make PyYAML's unsafe loader build an
 * object; safe_load refuses it, so do we). 0, 1 for !!str, or -1 with the error set. */
static int check_tag(yctx *c, const yaml_event_t *ev, const yaml_char_t *tag, int scalar)
{
    if (!tag) return 0;
    const char *t = (const char *)tag, *core = "tag:yaml.org,2002:";
    if (scalar && !strcmp(t, "tag:yaml.org,2002:str")) return 1;
    char what[320];
    snprintf(what, sizeof what, "YAML tags are not supported (found '%s%.200s'): write plain "
             "values (PyYAML's safe_load refuses such tags too)",
             !strncmp(t, core, strlen(core)) ? "!!" : "",
             !strncmp(t, core, strlen(core)) ? t + strlen(core) : t);
    return fail_at(c, &ev->start_mark, what);
}

/* parses the node starting with ev (consumed) into *out */
static int parse_node(yctx *c, yaml_event_t *ev, runner_node **out, int depth)
{
    *out = NULL;
    if (depth > 64) return fail_at(c, &ev->start_mark, "nesting deeper than 64 levels");
    if (ev->type == YAML_ALIAS_EVENT)
        return fail_at(c, &ev->start_mark, "aliases (*name) are not supported: write the value out");
    if (ev->type == YAML_SCALAR_EVENT) {
        if (ev->data.scalar.anchor)
            return fail_at(c, &ev->start_mark, "anchors (&name) are not supported");
        int str_tag = check_tag(c, ev, ev->data.scalar.tag, 1);
        if (str_tag < 0) return -1;
        runner_node *n = node_new(RUNNER_NODE_SCALAR, &ev->start_mark);
        if (!n || !(n->text = strdup((const char *)ev->data.scalar.value))) {
            free(n);
            return fail_at(c, &ev->start_mark, "out of memory");
        }
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || str_tag;
        *out = n;
        return 0;
    }
    int map = ev->type == YAML_MAPPING_START_EVENT;
    if (!map && ev->type != YAML_SEQUENCE_START_EVENT)
        return fail_at(c, &ev->start_mark, "unexpected YAML event");
    if ((map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor))
        return fail_at(c, &ev->start_mark, "anchors (&name) are not supported");
    if (check_tag(c, ev, map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag, 0)) return -1;
    runner_node *n = node_new(map ? RUNNER_NODE_MAP : RUNNER_NODE_SEQ, &ev->start_mark);
    if (!n) return fail_at(c, &ev->start_mark, "out of memory");
    for (;;) {
        yaml_event_t e;
        if (next_event(c, &e)) goto fail;
        if (e.type == (map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
            yaml_event_delete(&e);
            break;
        }
        runner_node *key = NULL, *val = NULL;
        if (map) {
            int rc = parse_node(c, &e, &key, depth + 1);
            yaml_event_delete(&e);
            if (rc) goto fail;
            if (key->kind != RUNNER_NODE_SCALAR) {
                char what[64];
                snprintf(what, sizeof what, "a mapping key must be a plain name");
                yaml_mark_t mk = {0, (size_t)key->line - 1, (size_t)key->col - 1};
                runner_node_free(key);
                fail_at(c, &mk, what);
                goto fail;
            }
            for (size_t i = 0; i < n->n; i++)
                if (!strcmp(n->keys[i]->text, key->text)) {
                    char what[512];
                    snprintf(what, sizeof what, "duplicate key '%s' (first at line %d)", key->text,
                             n->keys[i]->line);
                    yaml_mark_t mk = {0, (size_t)key->line - 1, (size_t)key->col - 1};
                    runner_node_free(key);
                    fail_at(c, &mk, what);
                    goto fail;
                }
            if (next_event(c, &e)) { runner_node_free(key); goto fail; }
        }
        int rc = parse_node(c, &e, &val, depth + 1);
        yaml_event_delete(&e);
        if (rc || node_push(n, key, val)) {
            runner_node_free(key);
            runner_node_free(val);
            if (!rc) fail_at(c, &ev->start_mark, "out of memory");
            goto fail;
        }
    }
    *out = n;
    return 0;
fail:
    runner_node_free(n);
    return -1;
}

/* every node of the tree gets a copy of origin (a command-line flag) */
static int set_origin(runner_node *n, const char *origin)
{
    if (!n) return 0;
    if (!(n->origin = strdup(origin))) return -1;
    for (size_t i = 0; i < n->n; i++)
        if ((n->keys && set_origin(n->keys[i], origin)) || set_origin(n->items[i], origin)) return -1;
    return 0;
}

static int parse_text(const char *path, int no_pos, const char *text, size_t len, runner_node **root,
                      char *err, size_t errlen);

int runner_yaml_load(const char *path, runner_node **root, char *err, size_t errlen)
{
    *root = NULL;
    size_t len;
    char *text = runner_read_file(path, &len, err, errlen);
    if (!text) return -1;
    int rc = parse_text(path, 0, text, len, root, err, errlen);
    free(text);
    return rc;
}

int runner_yaml_parse_value(const char *text, const char *origin, runner_node **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    if (parse_text(origin, 1, text, strlen(text), out, err, errlen)) return -1;
    if (set_origin(*out, origin)) {
        runner_node_free(*out);
        *out = NULL;
        return snprintf(err, errlen, "%s: out of memory", origin), -1;
    }
    return 0;
}

static int parse_text(const char *path, int no_pos, const char *text, size_t len, runner_node **root,
                      char *err, size_t errlen)
{
    *root = NULL;
    yctx c = {.path = path, .no_pos = no_pos, .err = err, .errlen = errlen};
    if (!yaml_parser_initialize(&c.parser)) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)text, len);
    yaml_event_t ev;
    int rc = -1, stage = 0; /* 0 stream start, 1 document start, 2 root, 3 document end */
    runner_node *doc = NULL;
    while (!next_event(&c, &ev)) {
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
        } else if (t == YAML_DOCUMENT_START_EVENT) {
            if (doc) {
                fail_at(&c, &ev.start_mark, "a second YAML document: put every setting in one");
                yaml_event_delete(&ev);
                break;
            }
        } else if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            if (!doc && no_pos) snprintf(err, errlen, "%s: no value after '='", path);
            else if (!doc) snprintf(err, errlen, "%s:1:1: the file is empty (expected a mapping of settings)", path);
            else rc = 0;
            break;
        } else if (parse_node(&c, &ev, &doc, 0)) {
            yaml_event_delete(&ev);
            break;
        }
        yaml_event_delete(&ev);
        stage++;
    }
    (void)stage;
    yaml_parser_delete(&c.parser);
    if (rc) {
        runner_node_free(doc);
        return -1;
    }
    *root = doc;
    return 0;
}

/* ---- scalars ------------------------------------------------------------------------------ */

int runner_scalar_type(const runner_node *n)
{
    if (!n || n->kind != RUNNER_NODE_SCALAR) return -1;
    const char *s = n->text;
    if (n->quoted) return RUNNER_SCALAR_STRING;
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return RUNNER_SCALAR_NULL;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") || !strcmp(s, "false") ||
        !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return RUNNER_SCALAR_BOOL;
    const char *p = s + (*s == '-' || *s == '+');
    int digits = 0, dot = 0, exp = 0;
    if (*p) {
        const char *q = p;
        for (; *q; q++) {
            if (*q >= '0' && *q <= '9') digits++;
            else if (*q == '.' && !dot && !exp) dot = 1;
            else if ((*q == 'e' || *q == 'E') && digits && !exp) {
                exp = 1;
                if (q[1] == '-' || q[1] == '+') q++;
                if (!q[1]) break;
            } else break;
        }
        if (!*q && digits) return dot || exp ? RUNNER_SCALAR_FLOAT : RUNNER_SCALAR_INT;
    }
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".nan") || !strcmp(p, ".NaN"))
        return RUNNER_SCALAR_FLOAT;
    return RUNNER_SCALAR_STRING;
}

const char *runner_node_kind_name(const runner_node *n)
{
    if (!n) return "nothing";
    if (n->kind == RUNNER_NODE_MAP) return "a mapping";
    if (n->kind == RUNNER_NODE_SEQ) return "a list";
    switch (runner_scalar_type(n)) {
    case RUNNER_SCALAR_NULL: return "null";
    case RUNNER_SCALAR_BOOL: return "a boolean";
    case RUNNER_SCALAR_INT: return "an integer";
    case RUNNER_SCALAR_FLOAT: return "a number";
    default: return "a string";
    }
}

json_t *runner_node_to_json(const runner_node *n)
{
    if (!n) return json_null();
    if (n->kind == RUNNER_NODE_MAP) {
        json_t *o = json_object();
        for (size_t i = 0; o && i < n->n; i++) json_object_set_new(o, n->keys[i]->text, runner_node_to_json(n->items[i]));
        return o;
    }
    if (n->kind == RUNNER_NODE_SEQ) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n->n; i++) json_array_append_new(a, runner_node_to_json(n->items[i]));
        return a;
    }
    const char *s = n->text;
    switch (runner_scalar_type(n)) {
    case RUNNER_SCALAR_NULL: return json_null();
    case RUNNER_SCALAR_BOOL: return json_boolean(s[0] == 't' || s[0] == 'T');
    case RUNNER_SCALAR_INT: return json_integer(strtoll(s, NULL, 10));
    case RUNNER_SCALAR_FLOAT: {
        const char *p = s + (*s == '-' || *s == '+');
        double v = !strcasecmp(p, ".inf") ? INFINITY : !strcasecmp(p, ".nan") ? NAN : strtod(p, NULL);
        return json_real(*s == '-' ? -v : v);
    }
    default: return json_string(s);
    }
}

const runner_node *runner_map_get(const runner_node *map, const char *key)
{
    if (!map || map->kind != RUNNER_NODE_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->text, key)) return map->items[i];
    return NULL;
}

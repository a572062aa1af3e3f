/* gen_pipeline.c - a pipeline of generators: reader -> cleaner -> tokenizer.
 *
 * Each stage is a generator that consumes the one before it, as in the
 * asyncio tutorials' `async for line in reader(): ...` chains:
 *
 *     reader     yields the lines of a text, one at a time
 *     cleaner    lower-cases them, drops punctuation, skips blank lines
 *     tokenizer  splits them into words
 *
 * The main task counts the words. Every stage runs in the main task, on a
 * stack of its own: asking a stage for a value switches straight onto its
 * stack, and its yield switches straight back. Only one value is in flight
 * per stage, so the pipeline streams in bounded memory however long the
 * text is. A yielded string belongs to the stage that asked for it.
 *
 * Then it runs the pipeline again but stops after a few words and closes
 * the last stage: each stage's pending yield returns -ECANCELED, it cleans
 * up, and closes the stage before it, so the whole chain is torn down and
 * every string is freed.
 *
 *     $ ./gen_pipeline
 */
#define _POSIX_C_SOURCE 200809L /* strdup, strtok_r */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

static const char *const poem[] = {
    "The fog comes",      "on little cat feet.", "", "It sits looking", "over harbor and city",
    "on silent haunches", "and then moves on.",
};

typedef struct stage {
    const char *name;
    wf_gen_t *up; /* the stage before, or NULL for the reader */
    long repeat;  /* reader: passes over the text */
} stage_t;

/* A stage closed before it ever started must still close the one before. */
static void stage_drop(void *arg)
{
    stage_t *s = arg;
    if (s->up)
        wf_gen_close(s->up, NULL);
}

static wf_gen_t *start(wf_gen_fn fn, stage_t *s)
{
    wf_spawn_opts_t o = WF_SPAWN_OPTS_INIT;
    o.name = s->name;
    o.drop = stage_drop;
    wf_gen_t *g = NULL;
    return wf_gen_create(&g, fn, s, &o) == 0 ? g : NULL;
}

static int reader(wf_gen_t *g, void *arg)
{
    stage_t *s = arg;
    long lines = 0;
    for (long r = 0; r < s->repeat; r++) {
        for (size_t i = 0; i < sizeof poem / sizeof poem[0]; i++) {
            char *line = strdup(poem[i]);
            if (!line)
                return -ENOMEM;
            if (wf_gen_yield(g, line) < 0) { /* closed (the line was delivered) */
                printf("  reader: closed after %ld lines\n", lines);
                return -ECANCELED;
            }
            lines++;
        }
    }
    return 0;
}

static int cleaner(wf_gen_t *g, void *arg)
{
    stage_t *s = arg;
    void *v;
    int r;
    while ((r = wf_gen_next(s->up, &v)) == 1) {
        char *line = v, *out = line;
        for (char *c = line; *c; c++)
            if (isalpha((unsigned char)*c) || *c == ' ')
                *out++ = (char)tolower((unsigned char)*c);
        *out = '\0';
        if (!*line) {
            free(line);
            continue;
        }
        if (wf_gen_yield(g, line) < 0) { /* closed */
            r = -ECANCELED;
            break;
        }
    }
    int st = 0;
    wf_gen_close(s->up, &st); /* the reader's own status */
    if (r < 0)
        printf("  cleaner: closed\n");
    return r < 0 ? r : st;
}

static int tokenizer(wf_gen_t *g, void *arg)
{
    stage_t *s = arg;
    void *v;
    int r;
    while ((r = wf_gen_next(s->up, &v)) == 1) {
        char *save = NULL, *line = v;
        for (char *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            char *word = strdup(w);
            if (!word) {
                r = -ENOMEM;
                break;
            }
            if (wf_gen_yield(g, word) < 0) { /* closed */
                r = -ECANCELED;
                break;
            }
        }
        free(line);
        if (r < 0)
            break;
    }
    int st = 0;
    wf_gen_close(s->up, &st);
    if (r < 0)
        printf("  tokenizer: closed\n");
    return r < 0 ? r : st;
}

/* Build reader -> cleaner -> tokenizer over `repeat` copies of the text. */
static wf_gen_t *pipeline(stage_t st[3], long repeat)
{
    st[0] = (stage_t){"reader", NULL, repeat};
    wf_gen_t *r = start(reader, &st[0]);
    st[1] = (stage_t){"cleaner", r, 0};
    wf_gen_t *c = r ? start(cleaner, &st[1]) : NULL;
    st[2] = (stage_t){"tokenizer", c, 0};
    return c ? start(tokenizer, &st[2]) : NULL;
}

static int main_task(void *arg, void **result)
{
    (void)arg; (void)result;
    /* 1. The whole text, 1,000 times over: every word counted, one value
     *    in flight per stage. */
    stage_t st[3];
    wf_gen_t *words = pipeline(st, 1000);
    if (!words)
        return -ENOMEM;
    long n = 0, fog = 0;
    void *v;
    int r;
    while ((r = wf_gen_next(words, &v)) == 1) {
        n++;
        fog += strcmp(v, "fog") == 0;
        free(v);
    }
    int status;
    wf_gen_close(words, &status);
    printf("%ld words, \"fog\" %ld times; the pipeline ended with: %s\n", n, fog, wf_strerror(status));

    /* 2. Stop early: take five words, then close the last stage. */
    words = pipeline(st, 1000);
    if (!words)
        return -ENOMEM;
    printf("the first five words:");
    for (int i = 0; i < 5 && wf_gen_next(words, &v) == 1; i++) {
        printf(" %s", (char *)v);
        free(v);
    }
    printf("\nclosing the pipeline:\n");
    wf_gen_close(words, &status);
    printf("closed: %s\n", wf_strerror(status));
    /* Check the count against a plain loop over the text. */
    long per_pass = 0;
    for (size_t i = 0; i < sizeof poem / sizeof poem[0]; i++)
        for (const char *c = poem[i]; *c; c++)
            per_pass += *c != ' ' && (c == poem[i] || c[-1] == ' ');
    return n == 1000 * per_pass && fog == 1000 ? 0 : -EIO;
}

int main(void)
{
    int status;
    int e = wf_run(NULL, main_task, NULL, &status, NULL);
    if (e || status)
        fprintf(stderr, "gen_pipeline: %s\n", wf_strerror(e ? e : status));
    return e || status ? 1 : 0;
}

/* callbacks.c - done callbacks (Task.add_done_callback).
 *
 * A callback is a small record holding an after-hook (task.h): the task's
 * end unlinks it under the task's jlock, and wf__task_finish calls it once
 * the lock is released, so user code never runs under a runtime lock. The
 * record belongs to the runtime from registration on and is freed right
 * after the callback returns, or when the callback is removed before the
 * task ends; nothing else can free it, so it is never lost or run twice.
 */
#include "combo.h"

#include <stdlib.h>

typedef struct callback {
    wf__after_hook ah;
    wf_done_fn fn;
    void *arg;
    wf_task_t id;
} callback;

static void run_callback(wf__after_hook *ah, wf__task *t)
{
    callback *c = wf__container_of(ah, callback, ah);
    c->fn(c->id, t->status, t->result, c->arg);
    free(c);
}

int wf_task_add_done_callback(wf_task_t id, wf_done_fn fn, void *arg)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    callback *c = malloc(sizeof *c);
    if (!c) {
        wf__task_unpin(t);
        return -ENOMEM;
    }
    c->ah.hook.fn = NULL; /* an after-hook */
    c->ah.run = run_callback;
    c->ah.next = NULL;
    c->fn = fn;
    c->arg = arg;
    c->id = id;
    if (!wf__task_add_hook(t, &c->ah.hook)) {
        /* Already ended (its outcome is final: add_hook saw DONE under
         * jlock, with acquire). */
        fn(id, t->status, t->result, arg);
        free(c);
    }
    wf__task_unpin(t);
    return 0;
}

int wf_task_remove_done_callback(wf_task_t id, wf_done_fn fn, void *arg)
{
    wf__runtime *rt = wf__tls_runtime();
    if (!rt)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    wf__task *t;
    int e = wf__task_pin(rt, id, &t);
    if (e)
        return e;
    /* Unlink the matching records under jlock: once off the list, the
     * task's end can no longer reach them, and they are ours to free. */
    callback *gone = NULL;
    int n = 0;
    wf__spin_lock(&t->jlock);
    wf__link *l = t->hooks.next;
    while (l != &t->hooks) {
        wf__link *next = l->next;
        wf__done_hook *h = wf__container_of(l, wf__done_hook, link);
        if (!h->fn) {
            wf__after_hook *ah = wf__container_of(h, wf__after_hook, hook);
            callback *c = wf__container_of(ah, callback, ah);
            if (ah->run == run_callback && c->fn == fn && c->arg == arg) {
                wf__list_unlink(l);
                c->ah.next = (wf__after_hook *)gone;
                gone = c;
                n++;
            }
        }
        l = next;
    }
    wf__spin_unlock(&t->jlock);
    wf__task_unpin(t);
    while (gone) {
        callback *c = gone;
        gone = (callback *)c->ah.next;
        free(c);
    }
    return n;
}

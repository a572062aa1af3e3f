/* hello.c - the README's example: spawn a few tasks, sleep in them, join
 * them, cancel one, and read every outcome. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <weft.h>

static int worker(void *arg, void **result)
{
    intptr_t n = (intptr_t)arg;
    int e = wf_sleep(n * 10 * WF_NSEC_PER_MSEC); /* -ECANCELED if cancelled */
    if (e)
        return e;
    *result = (void *)(n * n);
    return 0;
}

static int main_task(void *arg, void **result)
{
    (void)arg; (void)result;
    wf_task_t t[4];
    for (intptr_t i = 0; i < 4; i++)
        wf_spawn(&t[i], worker, (void *)(i + 1), NULL);
    wf_cancel(t[3]); /* the slowest one will not finish */
    for (int i = 0; i < 4; i++) {
        int status;
        void *r;
        wf_join(t[i], &status, &r);
        printf("task %d: %s, result %ld\n", i, wf_strerror(status), (long)(intptr_t)r);
    }
    return 0;
}

int main(void)
{
    int status;
    int e = wf_run(NULL, main_task, NULL, &status, NULL);
    return e || status ? 1 : 0;
}

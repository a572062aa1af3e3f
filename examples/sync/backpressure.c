/* backpressure.c - a producer-consumer pipeline with backpressure.
 *
 * Three stages joined by bounded queues:
 *
 *     producer --[jobs, 8]--> 4 workers --[results, 4]--> collector
 *
 * The producer makes jobs faster than the workers can do them. Because the
 * queues are bounded, a full queue makes wf_queue_put() wait: the producer
 * is held back to the workers' pace and memory stays bounded, whatever the
 * number of jobs. The producer counts how often it had to wait.
 *
 * Shutting down, asyncio-style: the producer finishes, the main task
 * waits for every job to be processed (wf_queue_join, which counts
 * wf_queue_task_done calls), then shuts the queue down gracefully so the
 * workers' gets fail with -ESHUTDOWN and they return; the same for the
 * results queue and the collector.
 *
 *     $ ./backpressure
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

#define JOBS 200
#define WORKERS 4

typedef struct job {
    int id;
    long input;
    long output;
} job_t;

typedef struct {
    wf_queue_t *jobs, *results;
    long waited;  /* puts that found the jobs queue full */
    long max_len; /* the most jobs ever queued */
} pipeline_t;

static int producer(void *arg, void **result)
{
    (void)result;
    pipeline_t *p = arg;
    for (int i = 0; i < JOBS; i++) {
        job_t *j = malloc(sizeof *j);
        if (!j)
            return -ENOMEM;
        j->id = i;
        j->input = i;
        /* Try first, just to count the backpressure; then wait for room. */
        int e = wf_queue_try_put(p->jobs, j);
        if (e == -EAGAIN) {
            p->waited++;
            e = wf_queue_put(p->jobs, j);
        }
        if (e) {
            free(j); /* a failed put did not enqueue: still ours */
            return e;
        }
        long n = wf_queue_size(p->jobs);
        if (n > p->max_len)
            p->max_len = n;
    }
    return 0;
}

static int worker(void *arg, void **result)
{
    (void)result;
    pipeline_t *p = arg;
    void *item;
    int e;
    while ((e = wf_queue_get(p->jobs, &item)) == 0) {
        job_t *j = item;
        wf_sleep(200 * WF_NSEC_PER_USEC); /* the work: slower than the producer */
        j->output = j->input * j->input;
        e = wf_queue_put(p->results, j);
        wf_queue_task_done(p->jobs);
        if (e) {
            free(j);
            return e;
        }
    }
    return e == -ESHUTDOWN ? 0 : e; /* shut down and drained: done */
}

static int collector(void *arg, void **result)
{
    pipeline_t *p = arg;
    long sum = 0, n = 0;
    void *item;
    int e;
    while ((e = wf_queue_get(p->results, &item)) == 0) {
        job_t *j = item;
        sum += j->output;
        n++;
        free(j);
        wf_queue_task_done(p->results);
    }
    printf("collector: %ld results, sum of squares %ld\n", n, sum);
    *result = (void *)(intptr_t)sum;
    return e == -ESHUTDOWN ? 0 : e;
}

static int main_task(void *arg, void **result)
{
    (void)arg; (void)result;
    pipeline_t p = {0};
    if (wf_queue_create(&p.jobs, 8, WF_QUEUE_FIFO, NULL) ||
        wf_queue_create(&p.results, 4, WF_QUEUE_FIFO, NULL))
        return -ENOMEM;
    wf_task_t prod, coll, w[WORKERS];
    wf_spawn(&coll, collector, &p, NULL);
    for (int i = 0; i < WORKERS; i++)
        wf_spawn(&w[i], worker, &p, NULL);
    wf_spawn(&prod, producer, &p, NULL);

    int st;
    wf_join(prod, &st, NULL);
    printf("producer: %s; waited for room %ld times; at most %ld jobs queued (capacity %ld)\n",
           wf_strerror(st), p.waited, p.max_len, wf_queue_capacity(p.jobs));
    /* Every job processed, then let the workers go. */
    wf_queue_join(p.jobs);
    wf_queue_shutdown(p.jobs, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL);
    for (int i = 0; i < WORKERS; i++)
        wf_join(w[i], NULL, NULL);
    /* Every result collected, then let the collector go. */
    wf_queue_join(p.results);
    wf_queue_shutdown(p.results, WF_QUEUE_SHUTDOWN_GRACEFUL, NULL, NULL);
    void *sum;
    wf_join(coll, &st, &sum);

    long want = 0;
    for (long i = 0; i < JOBS; i++)
        want += i * i;
    wf_queue_destroy(p.jobs, NULL, NULL, NULL);
    wf_queue_destroy(p.results, NULL, NULL, NULL);
    return (long)(intptr_t)sum == want && p.max_len <= 8 ? 0 : -EIO;
}

int main(void)
{
    int status;
    int e = wf_run(NULL, main_task, NULL, &status, NULL);
    if (e || status)
        fprintf(stderr, "backpressure: %s\n", wf_strerror(e ? e : status));
    return e || status ? 1 : 0;
}

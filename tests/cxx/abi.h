/* tests/cxx/abi.h - the public types whose layout C and C++ must agree on.
 * abi.c records sizeof, alignof and field offsets as the C compiler sees
 * them; test_cxx.cpp compares them with what the C++ compiler sees. */
#ifndef WEFT_TEST_CXX_ABI_H
#define WEFT_TEST_CXX_ABI_H

#include <stddef.h>
#include <weft.h>

#ifdef __cplusplus
extern "C" {
#endif

/* T(type): a type; F(type, field): a public field of it. */
#define ABI_LAYOUT(T, F)                                                                                     \
    T(wf_config_t)                                                                                           \
    F(wf_config_t, workers)                                                                                  \
    F(wf_config_t, stack_size)                                                                               \
    F(wf_config_t, guard_stacks)                                                                             \
    F(wf_config_t, pin_workers)                                                                              \
    F(wf_config_t, pool_user_threads)                                                                        \
    F(wf_config_t, pool_file_threads)                                                                        \
    F(wf_config_t, pool_dns_threads)                                                                         \
    F(wf_config_t, pool_idle_ns)                                                                             \
    F(wf_config_t, shutdown_on_signal)                                                                       \
    F(wf_config_t, procpool)                                                                                 \
    T(wf_spawn_opts_t)                                                                                       \
    F(wf_spawn_opts_t, name)                                                                                 \
    F(wf_spawn_opts_t, stack_size)                                                                           \
    F(wf_spawn_opts_t, worker)                                                                               \
    F(wf_spawn_opts_t, drop)                                                                                 \
    T(wf_task_t)                                                                                             \
    T(wf_task_state_t)                                                                                       \
    T(wf_timer_t)                                                                                            \
    T(wf_outcome_t)                                                                                          \
    F(wf_outcome_t, status)                                                                                  \
    F(wf_outcome_t, result)                                                                                  \
    T(wf_wait_when_t)                                                                                        \
    T(wf_timeout_t)                                                                                          \
    T(wf_group_t)                                                                                            \
    T(wf_group_failure_t)                                                                                    \
    F(wf_group_failure_t, task)                                                                              \
    F(wf_group_failure_t, status)                                                                            \
    F(wf_group_failure_t, result)                                                                            \
    F(wf_group_failure_t, arg)                                                                               \
    F(wf_group_failure_t, name)                                                                              \
    T(wf_lock_t)                                                                                             \
    T(wf_rwlock_t)                                                                                           \
    T(wf_event_t)                                                                                            \
    T(wf_cond_t)                                                                                             \
    T(wf_sem_t)                                                                                              \
    T(wf_barrier_t)                                                                                          \
    T(wf_queue_kind_t)                                                                                       \
    T(wf_queue_shutdown_mode_t)                                                                              \
    T(wf_select_op_t)                                                                                        \
    T(wf_select_case_t)                                                                                      \
    F(wf_select_case_t, queue)                                                                               \
    F(wf_select_case_t, op)                                                                                  \
    F(wf_select_case_t, item)                                                                                \
    F(wf_select_case_t, result)                                                                              \
    T(wf_pool_class_t)                                                                                       \
    T(wf_offload_opts_t)                                                                                     \
    F(wf_offload_opts_t, pool)                                                                               \
    F(wf_offload_opts_t, deadline)                                                                           \
    F(wf_offload_opts_t, drop)                                                                               \
    T(wf_pool_stats_t)                                                                                       \
    F(wf_pool_stats_t, limit)                                                                                \
    F(wf_pool_stats_t, threads)                                                                              \
    F(wf_pool_stats_t, idle)                                                                                 \
    F(wf_pool_stats_t, running)                                                                              \
    F(wf_pool_stats_t, queued)                                                                               \
    F(wf_pool_stats_t, peak)                                                                                 \
    T(wf_procpool_opts_t)                                                                                    \
    F(wf_procpool_opts_t, workers)                                                                           \
    F(wf_procpool_opts_t, eager)                                                                             \
    F(wf_procpool_opts_t, max_jobs_per_worker)                                                               \
    F(wf_procpool_opts_t, initializer)                                                                       \
    F(wf_procpool_opts_t, init_input)                                                                        \
    F(wf_procpool_opts_t, init_len)                                                                          \
    F(wf_procpool_opts_t, max_output)                                                                        \
    F(wf_procpool_opts_t, start_timeout)                                                                     \
    T(wf_procres_t)                                                                                          \
    F(wf_procres_t, status)                                                                                  \
    F(wf_procres_t, returncode)                                                                              \
    F(wf_procres_t, out)                                                                                     \
    F(wf_procres_t, len)                                                                                     \
    T(wf_procin_t)                                                                                           \
    F(wf_procin_t, data)                                                                                     \
    F(wf_procin_t, len)                                                                                      \
    T(wf_procpool_close_mode_t)                                                                              \
    T(wf_procpool_stats_t)                                                                                   \
    F(wf_procpool_stats_t, workers)                                                                          \
    F(wf_procpool_stats_t, ready)                                                                            \
    F(wf_procpool_stats_t, jobs)                                                                             \
    F(wf_procpool_stats_t, recycled)

typedef struct abi_entry {
    const char *name;
    size_t size;  /* sizeof the type, or of the field */
    size_t align; /* alignof the type; for a field, its offset */
} abi_entry;

extern const abi_entry abi_c[];
extern const size_t abi_c_count;

#ifdef __cplusplus
}
#endif
#endif

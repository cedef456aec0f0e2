/* test_list.h - every C test, once.  runner.c expands ST_TEST_LIST into
 * the declarations and the table, in this order. */
#ifndef ST_TEST_LIST_H
#define ST_TEST_LIST_H

#define ST_TEST_LIST(X)                                                     \
    /* test_thread.c */                                                     \
    X(thread_create_join)                                                   \
    X(thread_clock_and_timedwait)                                           \
    X(thread_event)                                                         \
    X(alloc_hooks)                                                          \
    X(error_names)                                                          \
    /* test_task.c */                                                       \
    X(task_init_status)                                                     \
    X(task_precompleted)                                                    \
    X(task_try_reserve_race)                                                \
    X(task_try_reserve_race_lockstep)                                       \
    X(task_finish_order)                                                    \
    X(task_finish_order_first_await_first)                                  \
    X(task_finish_order_run_cont_async)                                     \
    X(task_finish_order_signal)                                             \
    X(task_signal_inline_under_run_cont_async)                              \
    X(task_add_after_completion)                                            \
    X(task_remove_cont)                                                     \
    X(task_add_race_completion)                                             \
    X(task_cont_reuses_node)                                                \
    X(task_wait_timeout)                                                    \
    X(task_wait_woken)                                                      \
    X(task_remove_waiter_race)                                              \
    /* test_pool.c */                                                       \
    X(pool_create_invalid)                                                  \
    X(pool_create_shutdown)                                                 \
    X(pool_exactly_once)                                                    \
    X(pool_fifo_per_producer)                                               \
    X(pool_submit_from_item)                                                \
    X(pool_domain_hooks)                                                    \
    X(pool_domain_attach_refused)                                           \
    X(pool_domain_slice)                                                    \
    X(pool_domain_slice_default)                                            \
    X(pool_shutdown_drops_queued)                                           \
    X(pool_blocking_compensation)                                           \
    X(pool_blocking_at_max)                                                 \
    X(pool_blocking_foreign_thread)                                         \
    X(pool_set_limits)                                                      \
    /* test_timer.c */                                                      \
    X(heap_random_ops)                                                      \
    X(timer_order_deadline_then_fifo)                                       \
    X(timer_fires_on_time)                                                  \
    X(timer_earlier_entry_wakes_thread)                                     \
    X(timer_cancel)                                                         \
    X(timer_stress_random)                                                  \
    X(timer_rearm_from_fire)                                                \
    X(timer_shutdown_with_armed)                                            \
    X(timer_shutdown_idle)

#endif /* ST_TEST_LIST_H */

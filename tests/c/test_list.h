/* test_list.h - every C test, once.  runner.c expands ST_TEST_LIST into
 * the declarations and the table, in this order. */
#ifndef ST_TEST_LIST_H
#define ST_TEST_LIST_H

#define ST_TEST_LIST(X)                                                     \
    /* test_thread.c */                                                     \
    X(thread_create_join)                                                   \
    X(thread_names_issue14)                                                 \
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
    X(task_cont_ring_order)                                                 \
    X(task_add_race_completion)                                             \
    X(task_cont_reuses_node)                                                \
    X(task_wait_timeout)                                                    \
    X(task_wait_woken)                                                      \
    X(task_remove_waiter_race)                                              \
    X(task_remove_waiter_woken_early)                                       \
    /* test_vtsource.c */                                                   \
    X(vtsource_version_and_tokens)                                          \
    X(vtsource_version_wraps)                                               \
    X(vtsource_set_twice_and_get_result_early)                              \
    X(vtsource_statuses)                                                    \
    X(vtsource_registered_first_runs_inline)                                \
    X(vtsource_late_registration_runs_async_once)                           \
    X(vtsource_second_registration_refused)                                 \
    X(vtsource_reset_clears_registration)                                   \
    X(vtsource_race_on_completed_vs_complete)                               \
    X(vtsource_race_on_completed_vs_complete_lockstep)                      \
    X(vtsource_race_many_registrations)                                     \
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
    /* test_pool.c: queues, waking, threads, token (issue 3) */             \
    X(pool_local_queue_is_lifo)                                             \
    X(pool_local_items_are_stolen_fifo)                                     \
    X(pool_submit_local_from_foreign_thread)                                \
    X(pool_stress_producers_and_thieves)                                    \
    X(pool_one_wake_per_submit)                                             \
    X(pool_starvation_injects_at_most_one_per_period)                       \
    X(pool_starvation_default_period)                                       \
    X(pool_blocking_compensation_delays)                                    \
    X(pool_idle_workers_retire)                                             \
    X(pool_lower_max_retires_surplus)                                       \
    X(pool_token_one_worker_attached)                                       \
    X(pool_token_revoked_from_stalled_holder)                               \
    X(pool_token_released_by_enter_blocking)                                \
    X(pool_dedicated_threads)                                               \
    X(pool_shutdown_timed_abandons_stuck_item)                              \
    X(pool_shutdown_timed_clean)                                            \
    /* test_pool.c: issue 9 (hardening) */                                  \
    X(pool_submitted_item_freed_at_once)                                    \
    X(pool_items_run_with_creators_signal_mask)                             \
    /* test_deque.c */                                                      \
    X(deque_lifo_fifo_full_empty)                                           \
    X(deque_wraparound)                                                     \
    X(deque_stress_owner_and_thieves)                                       \
    X(deque_stress_wraparound)                                              \
    /* test_timer.c */                                                      \
    X(heap_random_ops)                                                      \
    X(timer_order_deadline_then_fifo)                                       \
    X(timer_fires_on_time)                                                  \
    X(timer_earlier_entry_wakes_thread)                                     \
    X(timer_cancel)                                                         \
    X(timer_stress_random)                                                  \
    X(timer_rearm_from_fire)                                                \
    X(timer_shutdown_with_armed)                                            \
    X(timer_shutdown_idle)                                                  \
    /* test_cancel.c */                                                     \
    X(cancel_lifo_on_canceling_thread)                                      \
    X(cancel_state_word)                                                    \
    X(cancel_register_after_request)                                        \
    X(cancel_unregister_basic)                                              \
    X(cancel_unregister_during_cancel)                                      \
    X(cancel_dispose_waits_for_running_callback)                            \
    X(cancel_abandon_after_first_failure)                                   \
    X(cancel_try_reset)                                                     \
    X(cancel_close)                                                         \
    X(cancel_reuse_node_on_other_source)                                    \
    X(cancel_foreach)                                                       \
    X(cancel_race_register_unregister_cancel)                               \
    X(cancel_race_concurrent_cancels)                                       \
    /* test_workq.c */                                                      \
    X(workq_fifo_close_and_count)                                           \
    X(workq_visit_issue9_in_order_and_stops_early)                          \
    X(workq_visit_issue9_stress_with_pushers_and_consumer)                  \
    /* test_waitq.c (issue 10) */                                           \
    X(waitq_issue10_fifo_and_lifo_order)                                    \
    X(waitq_issue10_remove_exactly_once)                                    \
    X(waitq_issue10_ids_owner_and_requeue)                                  \
    X(waitq_issue10_detach_all_chain)                                       \
    /* test_semaphore.c (issue 10) */                                       \
    X(sem_issue10_init_checks_9_1)                                          \
    X(sem_issue10_release_checks_9_6)                                       \
    X(sem_issue10_wait_and_timeout_9_2)                                     \
    X(sem_issue10_async_fifo_and_count_to_waiter_9_4)                       \
    X(sem_issue10_blocked_threads_first_then_fifo_9_4)                      \
    X(sem_issue10_cancel_races_release_exactly_once_9_3)                    \
    X(sem_issue10_cancel_wakes_blocked_thread)                              \
    X(sem_issue10_block_in_slices_then_granted)                             \
    X(sem_issue10_close_drops_async_waiters_9_8)                            \
    X(sem_issue10_release_from_completion_9_5)                              \
    X(sem_issue10_pingpong_no_lost_wakeup)                                  \
    X(sem_issue10_stress_wait_release_timeout_cancel)                       \
    X(sem_issue10_stress_releasers_fifo_exactly_once)                       \
    /* test_waitgraph.c (issue 10) */                                       \
    X(wg_issue10_context_owner_closes_cycle_c6)                             \
    X(wg_issue10_edges_followed_in_reported_order_c6)                       \
    X(wg_issue10_owned_top_past_8_c8)                                       \
    X(wg_issue10_two_threads_cycle_and_recheck_wakes_c6)                    \
    X(wg_issue10_running_task_edge_c5)                                      \
    X(wg_issue10_long_chain_no_depth_limit)                                 \
    X(wg_issue10_visited_set_bounds_the_work)                               \
    X(wg_issue10_wide_fan_out_grows)                                        \
    X(wg_issue10_running_stack_grows_past_16)                               \
    X(wg_issue10_edges_error_stops_search)                                  \
    X(wg_issue10_stress_ring_rounds_c6)                                     \
    /* test_trace.c (issue 12) */                                           \
    X(trace_d2_names_are_stable)                                            \
    X(trace_d2_off_records_nothing)                                         \
    X(trace_d2_one_thread_in_order_with_fields)                             \
    X(trace_d2_full_ring_drops_oldest_and_counts)                           \
    X(trace_d2_exited_threads_are_collected)                                \
    X(trace_d2_sessions_start_stop)                                         \
    X(trace_d2_interned_strings)                                            \
    X(trace_d2_stress_record_toggle_collect)                                \
    X(trace_d2_stress_every_event_collected_or_dropped)                     \
    X(trace_d2_pool_item_events)                                            \
    X(trace_d2_pool_thread_injected_starvation_and_retired)                 \
    X(trace_d2_pool_thread_injected_blocking)                               \
    X(trace_d2_timer_fired)                                                 \
    X(trace_d2_task_completed_and_waits)                                    \
    X(trace_d2_semaphore_wait_block_and_wake)

#endif /* ST_TEST_LIST_H */

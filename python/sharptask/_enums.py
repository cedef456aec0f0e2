"""The enums and flag types of sharptask, with .NET's values (SPEC T1, T8,
C4)."""
from __future__ import annotations

import enum

__all__ = [
    "TaskStatus",
    "TaskCreationOptions",
    "TaskContinuationOptions",
    "ConfigureAwaitOptions",
    "ValueTaskSourceStatus",
    "ValueTaskSourceOnCompletedFlags",
]


class TaskStatus(enum.IntEnum):
    """Like .NET ``TaskStatus``."""

    CREATED = 0
    WAITING_FOR_ACTIVATION = 1
    WAITING_TO_RUN = 2
    RUNNING = 3
    WAITING_FOR_CHILDREN_TO_COMPLETE = 4
    RAN_TO_COMPLETION = 5
    CANCELED = 6
    FAULTED = 7

    def __str__(self) -> str:
        return self.name


class TaskCreationOptions(enum.IntFlag):
    """Like .NET ``TaskCreationOptions``."""

    NONE = 0
    PREFER_FAIRNESS = 0x1
    LONG_RUNNING = 0x2
    ATTACHED_TO_PARENT = 0x4
    DENY_CHILD_ATTACH = 0x8
    HIDE_SCHEDULER = 0x10
    RUN_CONTINUATIONS_ASYNCHRONOUSLY = 0x40


class TaskContinuationOptions(enum.IntFlag):
    """Like .NET ``TaskContinuationOptions``."""

    NONE = 0
    PREFER_FAIRNESS = 0x1
    LONG_RUNNING = 0x2
    ATTACHED_TO_PARENT = 0x4
    DENY_CHILD_ATTACH = 0x8
    HIDE_SCHEDULER = 0x10
    LAZY_CANCELLATION = 0x20
    RUN_CONTINUATIONS_ASYNCHRONOUSLY = 0x40
    NOT_ON_RAN_TO_COMPLETION = 0x10000
    NOT_ON_FAULTED = 0x20000
    NOT_ON_CANCELED = 0x40000
    ONLY_ON_RAN_TO_COMPLETION = NOT_ON_FAULTED | NOT_ON_CANCELED
    ONLY_ON_FAULTED = NOT_ON_RAN_TO_COMPLETION | NOT_ON_CANCELED
    ONLY_ON_CANCELED = NOT_ON_RAN_TO_COMPLETION | NOT_ON_FAULTED
    EXECUTE_SYNCHRONOUSLY = 0x80000


class ConfigureAwaitOptions(enum.IntFlag):
    """Like .NET 8 ``ConfigureAwaitOptions``."""

    NONE = 0
    CONTINUE_ON_CAPTURED_CONTEXT = 0x1
    SUPPRESS_THROWING = 0x2
    FORCE_YIELDING = 0x4


class ValueTaskSourceStatus(enum.IntEnum):
    """Like .NET ``ValueTaskSourceStatus``: what ``get_status(token)`` of an
    IValueTaskSource returns (SPEC V3)."""

    PENDING = 0
    SUCCEEDED = 1
    FAULTED = 2
    CANCELED = 3

    def __str__(self) -> str:
        return self.name


class ValueTaskSourceOnCompletedFlags(enum.IntFlag):
    """Like .NET ``ValueTaskSourceOnCompletedFlags``, passed to an
    IValueTaskSource's ``on_completed`` (SPEC V3, C4).  Unknown bits are
    ignored."""

    NONE = 0
    USE_SCHEDULING_CONTEXT = 0x1
    FLOW_EXECUTION_CONTEXT = 0x2

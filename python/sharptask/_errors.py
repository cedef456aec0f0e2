"""The exceptions of sharptask (SPEC §0), with their .NET names in the docs.

They are plain Python classes: the C binding imports this module when it is
loaded and raises these very classes.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Self, Sequence, cast


__all__ = [
    "AggregateError",
    "OperationCanceledError",
    "TaskCanceledError",
    "InvalidOperationError",
    "ObjectDisposedError",
    "SemaphoreFullError",
    "DeadlockError",
]

_AGG_MESSAGE = "One or more errors occurred."


class AggregateError(ExceptionGroup):
    """Like .NET ``AggregateException``: one or more errors of a task.

    It is an :class:`ExceptionGroup`, so ``except*`` works.  The inner
    exceptions keep the order .NET gives them (for ``Task.when_all`` and
    ``Task.wait_all``: argument order).
    """

    def __new__(cls, message: str | Iterable[BaseException] = _AGG_MESSAGE,
                exceptions: Iterable[BaseException] | None = None) -> Self:
        if exceptions is None:
            if isinstance(message, str):
                raise TypeError(
                    "AggregateError() needs at least one inner exception")
            exceptions, message = message, _AGG_MESSAGE
        elif not isinstance(message, str):
            raise TypeError("message must be a str, not "
                            f"{type(message).__name__}")
        excs = list(exceptions)
        for i, e in enumerate(excs):
            if not isinstance(e, BaseException):  # H2: a type error
                raise TypeError(f"exceptions[{i}] must be an exception "
                                f"instance, not {type(e).__name__}")
        if not excs:
            raise ValueError("exceptions: an AggregateError needs at least "
                             "one inner exception")
        # ExceptionGroup itself rejects an inner BaseException that is not
        # an Exception (TypeError): the static type stays the wider one.
        return super().__new__(cls, message, cast("list[Exception]", excs))

    def __init__(self, message: str | Iterable[BaseException] = _AGG_MESSAGE,
                 exceptions: Iterable[BaseException] | None = None) -> None:
        # ExceptionGroup initialises itself in __new__; accept both forms.
        pass

    def derive(self, excs: Sequence[Exception]  # type: ignore[override]
               ) -> AggregateError:  # used by except* to split the group
        return AggregateError(self.message, excs)

    @property
    def inner_exceptions(self) -> tuple[BaseException, ...]:
        """The inner exceptions, as a tuple (``InnerExceptions``)."""
        return tuple(self.exceptions)

    @property
    def inner_exception(self) -> BaseException:
        """The first inner exception (``InnerException``)."""
        return self.exceptions[0]

    def flatten(self) -> "AggregateError":
        """Return an AggregateError with nested AggregateErrors unrolled
        (``Flatten``), in depth-first order."""
        out: list[BaseException] = []
        stack = list(reversed(self.exceptions))
        while stack:
            e = stack.pop()
            if isinstance(e, AggregateError):
                stack.extend(reversed(e.exceptions))
            else:
                out.append(e)
        return AggregateError(self.message, out)

    def handle(self, predicate: Callable[[BaseException], bool]) -> None:
        """Call ``predicate`` on each inner exception (``Handle``); those for
        which it returns false are raised again in a new AggregateError."""
        if not callable(predicate):
            raise TypeError("predicate must be callable")
        unhandled = [e for e in self.exceptions if not predicate(e)]
        if unhandled:
            raise AggregateError(self.message, unhandled)


class OperationCanceledError(Exception):
    """Like .NET ``OperationCanceledException``."""

    def __init__(self, message: str = "The operation was canceled.", *,
                 cancellation_token: Any = None):
        super().__init__(message)
        if cancellation_token is not None:
            # H2: the binding's token parser, as every entry point (issue
            # 9 item 27); imported here: _native imports this module
            from . import _native
            cancellation_token = _native._parse_token(cancellation_token)
        self.cancellation_token = cancellation_token


class TaskCanceledError(OperationCanceledError):
    """Like .NET ``TaskCanceledException``: ``task`` is the canceled task."""

    def __init__(self, message: str = "A task was canceled.", *,
                 task: Any = None, cancellation_token: Any = None):
        super().__init__(message, cancellation_token=cancellation_token)
        self.task = task


class InvalidOperationError(RuntimeError):
    """Like .NET ``InvalidOperationException``."""


class ObjectDisposedError(InvalidOperationError):
    """Like .NET ``ObjectDisposedException``."""


class SemaphoreFullError(ValueError):
    """Like .NET ``SemaphoreFullException``."""


class DeadlockError(InvalidOperationError):
    """A blocking wait that can never complete (sharptask's own, SPEC C6)."""

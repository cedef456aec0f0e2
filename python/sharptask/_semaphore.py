"""SemaphoreSlim (SPEC K4): the Python half.

The type itself is in C (csrc/binding/py_semaphore.c) over the core's
st_semaphore (csrc/core/st_semaphore.h), which holds the count, the two
queues of waiters, their order and "acquisition wins"; the hot path (`await
sem.wait_async()` on a free semaphore, then `sem.release()`) is two C calls
of one atomic compare-and-swap each.  What is rarer and needs Python objects
lives here: arming the timeout and the cancellation token of a queued
waiter (K3), async or a thread blocked in wait() with a token.

A waiter with a timeout gets a CancellationTokenSource linked to the
caller's token and canceled after the timeout (one native timer); a waiter
with only a token registers on the token.  Either callback calls
``sem._expire(waiter)``, which takes the waiter out of its queue (the core's
st_sem_cancel) and ends it (canceled if its token fired, else False) unless
release() granted it first (acquisition wins, reference 9.2, 9.3).  A granted or expired waiter's source is disposed and its
registration dropped at once, so neither a timer nor a registration outlives
the wait.
"""
from __future__ import annotations

from typing import Any

from . import _native
from ._impl import _timeout_seconds

__all__ = ["SemaphoreSlim"]

SemaphoreSlim = _native.SemaphoreSlim
CancellationToken = _native.CancellationToken
CancellationTokenSource = _native.CancellationTokenSource


def _register(token: Any, fn, state) -> Any:
    """Register fn(state) on token without flowing the context (internal
    callbacks need none); any token object with register() works."""
    unsafe = getattr(token, "unsafe_register", None)
    if unsafe is not None:
        return unsafe(fn, state)
    return token.register(lambda: fn(state))


def _expire(pair) -> None:
    """A waiter's timeout ran out or its token fired."""
    sem, w = pair
    if sem._expire(w):
        _cleanup(w)


def _cleanup(w) -> None:
    """Dispose w's timeout source and drop its registration (K3)."""
    cts, reg = w.cts, w.reg
    w.cts = w.reg = None
    if cts is not None:
        cts.dispose()
    if reg is not None:
        getattr(reg, "unregister", reg.dispose)()


def _arm(sem, w, timeout: Any, token: Any) -> None:
    """Called by the C type for a queued waiter with a timeout or a token:
    make them end it."""
    secs = _timeout_seconds(timeout)
    cancelable = token is not None and token.can_be_canceled
    if secs is None and not cancelable:
        return
    if secs is None:
        w.reg = _register(token, _expire, (sem, w))
    else:
        if cancelable and isinstance(token, CancellationToken):
            cts = CancellationTokenSource.create_linked_token_source(token)
        else:
            cts = CancellationTokenSource()
            if cancelable:  # another token object: register on it too
                w.reg = _register(token, _expire, (sem, w))
        w.cts = cts
        cts.cancel_after(secs)  # before registering: the callback may
        cts.token.unsafe_register(_expire, (sem, w))  # dispose cts
    if not w.queued:  # granted or expired while it was being armed
        _cleanup(w)

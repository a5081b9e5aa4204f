"""Which call the code running in this thread belongs to, on a worker or in its child process."""

from __future__ import annotations

import contextvars

#: The call id of the input running in this thread (`nbfan.current_function_call_id()`).
CURRENT_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("nbfan_call_id", default=None)
#: The calls the running input was made inside, outermost first, then its own call.
CURRENT_LINEAGE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("nbfan_lineage", default=())


def current_lineage() -> tuple[str, ...]:
    """Inside an input running on a worker: its call and the calls that one was made inside
    (calls made from here are their children); () elsewhere."""
    return CURRENT_LINEAGE.get()

"""Queue a Celery task by its registered name.

A service that queues its follow-up job would otherwise import the app's
``tasks`` module, which imports that service back: an import circle. The
task is looked up in the Celery app's registry instead, and queued through
the task object itself, so in-process mode (``task_always_eager``, the
default with no broker) runs it at once exactly as ``task.delay`` would.
``send_task`` is not used: it goes to the broker even in eager mode.

Each app registers its tasks when Django starts (``AppConfig.ready``
imports its ``tasks`` module), so a web process finds them as a worker does.
"""
from __future__ import annotations

from typing import Any

from celery import current_app
from celery.result import AsyncResult


def job_queue(name: str, *args: Any, **options: Any) -> AsyncResult:
    """Queue the task registered as ``name`` with positional ``args``; ``options`` go to ``apply_async``.

    Raises ``LookupError`` naming the task when no task of that name is registered (a typo, or an app
    whose ``ready`` does not import its tasks), rather than sending a message no worker would run.
    """
    try:
        task = current_app.tasks[name]
    except KeyError:
        raise LookupError(f"no Celery task is registered as {name!r}; does its app's ready() import its tasks?") \
            from None
    return task.apply_async(args, **options)

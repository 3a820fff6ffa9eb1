"""``celery -A datadao <argv>`` with the repair intervals shortened, for the fault suite only.

    python tests/faults/celery_run.py worker --loglevel=INFO ...
    python tests/faults/celery_run.py beat --schedule /tmp/x ...

The settings have no knob for these, and production's values (a sweep every
60 s or 5 min, an export silent for 120 s taken for dead) would not fit the
suite's few minutes:

* ``FAULTS_SWEEP_EVERY_S``: how often beat runs ``annotations.consensus_due_sweep``
  and ``annotations.exports_sweep``.
* ``FAULTS_EXPORT_STALE_S``: ``exports.services.HEARTBEAT_STALE_S``
  (a redelivered build claims an export whose heartbeat is older).

The age a consensus mark must reach before the sweep takes it (30 s) is left
as production has it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")

import django  # noqa: E402

django.setup()

from datadao.celery import app  # noqa: E402

SHORTENED = ("annotations.consensus_due_sweep", "annotations.exports_sweep")


def main(argv: list[str]) -> None:
    every = os.environ.get("FAULTS_SWEEP_EVERY_S")
    if every:
        schedule = {name: dict(entry) for name, entry in app.conf.beat_schedule.items()}
        for name in SHORTENED:
            schedule[name]["schedule"] = float(every)
        app.conf.beat_schedule = schedule
    stale = os.environ.get("FAULTS_EXPORT_STALE_S")
    if stale:
        # Set before the pool forks, so every child process reads it.
        from exports import services as export_services

        export_services.HEARTBEAT_STALE_S = float(stale)
    sys.exit(app.start(argv))


if __name__ == "__main__":
    main(sys.argv[1:])

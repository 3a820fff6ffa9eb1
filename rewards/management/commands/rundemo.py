"""``manage.py rundemo``: ``runserver`` plus the periodic jobs in-process (``datadao.demo_beat``), for ``make demo``."""
from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand

from datadao import demo_beat


class Command(RunserverCommand):
    help = ("Serve the app for the demo with its periodic jobs (quality, epochs, lease reclaim, sweeps) running "
            "in this process, each at most every --beat-every seconds. Needs in-process Celery (no broker).")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--beat-every", type=float, default=30.0,
                            help="the longest wait between two runs of a periodic job, in seconds (30)")

    def inner_run(self, *args, **options):
        # inner_run is the serving process (the autoreloader's child), so the beat runs once, beside the server.
        if settings.CELERY_TASK_ALWAYS_EAGER:
            demo_beat.start(options["beat_every"])
            self.stdout.write(f"Periodic jobs run in this process, each at most every {options['beat_every']:g} s.")
        else:
            self.stdout.write("A broker is configured: run `celery -A datadao worker -B` for the periodic jobs.")
        super().inner_run(*args, **options)

"""The Celery worker is killed (SIGKILL, whole process group) while it writes an export's files.

Redis redelivers the unacknowledged build after the visibility timeout (and
the exports sweep queues a build whose heartbeat went silent); the run that
takes it over removes the dead run's temporary files, so once the export is
done nothing ``*.tmp`` is left in the export folder.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.faults.stack import wait_for

pytestmark = pytest.mark.faults

TASKS = 15_000  # three judgments each: a build of a few seconds, long enough to be killed in
DONE_WITHIN_S = 120


def _temporary_files(stack) -> list[str]:
    return sorted(str(p.relative_to(stack.export_root)) for p in stack.export_root.rglob("*.tmp"))


def test_a_worker_killed_during_an_export_leaves_no_temporary_file(stack):
    seeded = stack.seed("export", "--name", "export-kill", "--tasks", str(TASKS))
    lab = requests.Session()
    lab.headers["Authorization"] = f"Token {seeded['token']}"
    requested = lab.post(f"{stack.base_url}/api/v1/campaigns/{seeded['campaign']}/exports",
                         json={"format": "judgments"}, timeout=30)
    assert requested.status_code == 202, requested.text
    export_url = requested.json()["url"]

    def state() -> str:
        return lab.get(export_url, timeout=30).json()["state"]

    wait_for("the build's temporary files", lambda: _temporary_files(stack), timeout=60, interval=0.01,
                         log=stack.worker.log)
    stack.worker.kill()
    killed_at = time.monotonic()
    assert state() == "running", f"the export is {state()} at the kill; it should still be building"
    leftovers = _temporary_files(stack)  # all of the dead run's, now that nothing writes
    assert leftovers, "the killed build left no temporary file; nothing was tested"

    stack.start_worker()
    final = wait_for("the export to finish after the kill", lambda: (s := state()) in ("done", "failed") and s,
                     timeout=DONE_WITHIN_S, interval=0.5, log=stack.worker.log)
    print(f"export done {time.monotonic() - killed_at:.1f} s after the kill; the dead run left {leftovers}")
    detail = lab.get(export_url, timeout=30).json()
    assert final == "done", f"export {final}: {detail.get('error')}\n{stack.logs()}"
    assert detail["rows"]["train"] == TASKS * 3
    assert _temporary_files(stack) == [], f"temporary files left after the export finished: {_temporary_files(stack)}"
    download = lab.get(detail["files"]["train"], timeout=60)
    assert download.status_code == 200 and download.content.count(b"\n") == TASKS * 3

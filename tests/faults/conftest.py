"""The fault suite's stack: started once for tests/faults/ and torn down whole, whatever happens."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults import stack as services


@pytest.fixture(scope="package")
def stack():
    missing = services.missing_binaries()
    if missing:
        pytest.skip(f"the fault suite needs {', '.join(missing)}")
    root = Path(tempfile.mkdtemp(prefix="datadao-faults-"))
    root.chmod(0o755)  # the postgres user must reach its cluster inside
    running = services.Stack(root)
    try:
        running.start()
        yield running
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{running.logs()}") from exc
    finally:
        running.shutdown()
        if os.environ.get("FAULTS_KEEP"):
            print(f"fault suite files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _services_restored(request):
    """A test that fails in the middle of an outage leaves the next test a whole stack."""
    yield
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").restore()

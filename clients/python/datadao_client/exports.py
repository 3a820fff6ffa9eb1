"""Exports: follow the build with a progress bar, download the files (checked against their SHA-256), load them
as a ``datasets.DatasetDict``."""
from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadao_client.errors import ExportFailed

if TYPE_CHECKING:
    import datasets

    from datadao_client.client import Client

SPLITS = ("train", "test")


class Export:
    """An export of a campaign; ``data`` is the API's latest answer (state, progress, rows, sha256, files)."""

    def __init__(self, client: Client, export_id: int, data: dict[str, Any] | None = None):
        self.client = client
        self.id = export_id
        self.data = data or {}

    def __repr__(self) -> str:
        return f"Export(id={self.id}, state={self.state!r})"

    @property
    def state(self) -> str | None:
        return self.data.get("state")

    def refresh(self) -> Export:
        self.data = self.client.get(f"exports/{self.id}/")
        return self

    def wait(self, *, timeout: float | None = None, poll: float = 1.0, progress: bool = True) -> Export:
        """Poll until the export is done (a tqdm bar of tasks read, when tqdm is installed and ``progress``);
        raises :class:`ExportFailed` if the build failed, ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _bar(self.id) if progress else None
        try:
            while True:
                self.refresh()
                done, total = self.data["progress"]["done"], self.data["progress"]["total"]
                if bar is not None:
                    bar.total = total
                    bar.n = done
                    bar.refresh()
                if self.state == "done":
                    return self
                if self.state == "failed":
                    raise ExportFailed(409, [{"message": f"export {self.id} failed: {self.data.get('error')}"}])
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"export {self.id} is still {self.state} after {timeout} s")
                time.sleep(poll)
        finally:
            if bar is not None:
                bar.close()

    def download(self, directory: str | Path = ".", *, parts: tuple[str, ...] = ("train", "test", "card")
                 ) -> dict[str, Path]:
        """Save the export's files in ``directory``; returns ``{"train": path, ...}`` for the parts it has.
        Each data file is checked against the SHA-256 the API reports."""
        if self.state != "done":
            self.refresh()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        extension = self.data["file_format"]
        saved = {}
        for part in parts:
            if part == "test" and not (self.data.get("files") or {}).get("test"):
                continue  # the export has no test split
            name = "README.md" if part == "card" else f"{part}.{extension}"
            path = directory / f"export-{self.id}-{name}"
            response = self.client.request("GET", f"exports/{self.id}/download", params={"part": part}, stream=True)
            digest = hashlib.sha256()
            with open(path, "wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            expected = self.data["sha256"].get(part)
            if expected and digest.hexdigest() != expected:
                path.unlink()
                raise OSError(f"export {self.id} {part}: SHA-256 {digest.hexdigest()} is not the API's {expected}")
            saved[part] = path
        return saved

    def to_datasets(self, directory: str | Path | None = None) -> datasets.DatasetDict:
        """Download the data files (into ``directory``, or a fresh temporary one) and load them with
        ``datasets``: a ``DatasetDict`` with ``train`` and, when the export has one, ``test``."""
        import datasets

        directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="datadao-export-"))
        files = self.download(directory, parts=SPLITS)
        builder = "json" if self.data["file_format"] == "jsonl" else "parquet"
        return datasets.load_dataset(builder, data_files={split: str(path) for split, path in files.items()})


def _bar(export_id: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(desc=f"export {export_id}", unit="task", total=0)

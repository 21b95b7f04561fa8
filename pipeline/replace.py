"""Replacing a committed unit in place: a journal, so a kill leaves the old unit or the new one.

:func:`pipeline.runner.run_shard` writes a unit that has no valid marker. Rewriting one that is
complete (``--retry-failed`` rewrites raw shards) needs more: between renaming the new tar and
the new parquet, the old marker would vouch for a mix of old and new files. So
:class:`ShardReplace`:

1. writes the new files under temporary names (as :class:`~pipeline.runner.ShardCommit` does);
   a kill here leaves the old unit untouched, and the temporaries are removed by the next run
   as any dead writer's;
2. writes a journal (for a raw shard ``raw/.NNNNN_replace.json``) naming each temporary, its
   final name and the new marker, atomically: the commit point;
3. deletes the old marker, renames the temporaries into place, writes the new marker and
   deletes the journal (:func:`roll_forward`).

A kill after step 2 leaves the journal: :func:`roll_forward` finishes step 3 from wherever it
stopped (a temporary already renamed is skipped). The download job rolls every journal forward
before it removes temporaries or starts a task, and a retry task rolls its own shard's forward
first. While a journal is pending the unit has no marker, so every reader treats it as
incomplete and never sees a mix.

Two attempts replacing the same unit at the same moment (speculative execution) are not
supported: the download job never runs them, and Spark retries a task only after its attempt
has died.
"""

from __future__ import annotations

from typing import Any

from pipeline.runner import ShardCommit, ShardOutput
from pipeline.storage import Storage

JOURNAL_SUFFIX = "_replace.json"


def journal_parts(output: ShardOutput) -> tuple[str, ...]:
    """The journal of a unit: a hidden sibling of its marker (``.NNNNN_replace.json``)."""
    *folder, marker = output.marker
    stem = marker.split("_", 1)[0]
    return (*folder, f".{stem}{JOURNAL_SUFFIX}")


class ShardReplace(ShardCommit):
    """Temporary names for the new files of a committed unit; :meth:`commit` replaces it.

    Only the files written are replaced; the others (a tar that did not change) stay as they are.
    """

    def commit(self, marker: dict[str, Any]) -> dict[str, Any]:
        """Write the journal (the commit point), then roll it forward; returns ``marker``."""
        written = [parts for parts in self.output.files if parts in self._temps]
        if not written:
            raise RuntimeError(f"replacement of {'/'.join(self.output.marker)} wrote no file")
        files = [
            [self._temps[parts].rsplit("/", 1)[-1], int(self.storage.fs.size(self._temps[parts])), *parts]
            for parts in written
        ]
        self.storage.write_json({"files": files, "marker": marker}, *journal_parts(self.output))
        self._temps.clear()  # the journal owns them now: a failure from here on is rolled forward
        roll_forward(self.storage, self.output)
        return marker


def roll_forward(storage: Storage, output: ShardOutput) -> bool:
    """Finish the replacement a journal records, if there is one; True when there was."""
    journal = journal_parts(output)
    record = storage.read_json_if_exists(*journal)
    if record is None:
        return False
    storage.remove(*output.marker)
    for temp, size, *final in record["files"]:
        source = storage.path(*final[:-1], temp)
        if storage.fs.exists(source):
            storage.rename(source, storage.path(*final))
        elif not storage.exists(*final) or storage.size(*final) != size:
            # Renamed already, unless someone deleted the temporary before it could be.
            raise RuntimeError(
                f"{storage.display(*journal)} names {temp} ({size} bytes), which is gone, and "
                f"{storage.display(*final)} is not it: the replacement cannot be finished; delete the "
                "journal and the shard's files, and run the download again to redo the shard"
            )
    storage.write_json(record["marker"], *output.marker)
    storage.remove(*journal)
    return True


def pending_journals(storage: Storage, folder: str) -> list[str]:
    """Names of the journals in ``folder`` (replacements a killed writer left unfinished)."""
    return [name for name in storage.names(folder) if name.startswith(".") and name.endswith(JOURNAL_SUFFIX)]

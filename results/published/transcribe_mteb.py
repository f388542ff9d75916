"""Transcribe published figures from MTEB's results repository into harness results files.

    python results/published/transcribe_mteb.py [--sources sources/mteb] [--out results/published]

Reads the verbatim copies in ``sources/mteb/`` (``MANIFEST.json``: the repository, its commit and
each file's git blob id, checked here before anything is written) and imports each model folder with
:func:`harness.mteb.import_mteb_results`, the code behind ``harness mteb import``: one published row
per harness task, trec convention, every shared rank metric kept. Two things differ from a plain
import, so the rows say where they came from and a rerun is byte-identical:

* ``published.source`` is the file's address in the repository at the manifest's commit, not a path
  on this machine;
* ``created`` is the transcription date, fixed (some files, as ColBERTv2's ``LoTTE.json``, carry no
  ``date``; an import would stamp them with the time it ran).

Rows: Reason-ModernColBERT on the 12 BRIGHT domains (MTEB's v1.1 ``Bright<Domain>Retrieval`` tasks),
ColBERTv2 on the 10 LoTTE test sets (MTEB's ``LoTTE``). They are MTEB's runs, not the models' cards or
papers, which were not reachable when this was written.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path

from harness.errors import InputError
from harness.mteb import import_mteb_results
from harness.mteb.mapping import SOURCE_PREFIX
from harness.results import Result, save_result

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "sources" / "mteb"
CREATED = "2026-12-07T00:00:00+00:00"  # transcription date, fixed so a rerun is byte-identical


def git_blob_id(data: bytes) -> str:
    """Git's object id of a file's bytes (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def read_manifest(sources: Path) -> dict:
    """``MANIFEST.json`` after checking that every listed file is there with its blob id."""
    manifest = json.loads((sources / "MANIFEST.json").read_text("utf-8"))
    for path, blob in manifest["files"].items():
        file = sources / path
        if not file.is_file() or git_blob_id(file.read_bytes()) != blob:
            raise InputError(f"not the repository's file (git blob {blob})", file=str(file))
    return manifest


def transcribe(sources: Path = SOURCES) -> list[Result]:
    """The published rows of every model folder listed in the manifest, in folder order."""
    manifest = read_manifest(sources)
    base = f"{manifest['repository']}/blob/{manifest['commit']}/"
    folders = sorted({Path(path).parent for path in manifest["files"]})
    rows = []
    for folder in folders:
        for row in import_mteb_results(sources / folder):
            assert row.published is not None
            local = row.published["source"].removeprefix(SOURCE_PREFIX)
            where = Path(local).resolve().relative_to(sources.resolve()).as_posix()
            source = SOURCE_PREFIX + base + where
            published = {**row.published, "source": source}
            rows.append(dataclasses.replace(row, published=published, created=CREATED))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=SOURCES, help="the verbatim copies and MANIFEST.json")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "published")
    args = parser.parse_args(argv)
    rows = transcribe(args.sources)
    for row in rows:
        save_result(row, args.out)
    print(f"wrote {len(rows)} published rows to {args.out}/")


if __name__ == "__main__":
    main()

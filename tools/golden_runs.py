"""Golden runner configurations for refactors that must not change behaviour: runs `harness evaluate`
in each configuration below on a small SciFact subset and writes each results file with what varies
between runs removed (wall times, dates, temp paths), plus the text of every command's --help.
Run it before and after a change and compare the two folders (`diff -r`): they must be identical.

    .venv/bin/python tools/golden_runs.py OUT_DIR
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.model_fixtures import build_ettin_like_checkpoint, minilm_model_dir  # noqa: E402

SCIFACT = REPO.parent / "shared" / "data" / "beir" / "scifact"
VARYING = {"created", "timings", "harness_version"}
COMMANDS = [
    [], ["evaluate"], ["tasks"], ["models"], ["results"], ["report"], ["report", "card"],
    ["report", "leaderboard"], ["report", "table"], ["mteb"], ["mteb", "import"], ["mteb", "export"],
    ["check"], ["export"],
]  # fmt: skip


def subset(folder: Path, n_docs: int = 400, n_queries: int = 25) -> Path:
    """The first ``n_queries`` test queries of SciFact with their relevant documents, plus the first
    documents of the corpus up to ``n_docs``, in BEIR layout."""
    qrels = [line.split("\t") for line in (SCIFACT / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    queries = list(dict.fromkeys(q for q, _, _ in qrels))[:n_queries]
    relevant = {d for q, d, _ in qrels if q in queries}
    corpus = (SCIFACT / "corpus.jsonl").read_text().splitlines()
    keep = [line for line in corpus if json.loads(line)["_id"] in relevant]
    keep += [line for line in corpus[:n_docs] if line not in keep][: max(0, n_docs - len(keep))]
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(keep) + "\n")
    lines = (SCIFACT / "queries.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["_id"] in queries]
    (folder / "queries.jsonl").write_text("\n".join(kept) + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + ["\t".join(r) for r in qrels if r[0] in queries]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


def normalise(value, temp: str):
    if isinstance(value, dict):
        return {k: normalise(v, temp) for k, v in value.items() if k not in VARYING and "seconds" not in k}
    if isinstance(value, list):
        return [normalise(v, temp) for v in value]
    if isinstance(value, str):
        return value.replace(temp, "<TMP>")
    return value


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    harness = [str(REPO / ".venv" / "bin" / "harness")]
    env = os.environ | {"TQDM_DISABLE": "1"}
    for command in COMMANDS:
        text = subprocess.run([*harness, *command, "--help"], capture_output=True, text=True, env=env).stdout
        (out / ("help_" + "_".join(command or ["harness"]) + ".txt")).write_text(text)
    with tempfile.TemporaryDirectory() as tmp:
        temp = Path(tmp)
        data = subset(temp / "data" / "mini")
        ettin = build_ettin_like_checkpoint(temp / "ettin" / "model")
        configurations = {
            "exact": ["--model", str(ettin)],
            "plaid": ["--model", str(ettin), "--index", "plaid", "--nbits", "2"],
            "bm25": ["--model", "bm25"],
            "rerank": ["--model", str(ettin), "--first-stage", "bm25", "--rerank-depth", "50"],
            "dense": ["--model", str(minilm_model_dir())],
            "lengths": ["--model", str(ettin), "--document-length", "64", "--query-length", "16"],
        }
        for name, flags in configurations.items():
            folder = temp / "runs" / name
            command = [*harness, "evaluate", *flags, "--tasks", "mini", "--data-dir", str(data.parent)]
            command += ["--output", str(folder), "--no-cache", "--quiet"]
            proc = subprocess.run(command, capture_output=True, text=True, env=env)
            if proc.returncode:
                sys.exit(f"{name}: {proc.stderr[-2000:]}")
            for file in sorted(folder.glob("*.json")):
                payload = normalise(json.loads(file.read_text()), tmp)
                (out / f"{name}__{file.name}").write_text(json.dumps(payload, indent=1))
            print(name, "ok", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Read and write the BeIR layout, so data moves to and from BEIR/GPL tooling.

Layout::

    corpus.jsonl        {"_id": doc id, "title": "", "text": descriptor-set text}
    queries.jsonl       {"_id": request id, "text": request}   (GPL: qgen-queries.jsonl)
    qrels/<split>.tsv   query-id <TAB> corpus-id <TAB> score, with a header line
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_write_text
from .sampling import RetrievalSet
from .sources import DataError
from .text_files import read_jsonl_objects


def write_beir(
    retrieval_set: RetrievalSet,
    directory: str | Path,
    split: str = "test",
    queries_file: str = "queries.jsonl",
    qrels_dir: str = "qrels",
) -> Path:
    """Write ``corpus.jsonl``, the queries file and ``<qrels_dir>/<split>.tsv`` into ``directory``."""
    directory = Path(directory)
    corpus = "".join(
        json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n"
        for doc_id, text in retrieval_set.corpus.items()
    )
    queries = "".join(
        json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n"
        for qid, text in retrieval_set.queries.items()
    )
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(
        f"{qid}\t{doc_id}\t1\n" for qid, doc_ids in retrieval_set.qrels.items() for doc_id in sorted(doc_ids)
    )
    atomic_write_text(directory / "corpus.jsonl", corpus)
    atomic_write_text(directory / queries_file, queries)
    atomic_write_text(directory / qrels_dir / f"{split}.tsv", qrels)
    return directory


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"BeIR data: file not found: {path}")
    rows = read_jsonl_objects(path, "BeIR data")
    for line_number, row in rows:
        if "_id" not in row or "text" not in row:
            raise DataError(f"BeIR data {path}, line {line_number}: a row needs '_id' and 'text', found {sorted(row)}")
    return [row for _, row in rows]


def read_beir(
    directory: str | Path,
    split: str = "test",
    queries_file: str = "queries.jsonl",
    qrels_dir: str = "qrels",
) -> RetrievalSet:
    """Read a BeIR directory; queries without a relevant document are left out, as BEIR does."""
    directory = Path(directory)
    corpus = {}
    for row in _read_jsonl(directory / "corpus.jsonl"):
        title = row.get("title") or ""
        corpus[str(row["_id"])] = f"{title} {row['text']}".strip() if title else row["text"]
    queries = {str(row["_id"]): row["text"] for row in _read_jsonl(directory / queries_file)}
    qrels_path = directory / qrels_dir / f"{split}.tsv"
    if not qrels_path.is_file():
        raise DataError(f"BeIR data: file not found: {qrels_path}")
    qrels: dict[str, set[str]] = {}
    with open(qrels_path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("\t")
            if line_number == 1 and parts[0] == "query-id":
                continue
            if len(parts) < 3:
                raise DataError(f"{qrels_path}:{line_number}: expected 'query-id<TAB>corpus-id<TAB>score'")
            qid, doc_id, score = parts[0], parts[1], parts[2]
            if float(score) > 0:
                qrels.setdefault(qid, set()).add(doc_id)
    unknown = [d for ids in qrels.values() for d in ids if d not in corpus]
    if unknown:
        raise DataError(f"{qrels_path}: {len(unknown)} relevant document id(s) not in corpus.jsonl, e.g. {unknown[0]!r}")
    queries = {qid: text for qid, text in queries.items() if qrels.get(qid)}
    return RetrievalSet(queries=queries, corpus=corpus, qrels={q: qrels[q] for q in queries}, name=directory.name)

"""``melscribe-recommend``: build a song index, query it, choose the hybrid weight.

    melscribe-recommend index --catalog songs.csv --out my_index
    melscribe-recommend query --index my_index "upbeat tropical music with steel drums" -k 5
    melscribe-recommend query --index my_index --requests-file requests.txt --output out.jsonl
    melscribe-recommend serve --index my_index --port 8000
    melscribe-recommend select-weight --model minilm-l6 --data-root ../shared/data

Bad input exits with status 2 and a one-line error on stderr (--debug: the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import DEBUG_FLAG, USER_ERROR_STATUS, debugging, one_line, take_debug_flag
from ..retrieval import FUSION_METHODS
from ..serve import cli as serve_cli
from . import ann_store
from .catalog import load_catalog
from .index import DTYPES, SCORES, model_fingerprint
from .index_write import INDEX_DEFAULTS, build_index
from .cli_options import add_recommender_options, model_path, recommender_options
from .recommender import DEFAULT_METHOD, QUERY_DEFAULTS, Recommendation, Recommender
from .select_weight import DEFAULT_MAX_NGRAMS, DEFAULT_SPLIT_SEED, DEFAULT_VALID_FRACTION

log = logging.getLogger("melscribe_torch.recommend")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="melscribe-recommend",
        description="Recommend songs from a catalog for natural-language requests.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    parser.add_argument(
        DEBUG_FLAG, action="store_true", help="show the traceback of an error (anywhere on the line)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="encode a CSV/JSONL catalog into an index directory")
    p.add_argument("--catalog", required=True, help="a .csv or .jsonl file, one song per row")
    p.add_argument("--out", required=True, help="the index directory")
    p.add_argument(
        "--model",
        default=INDEX_DEFAULTS["model"],
        help="a model directory, package:<module> or a short name (default: %(default)s)",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default=INDEX_DEFAULTS["dtype"],
        help="embedding storage: float16 halves disk/memory",
    )
    p.add_argument(
        "--score",
        choices=SCORES,
        default=INDEX_DEFAULTS["score"],
        help="cos (stored normalised) or dot",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add the catalog's songs to the existing index (encodes new texts only)",
    )
    p.add_argument("--id-column", default="id")
    p.add_argument("--descriptor-column", default="descriptors")
    p.add_argument("--title-column", default="title", help="used when the catalog has it")
    p.add_argument("--artist-column", default="artist", help="used when the catalog has it")
    p.add_argument(
        "--link-template",
        help="the song's source URL from its columns, e.g. "
        "'https://www.youtube.com/watch?v={ytid}&t={start_s}s' (shown by serve)",
    )
    p.add_argument("--batch-size", type=int, default=INDEX_DEFAULTS["batch_size"])
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=INDEX_DEFAULTS["precision"],
        help="bf16: faster, tiny ranking changes",
    )
    p.add_argument(
        "--ann",
        choices=ann_store.KINDS,
        help="also build and store a FAISS index for --backend faiss-ivf, so that query and serve "
        "read it instead of building it at every start (minutes at a million songs)",
    )

    p = sub.add_parser("query", help="recommend songs for a request (or a file of requests)")
    p.add_argument("--index", required=True, help="the index directory")
    p.add_argument("request", nargs="?", help="what you want to hear")
    p.add_argument(
        "--requests-file", help="one request per line; writes JSONL (one line per request)"
    )
    p.add_argument("--output", help="with --requests-file: write the JSONL here instead of stdout")
    p.add_argument("-k", type=int, default=QUERY_DEFAULTS["k"], help="how many songs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_recommender_options(p)

    p = sub.add_parser(
        "serve", help="answer requests over HTTP (JSON API and a web page); model loaded once"
    )
    p.add_argument("--index", required=True, help="the index directory")
    add_recommender_options(p)
    serve_cli.add_arguments(p)

    p = sub.add_parser(
        "select-weight", help="choose the hybrid weight on validation data (training clips)"
    )
    p.add_argument("--model", default=INDEX_DEFAULTS["model"])
    p.add_argument("--data-root", required=True, help="the data directory (e.g. ../shared/data)")
    p.add_argument("--method", choices=FUSION_METHODS, default=DEFAULT_METHOD)
    p.add_argument(
        "--max-ngrams",
        type=int,
        nargs="+",
        default=list(DEFAULT_MAX_NGRAMS),
        help="candidate TF-IDF n-gram lengths, searched with alpha",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        help="share of training clips held out (default: the model's train.py run's, else "
        f"{DEFAULT_VALID_FRACTION})",
    )
    p.add_argument("--split-seed", type=int, help="clip split seed (default: as --valid-fraction)")
    p.add_argument("--output", help="also write the result (with seeds and versions) as JSON here")
    p.add_argument("--batch-size", type=int, default=INDEX_DEFAULTS["batch_size"])
    p.add_argument("--precision", choices=("fp32", "bf16"), default=INDEX_DEFAULTS["precision"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(take_debug_flag(list(sys.argv[1:] if argv is None else argv)))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    try:
        commands = {
            "index": _index,
            "query": _query,
            "serve": lambda a: serve_cli.serve(a, recommender_options(a)),
            "select-weight": _select_weight,
        }
        return commands[args.command](args)
    except Exception as err:
        if debugging():
            raise
        print(one_line(err), file=sys.stderr)
        return USER_ERROR_STATUS


def _index(args: argparse.Namespace) -> int:
    from ..models import BiEncoder

    songs = load_catalog(
        args.catalog,
        args.id_column,
        args.descriptor_column,
        args.title_column,
        args.artist_column,
        link_template=args.link_template,
    )
    model = model_path(args.model)
    fingerprint = model_fingerprint(model)
    encoder = BiEncoder.from_pretrained(model)
    index = build_index(
        songs,
        encoder,
        args.out,
        fingerprint,
        dim=encoder.dim,
        dtype=args.dtype,
        score=args.score,
        append=args.append,
        batch_size=args.batch_size,
        precision=args.precision,
        ann=args.ann,
    )
    m = index.manifest
    print(
        f"index {args.out}: {m['num_songs']} songs, {m['num_descriptor_sets']} descriptor sets, "
        f"{m['num_descriptors']} descriptors, dim {m['dim']} {m['dtype']}"
    )
    return 0


def _query(args: argparse.Namespace) -> int:
    if (args.request is None) == (args.requests_file is None):
        raise ValueError("give either a request or --requests-file")
    if args.requests_file:
        path = Path(args.requests_file)
        if not path.is_file():
            raise FileNotFoundError(f"requests file not found: {path}")
        requests = [
            line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
        if not requests:
            raise ValueError(f"requests file {path} has no request (one per line)")
    else:
        requests = [args.request]
    if args.k <= 0:  # checked before loading the model: fail fast
        raise ValueError(f"-k must be a positive integer, got {args.k}")
    if args.explain_top < 0:
        raise ValueError(f"--explain-top must be 0 or more (descriptors per explanation), got {args.explain_top}")
    options = recommender_options(args)
    recommender = Recommender.load(
        args.index, options.pop("model"), verify=options.pop("verify"), **options
    )
    results = recommender.recommend_batch(requests, args.k, args.retriever)
    if args.requests_file:
        lines = [
            json.dumps(
                {
                    "request": r,
                    "retriever": args.retriever,
                    "recommendations": [x.to_dict() for x in recs],
                },
                ensure_ascii=False,
            )
            for r, recs in zip(requests, results)
        ]
        text = "\n".join(lines) + "\n"
        if args.output:
            from ..io import atomic_write_text

            atomic_write_text(args.output, text)
        else:
            sys.stdout.write(text)
    elif args.json:
        print(
            json.dumps(
                {
                    "request": requests[0],
                    "retriever": args.retriever,
                    "recommendations": [x.to_dict() for x in results[0]],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(format_recommendations(results[0]) if results[0] else no_match(args.retriever))
    return 0


def no_match(retriever: str) -> str:
    """What an empty result means: only the lexical retriever can find nothing."""
    return (
        f"no song matches: no word of the request occurs in the catalog's descriptors "
        f"({retriever} retriever); try --retriever dense or hybrid, or other words"
    )


def format_recommendations(recs: list[Recommendation]) -> str:
    """A readable table: rank, score, song, descriptors, and why (the closest descriptors)."""
    lines = [f"{'rank':>4}  {'score':>7}  song"]
    for rank, r in enumerate(recs, start=1):
        name = " — ".join(x for x in (r.title, r.artist) if x)
        lines.append(f"{rank:>4}  {r.score:>7.4f}  {r.song_id}{'  ' + name if name else ''}")
        lines.append(f"{'':15}descriptors: {', '.join(r.descriptors)}")
        why = ", ".join(f"{d} ({s:.2f})" for d, s in r.explanation)
        lines.append(f"{'':15}why: {why}")
    return "\n".join(lines)


def _select_weight(args: argparse.Namespace) -> int:
    from ..io import atomic_write_json
    from ..models import BiEncoder
    from ..provenance import library_versions, machine_info
    from ..run_folder import training_run_split
    from .select_weight import format_selection, select_fusion_weight

    model = model_path(args.model)
    encoder = BiEncoder.from_pretrained(model)
    run = training_run_split(model)
    split = {"valid_fraction": DEFAULT_VALID_FRACTION, "split_seed": DEFAULT_SPLIT_SEED}
    if run is not None:
        split = {k: run[k] for k in split}
        print(f"validation split of the training run {run['run_dir']}: {split}")
    if args.valid_fraction is not None:
        split["valid_fraction"] = args.valid_fraction
    if args.split_seed is not None:
        split["split_seed"] = args.split_seed
    try:
        result = select_fusion_weight(
            encoder,
            args.data_root,
            method=args.method,
            batch_size=args.batch_size,
            precision=args.precision,
            max_ngrams=args.max_ngrams,
            trained_clips=run["trained_clips"] if run else None,
            **split,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_selection(result))
    print(
        f"chosen ({args.method}, {args.model}): alpha {result['alpha']}, max n-gram {result['max_ngram']}"
    )
    if args.output:
        result.update(
            model=model_fingerprint(model), versions=library_versions(), machine=machine_info()
        )
        atomic_write_json(args.output, result)
    return 0

"""``melscribe-recommend serve``: the options, and starting the server.

FastAPI and uvicorn are imported only when the server starts (``pip install
melscribe-torch[serve]``), so the other commands work without them.
"""

from __future__ import annotations

import argparse
import logging
import socket

from ..conf import read_config

log = logging.getLogger(__name__)

# The server's own settings when none is given (recommend.yaml's serve block); the recommender's
# are query's, shared with melscribe-recommend query.
SERVE_DEFAULTS = read_config("recommend")["serve"]
QUERY_PRECISION = read_config("recommend")["query"]["precision"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The serve-only options (the recommender's are shared with ``query``)."""
    d = SERVE_DEFAULTS
    p.add_argument("--host", default=d["host"], help="address to listen on (loopback by default)")
    p.add_argument(
        "--port", type=int, default=d["port"], help="0: any free port (printed at start)"
    )
    p.add_argument(
        "--device", help="where the model and exact search run (default: CUDA when present)"
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=QUERY_PRECISION,
        help="request encoding precision",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=d["max_batch"],
        help="most requests encoded together (micro-batch)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=d["max_wait_ms"],
        help="longest a request waits for others to share its batch",
    )
    limits = {
        "max_request_chars": "longest request text",
        "max_requests": "most requests in one call",
        "max_k": "most songs per request",
        "max_exclude": "most ids in exclude_ids",
        "max_body_bytes": "largest request body",
    }
    for name, what in limits.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=d[name], help=what)
    p.add_argument(
        "--watch-seconds",
        type=float,
        default=d["watch_seconds"],
        help="reload when the index's manifest changes, checked this often (0: only POST /reload)",
    )


def serve(args: argparse.Namespace, recommender_options: dict) -> int:
    """Load the model and index once, then answer HTTP requests until interrupted."""
    try:
        import uvicorn

        from .app import Limits, create_app
    except ImportError as err:
        raise ImportError(
            f"serve needs FastAPI and uvicorn ({err}): pip install melscribe-torch[serve]"
        ) from None
    from ..recommend.recommender import Recommender
    from .service import RecommendService

    limits = Limits(
        max_request_chars=_positive(args, "max_request_chars"),
        max_requests=_positive(args, "max_requests"),
        max_k=_positive(args, "max_k"),
        max_exclude=args.max_exclude,
        max_body_bytes=_positive(args, "max_body_bytes"),
    )
    sock = _listen(args.host, args.port)  # before loading: a busy port fails in a second
    options = dict(recommender_options)
    model, verify = options.pop("model"), options.pop("verify")
    recommender = Recommender.load(
        args.index, model, verify=verify, device=args.device, precision=args.precision, **options
    )
    service = RecommendService(
        recommender,
        args.index,
        default_retriever=args.retriever,
        max_batch=_positive(args, "max_batch"),
        max_wait_s=args.max_wait_ms / 1000,
        verify=verify,
        settings={
            **options,
            "device": str(recommender.device),
            "precision": args.precision,
        },
    )
    if args.watch_seconds > 0:
        service.watch(args.watch_seconds)
    app = create_app(service, limits)
    host, port = sock.getsockname()[:2]
    print(f"serving {args.index} on http://{host}:{port}/", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        service.close()
    return 0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _positive(args: argparse.Namespace, name: str) -> int:
    value = getattr(args, name)
    if value < 1:
        raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return value

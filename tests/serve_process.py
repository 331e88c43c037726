"""Shared code for the serve tests: an index over the fake catalog, and a real server process."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from recommend_fakes import SONGS, write_csv

from melscribe_torch.recommend.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
LINK_TEMPLATE = "https://www.youtube.com/watch?v={id}&t={start}s"


def build_served_index(tmp: Path, model_dir: Path) -> Path:
    """The fake catalog (with a start time per song, for links) indexed with ``model_dir``."""
    rows = [{**song, "start": 10 * (i + 1)} for i, song in enumerate(SONGS)]
    catalog = write_csv(tmp / "songs.csv", rows)
    args = ["index", "--catalog", str(catalog), "--model", str(model_dir)]
    args += ["--out", str(tmp / "idx"), "--link-template", LINK_TEMPLATE]
    assert main(args) == 0
    return tmp / "idx"


@contextlib.contextmanager
def running_server(index_dir: Path, *options: str, timeout_s: float = 180):
    """``melscribe-recommend serve`` on a free loopback port; yields its base URL."""
    command = [
        sys.executable,
        "-m",
        "melscribe_torch.recommend",
        "serve",
        "--index",
        str(index_dir),
    ]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", "0", *options],
        cwd=REPO_ROOT,  # imports this checkout's package
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    started = threading.Event()

    def read() -> None:  # keeps the pipe drained for the server's whole life
        for line in process.stdout:
            output.append(line)
            if line.startswith("serving "):
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not started.wait(timeout_s):
            raise AssertionError(f"the server did not start in {timeout_s} s: {''.join(output)}")
        yield re.search(r"http://\S+?/(?=\s|$)", output[-1]).group(0).rstrip("/")
    finally:
        process.terminate()
        process.wait(timeout=30)


def call(url: str, body: dict | None = None) -> tuple[int, dict]:
    """GET (or POST ``body`` as JSON); returns the status and the parsed JSON reply."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())

"""Run a job again and again in one folder, each time SIGKILLed at the next kill point.

    python tests/kill_points.py train <run_dir> <model_dir> <data_root> <kill point> ...
    python tests/kill_points.py index <index_dir> <catalog.csv> <kill point> ...

The heavy imports happen once, here; each attempt is a fork of this process that installs
its kill point and runs the job, so a real ``kill -9`` lands at an exact moment in a few
hundred milliseconds instead of a new interpreter's ten seconds. Kill points:

    call:<module>:<function>:<n>      before the n-th call of module.function
    replace:<regex>:<n>               before the n-th os.replace onto a name matching regex
                                      (the new file or directory is complete, not yet in place)
    after-replace:<regex>:<n>         right after it (in place, nothing after it done yet)

Prints one JSON line: for each kill point, whether the attempt died of SIGKILL there.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests' helpers


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str) -> None:
    kind, *rest = point.split(":")
    count = {"n": 0}
    if kind == "call":
        module_name, name, nth = rest
        module = importlib.import_module(module_name)
        original = getattr(module, name)

        def call(*args, **kwargs):
            count["n"] += 1
            if count["n"] == int(nth):
                die()
            return original(*args, **kwargs)

        setattr(module, name, call)
        return
    pattern, nth = re.compile(rest[0]), int(rest[1])
    replace = os.replace

    def patched(src, dst, *args, **kwargs):
        hit = pattern.search(Path(dst).name) is not None
        if hit:
            count["n"] += 1
        if hit and count["n"] == nth and kind == "replace":
            die()
        replace(src, dst, *args, **kwargs)
        if hit and count["n"] == nth and kind == "after-replace":
            die()

    os.replace = patched


def job(argv: list[str]):
    if argv[0] == "train":
        from melscribe_torch.cli import train
        from training_fixtures import compose_train, smoke_overrides

        run_dir, model_dir, data_root = argv[1:4]
        cfg = compose_train(smoke_overrides(Path(model_dir), Path(data_root)))
        return (lambda: train.run(cfg, run_dir)), argv[4:]
    from recommend_fakes import FAKE_MODEL, KeywordEncoder

    from melscribe_torch.recommend.catalog import load_catalog
    from melscribe_torch.recommend.index_write import build_index

    index_dir, catalog = argv[1:3]
    songs = load_catalog(catalog)
    return (
        lambda: build_index(songs, KeywordEncoder(), index_dir, FAKE_MODEL, dim=KeywordEncoder.dim)
    ), argv[3:]


def main() -> None:
    run, points = job(sys.argv[1:])
    outcomes = []
    for point in points:
        pid = os.fork()
        if pid == 0:
            install(point)
            try:
                run()
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)  # the kill point was never reached
        _, status = os.waitpid(pid, 0)
        outcomes.append({"point": point, "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL})
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()

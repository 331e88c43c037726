"""A Hydra callback for the console-script tests: keeps each job's return value, as a sweeper sees it."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.experimental.callback import Callback

RETURN_FILE = "return_value.json"


class RecordReturnValue(Callback):
    """Writes the task function's return value into the job's output folder."""

    def on_job_end(self, config, job_return, **kwargs) -> None:
        out = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        (out / RETURN_FILE).write_text(json.dumps(job_return.return_value))

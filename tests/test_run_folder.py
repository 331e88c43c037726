"""The run folder's readers: what a saved model's training run tells select-weight and the recommender."""

from __future__ import annotations

import json

from melscribe_torch.run_folder import training_run_split


def test_training_run_split_reads_the_run_a_model_was_saved_by(tmp_path):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    assert training_run_split(run / "best") is None  # not a train.py run (yet)
    (run / "qgen-queries.jsonl").write_text(
        '{"_id": "-0SdAVK79lg_4", "text": "a"}\n{"_id": "clip_b_0", "text": "b"}\n'
    )
    settings = {"valid_fraction": 0.1, "split_seed": 2, "train_sources": ["musiccaps"]}
    (run / "qgen-queries.jsonl.meta.json").write_text(json.dumps({"settings": settings}))
    split = training_run_split(run / "best")
    assert (split["valid_fraction"], split["split_seed"]) == (0.1, 2)
    assert split["trained_clips"] == {"-0SdAVK79lg", "clip_b"}

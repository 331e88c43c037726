"""Resumable stages: which settings count as the same, so a rerun skips what is made."""

import json

from melscribe_torch.pipeline.runner import StageRunner, raw_settings_hash

LABELS = {"ensemble": {"dense_weight": 40.0, "tfidf_weight": 40.0, "max_ngram": 3}}
MINING = {"k": 30, "retrievers": ["minilm-l6", "tfidf"]}


def run_two_stages(run_dir, mining, labels) -> list[str]:
    """Mining then labels, each writing a small file; the names of the stages that ran."""
    runner = StageRunner(run_dir)
    ran = []
    for name, settings in (("mining", mining), ("labels", labels)):
        if runner.run(name, f"{name}.json", settings, lambda path: path.write_text("{}")):
            ran.append(name)
    return ran


def test_a_whole_number_given_as_int_or_float_is_one_setting(tmp_path):
    assert run_two_stages(tmp_path, MINING, LABELS) == ["mining", "labels"]
    as_ints = {"ensemble": {"dense_weight": 40, "tfidf_weight": 40, "max_ngram": 3}}
    assert run_two_stages(tmp_path, MINING, as_ints) == []
    changed = {"ensemble": {**as_ints["ensemble"], "dense_weight": 40.5}}
    assert run_two_stages(tmp_path, MINING, changed) == ["labels"]


def test_a_folder_recorded_with_the_raw_hashes_resumes(tmp_path):
    # A folder made before numbers were hashed by value: each meta file holds the hash of
    # the settings' JSON as written, chained on the stage before.
    previous = ""
    for name, settings in (("mining", MINING), ("labels", LABELS)):
        previous = raw_settings_hash({"settings": settings, "previous": previous})
        (tmp_path / f"{name}.json").write_text("{}")
        meta = {"stage": name, "hash": previous, "seconds": 7.0, "settings": settings}
        (tmp_path / f"{name}.json.meta.json").write_text(json.dumps(meta))
    assert StageRunner(tmp_path).meta_path("labels.json").is_file()  # where the runner reads

    assert run_two_stages(tmp_path, MINING, LABELS) == []
    # ... and a changed upstream stage still reruns the stages after it
    assert run_two_stages(tmp_path, {**MINING, "k": 10}, LABELS) == ["mining", "labels"]
    assert run_two_stages(tmp_path, {**MINING, "k": 10}, LABELS) == []


def test_a_running_stage_knows_its_hash_and_it_changes_with_the_stage_before(tmp_path):
    """What a stage's checkpoint is keyed to (the teacher's): the hash its meta file records,
    which moves when an earlier stage's settings move."""
    seen = []

    def run(folder, mining):
        folder.mkdir()
        runner = StageRunner(folder)
        runner.run("mining", "mining.json", mining, lambda path: path.write_text("{}"))
        def labels(path):
            seen.append(runner.running)
            path.write_text("{}")

        runner.run("labels", "labels.json", LABELS, labels)

    run(tmp_path / "a", MINING)
    run(tmp_path / "b", {**MINING, "k": 31})
    recorded = json.loads((tmp_path / "a" / "labels.json.meta.json").read_text())["hash"]
    assert seen[0] == recorded and seen[1] != seen[0]

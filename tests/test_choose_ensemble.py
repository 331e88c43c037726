"""Choosing the ensemble teacher's weights on a run's validation sets: one seed chooses, the others report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import build_tiny_model_dir

from melscribe_torch.data import RetrievalSet
from melscribe_torch.data.beir import write_beir
from melscribe_torch.evaluation.metrics import ranking_metrics
from melscribe_torch.models import BiEncoder, CrossEncoder
from melscribe_torch.retrieval.rerank import rerank_top
from melscribe_torch.teacher.choose_ensemble import (
    MemberScores,
    check_not_trained_on,
    choose_weights,
    ensemble_scores,
    format_report,
    main,
    rerank_quality,
    score_members,
)
from melscribe_torch.teacher.ensemble import EnsembleTeacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETS = ["rock, guitar, drums", "soft piano, calm", "jazz, bass, drums", "sad piano, slow tempo",
        "electronic beat, fast tempo", "happy pop, female vocal"]
REQUESTS = ["calm soft piano music", "a rock song with guitar", "fast electronic beat",
            "slow sad piano", "jazz with a walking bass", "happy pop with a female singer"]


def validation_set(shift: int = 0) -> RetrievalSet:
    """Request i is about set i; ``shift`` rotates which clip ids they carry (another seed's sample)."""
    return RetrievalSet(
        queries={f"clip{(i + shift) % 6}_0": text for i, text in enumerate(REQUESTS)},
        corpus={f"d{i}": text for i, text in enumerate(SETS)},
        qrels={f"clip{(i + shift) % 6}_0": {f"d{i}"} for i in range(len(REQUESTS))},
    )


def members(dense, cross_encoder, tfidf, relevant_column=0) -> MemberScores:
    """Hand-made scores of two candidates per request; the relevant one in ``relevant_column``."""
    rows = len(dense)
    ids = np.array([[f"r{row}", f"n{row}"] if relevant_column == 0 else [f"n{row}", f"r{row}"] for row in range(rows)])
    return MemberScores(ids=ids, relevant=[{f"r{row}"} for row in range(rows)], dense=torch.tensor(dense),
                        cross_encoder=torch.tensor(cross_encoder), tfidf={1: torch.tensor(tfidf)})


def test_one_seed_chooses_and_the_others_only_report():
    # seed 0: TF-IDF knows the relevant set (column 0) on both requests, the cross-encoder errs;
    # seed 1: TF-IDF points the wrong way. The choice is seed 0's, reported on seed 1 as it falls.
    seed0 = members(dense=[[0.5, 0.5]] * 2, cross_encoder=[[0.0, 1.0]] * 2, tfidf=[[0.9, 0.0]] * 2)
    seed1 = members(dense=[[0.5, 0.5]] * 2, cross_encoder=[[1.0, 0.0]] * 2, tfidf=[[0.0, 0.9]] * 2)
    result = choose_weights({0: seed0, 1: seed1}, choose_seed=0, dense_weights=[0, 1],
                            tfidf_weights=[0, 2, 5], max_ngrams=[1])
    assert result["chosen"] == {"dense_weight": 0, "tfidf_weight": 2, "max_ngram": 1,  # the first cell that ranks it first
                                "second_dense": None, "second_dense_weight": 0, "depth": 2,
                                "second_cross_encoder_weight": 0}
    assert result["per_seed"][0]["ensemble"] == {"recall": 100.0, "mrr": 100.0}
    assert result["per_seed"][0]["cross_encoder"]["mrr"] == 50.0
    # on seed 1 the cross-encoder alone put the relevant set first; 2 * 0.9 TF-IDF overrules it
    assert result["per_seed"][1]["ensemble"]["mrr"] == 50.0 and result["report_seeds"] == [1]
    assert result["report_mean"]["ensemble"] == result["per_seed"][1]["ensemble"]["recall"]
    assert result["chosen_without_second"] == {**result["chosen"], "second_dense": None, "second_dense_weight": 0}
    # the same grid without the cross-encoder: the first cell that ranks as well (TF-IDF alone)
    assert result["without_cross_encoder"] == {"max_ngram": 1, "dense_weight": 0, "tfidf_weight": 2,
                                               "depth": 2, "cross_encoder_weight": 0}
    assert result["per_seed"][0]["without_cross_encoder"]["mrr"] == 100.0
    assert "0 cos + 2 TF-IDF (single words), top 2 (no cross-encoder)" in format_report({**result, "first_stage": "s"})
    with pytest.raises(ValueError, match="choose seed 2 is not among"):
        choose_weights({0: seed0}, choose_seed=2, dense_weights=[0], tfidf_weights=[0], max_ngrams=[1])


def test_the_report_says_how_many_cells_tie_with_the_choice_and_how_the_others_rank_them():
    # one request, eleven candidates, the relevant one last (rank 11: outside Recall@10). On
    # seed 0 TF-IDF lifts it to the top at weight 1 or 2, a tie MRR@10 cannot break either; on
    # seed 1 the cross-encoder favours the ten others by 1.5, so only weight 2 lifts it.
    def one_request(cross_encoder_of_others: float) -> MemberScores:
        cross_encoder = torch.full((1, 11), cross_encoder_of_others)
        cross_encoder[0, -1] = 0.0
        tfidf = torch.zeros(1, 11)
        tfidf[0, -1] = 1.0
        ids = np.array([[f"n{col}" for col in range(10)] + ["r"]])
        return MemberScores(ids=ids, relevant=[{"r"}], dense=torch.zeros(1, 11),
                            cross_encoder=cross_encoder, tfidf={1: tfidf})

    result = choose_weights({0: one_request(0.0), 1: one_request(1.5)}, choose_seed=0,
                            dense_weights=[0], tfidf_weights=[0, 1, 2], max_ngrams=[1])
    assert result["chosen"]["tfidf_weight"] == 1  # the earlier of the two level cells
    assert result["report_mean"]["ensemble"] == 0.0
    assert result["level_with_chosen"] == {"cells": 2, "report_mean_range": [0.0, 100.0]}
    report = format_report({**result, "first_stage": "s"})
    assert "2 cells tie with the choice on seed 0's Recall@10" in report
    assert "mean Recall@10 of them: 0.00 to 100.00" in report


def test_a_second_dense_member_is_chosen_only_where_it_ranks_better():
    # the cross-encoder and the first stage err on both requests; the second member "m2" is right
    seed0 = members(dense=[[0.0, 1.0]] * 2, cross_encoder=[[0.0, 1.0]] * 2, tfidf=[[0.0, 0.0]] * 2)
    seed0.second_dense = {"m2": torch.tensor([[0.5, 0.0]] * 2)}
    result = choose_weights({0: seed0}, choose_seed=0, dense_weights=[0, 1], tfidf_weights=[0],
                            max_ngrams=[1], second_dense_weights=[1, 5])
    assert result["chosen"] == {"dense_weight": 0, "tfidf_weight": 0, "max_ngram": 1, "depth": 2,
                                "second_dense": "m2", "second_dense_weight": 5,  # at 1 the CE still wins
                                "second_cross_encoder_weight": 0}
    assert result["per_seed"][0]["ensemble"]["mrr"] == 100.0
    assert result["per_seed"][0]["ensemble_without_second"]["mrr"] == 50.0
    assert "+ 5 cos(m2)" in format_report({**result, "first_stage": "s"})
    # with no second member offered the grid is the cells without one
    alone = choose_weights({0: seed0}, choose_seed=0, dense_weights=[0, 1], tfidf_weights=[0], max_ngrams=[1])
    assert alone["chosen"]["second_dense_weight"] == 0


def test_a_second_cross_encoder_joins_the_grid_and_is_reported_beside_the_cell_without_it():
    # the first cross-encoder errs narrowly on both requests, the second (another seed) is right
    seed0 = members(dense=[[0.5, 0.5]] * 2, cross_encoder=[[0.0, 0.5]] * 2, tfidf=[[0.0, 0.0]] * 2)
    seed0.second_cross_encoder = torch.tensor([[0.8, 0.0]] * 2)
    result = choose_weights({0: seed0}, choose_seed=0, dense_weights=[0], tfidf_weights=[0], max_ngrams=[1],
                            second_cross_encoder_weights=[0.5, 1])
    assert result["chosen"]["second_cross_encoder_weight"] == 1  # at 0.5 the first still outweighs it
    assert result["per_seed"][0]["ensemble"]["mrr"] == 100.0
    assert result["per_seed"][0]["ensemble_without_second_cross_encoder"]["mrr"] == 50.0
    report = format_report({**result, "first_stage": "s"})
    assert "CE + 0 cos + 0 TF-IDF (single words) + 1 CE2, top 2" in report and "do not take one" in report
    seed0.second_cross_encoder = None  # not scored: the grid has no such cells and no such row
    alone = choose_weights({0: seed0}, choose_seed=0, dense_weights=[0], tfidf_weights=[0], max_ngrams=[1],
                           second_cross_encoder_weights=[1])
    assert alone["chosen"]["second_cross_encoder_weight"] == 0
    assert "ensemble_without_second_cross_encoder" not in alone["per_seed"][0]


def test_the_rerank_depth_joins_the_grid_and_the_rest_keep_the_first_stage_order():
    # first stage: [wrong, relevant, wrong]; the cross-encoder rates the deepest wrong one highest
    scores = MemberScores(ids=np.array([["a", "r", "b"]]), relevant=[{"r"}], dense=torch.tensor([[0.9, 0.8, 0.7]]),
                          cross_encoder=torch.tensor([[0.0, 1.0, 5.0]]), tfidf={1: torch.zeros(1, 3)})
    top = {depth: rerank_quality(ensemble_scores(scores, 0, 0, 1, depth=depth), scores) for depth in (1, 2, 3)}
    assert [top[d]["mrr"] for d in (1, 2, 3)] == [50.0, 100.0, 50.0]  # depth 1 leaves the first stage's order
    result = choose_weights({0: scores}, choose_seed=0, dense_weights=[0], tfidf_weights=[0], max_ngrams=[1],
                            depths=[3, 2, 50])  # 50: past the 3 scored, it reranks all 3 (as 3 does)
    assert result["chosen"]["depth"] == 2 and list(result["best_by_depth"]) == [3, 2]
    assert result["best_by_depth"][3]["per_seed"][0]["mrr"] == 50.0
    assert "rerank.depth=2" in format_report({**result, "first_stage": "s"})
    scores.cross_encoder = torch.tensor([[0.0, 1.0, -5.0]])  # now depths 2 and 3 rank alike: the first listed wins
    assert choose_weights({0: scores}, choose_seed=0, dense_weights=[0], tfidf_weights=[0], max_ngrams=[1],
                          depths=[3, 2])["chosen"]["depth"] == 3
    with pytest.raises(ValueError, match="depths must be >= 1"):
        choose_weights({0: scores}, choose_seed=0, dense_weights=[0], tfidf_weights=[0], max_ngrams=[1], depths=[0])


def test_the_chosen_weights_rank_as_the_ensemble_teacher_reranks(tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    first_stage = BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    cross_encoder = CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    vset, depth = validation_set(), 4
    second = BiEncoder.from_pretrained(str(build_tiny_model_dir(tmp_path / "second", seed=1)), device="cpu")
    scored = score_members(first_stage, cross_encoder, vset, depth=depth, max_ngrams=[1, 3],
                           batch_size=8, precision="fp32", second_dense={"second": second})
    result = choose_weights({0: scored}, choose_seed=0, dense_weights=[0, 5], tfidf_weights=[0, 5], max_ngrams=[1, 3],
                            second_dense_weights=[5])
    chosen = {**result["chosen"], "second_dense_weight": 5, "second_dense": "second"}  # the member in use
    result["per_seed"][0]["ensemble"] = rerank_quality(ensemble_scores(scored, **chosen), scored)
    # the same weights through the scorer that labels margins and serves rerank:<cross-encoder>@<model>
    weights = {key: chosen[key] for key in ("dense_weight", "tfidf_weight", "max_ngram", "second_dense_weight")}
    teacher = EnsembleTeacher(cross_encoder, bi_encoder=first_stage, second_bi_encoder=second, **weights).fit(SETS)
    queries = list(vset.queries.values())
    q = first_stage.encode(queries, batch_size=8, precision="fp32", normalize=True)
    d = first_stage.encode(SETS, batch_size=8, precision="fp32", normalize=True)
    candidates = torch.topk(q @ d.T, depth, dim=1).indices
    _, order = rerank_top(teacher, queries, SETS, candidates, depth, batch_size=8, precision="fp32")
    ranked = [[f"d{i}" for i in row] for row in order.tolist()]
    expected = ranking_metrics(ranked, list(vset.qrels.values()), [10])
    assert result["per_seed"][0]["ensemble"] == {
        "recall": round(100 * expected["recall@10"], 2), "mrr": round(100 * expected["mrr@10"], 2)}
    torch.testing.assert_close(scored.dense, torch.topk(q @ d.T, depth, dim=1).values, atol=1e-5, rtol=0)


def trained_run(tmp_path, clips):
    """A train.py-like run folder whose model trained on requests of ``clips``."""
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "qgen-queries.jsonl").write_text("".join(json.dumps({"_id": f"{c}_0", "text": c}) + "\n" for c in clips))
    (run / "qgen-queries.jsonl.meta.json").write_text(json.dumps({"settings": {"valid_fraction": 0.3, "split_seed": 0}}))
    return run


def run_with_validation_sets(tmp_path, model_dir, kind="seed-"):
    """A run folder whose ``best/`` is ``model_dir``, with validation sets <kind>0 and <kind>1."""
    run = trained_run(tmp_path, ["other_clip"])
    shutil.rmtree(run / "best")
    shutil.copytree(model_dir, run / "best")
    for seed in (0, 1):
        write_beir(validation_set(shift=seed), run / "validation" / f"{kind}{seed}")
    return run


def test_a_model_trained_on_a_validation_clip_is_refused(tmp_path):
    check_not_trained_on(validation_set(), [trained_run(tmp_path / "a", ["other_clip"]) / "best"])
    check_not_trained_on(validation_set(), [tmp_path / "not-a-run"])  # unknown training data: nothing to check
    with pytest.raises(ValueError, match=r"trained on 1 of these 6 validation clips \(e.g. clip3\)"):
        check_not_trained_on(validation_set(), [trained_run(tmp_path / "b", ["clip3", "x"]) / "best"])


def test_the_command_prints_the_overrides_and_writes_json(tiny_model_dir, tmp_path, capsys):
    run = run_with_validation_sets(tmp_path, tiny_model_dir)
    out = tmp_path / "choice.json"
    main([str(run), str(tiny_model_dir), "--seeds", "0", "1", "--depth", "3", "--dense-weights", "0", "10",
          "--tfidf-weights", "0", "10", "--max-ngrams", "1", "--precision", "fp32", "--out", str(out),
          "--second-cross-encoder", str(tiny_model_dir), "--second-cross-encoder-weights", "1"])
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    chosen = result["chosen"]
    assert f"ensemble.dense={run / 'best'} ensemble.dense_weight={chosen['dense_weight']:g}" in printed
    assert result["report_seeds"] == [1] and set(result["per_seed"]) == {"0", "1"}
    assert "ensemble_without_second_cross_encoder" in result["per_seed"]["0"]
    assert result["scored_depth"] == 3 and result["chosen"]["depth"] == 3 and "seed 0 (chose)" in printed
    assert printed.rstrip().endswith("rerank.depth=3")


def test_the_command_reads_the_request_like_sets_when_asked(tiny_model_dir, tmp_path, capsys):
    # this run holds request-like sets only: reading the caption sets would fail
    run = run_with_validation_sets(tmp_path, tiny_model_dir, kind="requests-seed-")
    out = tmp_path / "choice.json"
    main([str(run), str(tiny_model_dir), "--sets", "requests", "--seeds", "0", "1", "--depth", "3",
          "--dense-weights", "10", "--tfidf-weights", "10", "--max-ngrams", "1",
          "--precision", "fp32", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["sets"] == "requests" and set(result["per_seed"]) == {"0", "1"}
    assert "seed 0 (a grid of one cell: no choice)" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the default, the caption sets, is not there
        main([str(run), str(tiny_model_dir), "--seeds", "0", "--depth", "3", "--precision", "fp32"])
    assert str(run / "validation" / "seed-0") in capsys.readouterr().err


def test_the_command_refuses_a_missing_validation_set_in_one_line(tiny_model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "no-run"), str(tiny_model_dir), "--seeds", "0"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "no-run" in error

"""harness.metrics against its references: pytrec_eval (trec convention, as BEIR drives it) and
sentence-transformers ``InformationRetrievalEvaluator.compute_metrics`` (card convention).

Tolerance 1e-9 everywhere: each value is a ratio of float64 sums of at most 1000 terms in [0, 3]
that the references add in another order, so honest differences stay below 1e-13, while the
smallest real error (one doc moved by one rank at depth 1000) changes a value by > 1e-7.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st
from sentence_transformers.evaluation import InformationRetrievalEvaluator

from harness.metrics import CARD_MAP_K, TREC_K, TREC_MRR_K, MetricResult, card_metrics, trec_metrics
from harness.ranking import rank
from harness.types import InputError, Qrels, Run

TOL = 1e-9
PROPERTY = settings(max_examples=120, derandomize=True, deadline=None)
# Query ids and doc ids share one pool, so identical ids occur; "10" < "9" as strings, which
# exercises the string (not numeric) order of the tie rule.
IDS = [str(i) for i in range(14)]
TIED_SCORES = st.sampled_from([0.0, 0.25, 0.5, 1.0])


# --- references ----------------------------------------------------------------------------------


def trec_reference(qrels: Qrels, run: Run, ignore_identical_ids: bool) -> dict[str, dict[str, float]]:
    """pytrec_eval per-query values under our names, driven as BEIR's EvaluateRetrieval.evaluate.

    Queries of qrels absent from the run get an empty run entry: the harness contract scores them 0
    (BEIR's runs always hold every query; pytrec_eval scores an empty entry 0).
    """
    run = {qid: dict(docs) for qid, docs in run.items()}
    for qid in qrels:
        run.setdefault(qid, {})
    if ignore_identical_ids:  # BEIR pops the identical ids from the results before pytrec_eval
        for qid, docs in run.items():
            docs.pop(qid, None)
    ks = ",".join(map(str, TREC_K))
    measures = {f"ndcg_cut.{ks}", f"map_cut.{ks}", f"recall.{ks}", f"P.{ks}", "recip_rank"}
    scores = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    out: dict[str, dict[str, float]] = {}
    for ours, theirs in (("ndcg", "ndcg_cut"), ("map", "map_cut"), ("recall", "recall"), ("precision", "P")):
        for k in TREC_K:
            out[f"{ours}@{k}"] = {qid: s[f"{theirs}_{k}"] for qid, s in scores.items()}
    # recip_rank = 1/r for the first relevant rank r over the whole list; BEIR's MRR@10 keeps it iff r <= 10.
    cut = 1.0 / TREC_MRR_K
    out[f"mrr@{TREC_MRR_K}"] = {
        qid: s["recip_rank"] if s["recip_rank"] >= cut else 0.0 for qid, s in scores.items()
    }
    return out


def st_compute_metrics(qrels: Qrels, hits: dict[str, list[tuple[str, float]]]) -> dict[str, float]:
    """sentence-transformers' compute_metrics on (doc id, score) hit lists, under our names.

    relevant_docs = qrels docs with grade > 0 (what a NanoBEIR qrels row means); the evaluator
    itself drops queries whose relevant set is empty.
    """
    relevant = {qid: {d for d, g in judged.items() if g > 0} for qid, judged in qrels.items()}
    evaluator = InformationRetrievalEvaluator(
        queries={qid: "" for qid in qrels}, corpus={"unused": ""}, relevant_docs=relevant
    )
    results = [[{"corpus_id": d, "score": s} for d, s in hits.get(qid, [])] for qid in evaluator.queries_ids]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # np.mean of an empty list when no query is left
        metrics = evaluator.compute_metrics(results)
    return {name.replace("@k", f"@{k}"): float(v) for name, by_k in metrics.items() for k, v in by_k.items()}


def card_reference(qrels: Qrels, hits: dict[str, list[tuple[str, float]]]) -> MetricResult:
    """compute_metrics once over all queries (means) and once per query (per-query values)."""
    means = st_compute_metrics(qrels, hits)
    per_query: dict[str, dict[str, float]] = {name: {} for name in means}
    for qid, judged in qrels.items():
        if any(g > 0 for g in judged.values()):
            for name, value in st_compute_metrics({qid: judged}, hits).items():
                per_query[name][qid] = value
    return MetricResult(means, per_query)


def hits_in_our_order(run: Run) -> dict[str, list[tuple[str, float]]]:
    """Our ranking with strictly decreasing pseudo-scores, so the evaluator keeps our tie order."""
    return {qid: [(d, -float(i)) for i, d in enumerate(docs)] for qid, docs in rank(run, CARD_MAP_K).items()}


def assert_matches(
    ours: MetricResult, per_query: dict[str, dict[str, float]], means: dict[str, float]
) -> None:
    assert set(ours.means) == set(means)
    for name in means:
        assert ours.per_query[name].keys() == per_query[name].keys(), name
        for qid, value in per_query[name].items():
            assert ours.per_query[name][qid] == pytest.approx(value, abs=TOL), (name, qid)
        assert ours.means[name] == pytest.approx(means[name], abs=TOL), name


def assert_trec(qrels: Qrels, run: Run, ignore_identical_ids: bool) -> None:
    ref = trec_reference(qrels, run, ignore_identical_ids)
    means = {name: sum(v.values()) / len(v) for name, v in ref.items()}  # BEIR: sum / len(scores)
    assert_matches(trec_metrics(qrels, run, ignore_identical_ids=ignore_identical_ids), ref, means)


def assert_card(qrels: Qrels, run: Run, hits: dict[str, list[tuple[str, float]]]) -> None:
    ref = card_reference(qrels, hits)
    assert_matches(card_metrics(qrels, run), ref.per_query, ref.means)


# --- generated cases -----------------------------------------------------------------------------


@st.composite
def cases(draw, min_grade: int = 0, distinct_scores: bool = False) -> tuple[Qrels, Run]:
    """Small qrels + run: graded or zero-only judgements, unjudged retrieved docs, judged docs
    never retrieved, qrels queries missing from the run, run queries missing from qrels."""
    ids = st.sampled_from(IDS)
    qrels = {
        qid: draw(st.dictionaries(ids, st.integers(min_grade, 3), max_size=6))
        for qid in draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    }
    run: Run = {}
    # Mostly qrels queries (so the run meets the judgements), some not.
    for qid in draw(st.lists(st.sampled_from([*qrels, *IDS[:2]]), max_size=8, unique=True)):
        docs = draw(st.lists(ids, max_size=12, unique=True))
        if distinct_scores:
            scores = [float(s) for s in draw(st.permutations(range(len(docs))))]
        else:
            scores = [draw(TIED_SCORES) for _ in docs]
        run[qid] = dict(zip(docs, scores, strict=True))
    return qrels, run


def has_judged(qrels: Qrels) -> bool:
    return any(qrels.values())


def has_relevant(qrels: Qrels) -> bool:
    return any(g > 0 for judged in qrels.values() for g in judged.values())


@PROPERTY
@given(cases(min_grade=-1), st.booleans())
def test_trec_matches_pytrec_eval(case: tuple[Qrels, Run], ignore_identical_ids: bool) -> None:
    qrels, run = case
    if not has_judged(qrels):
        with pytest.raises(InputError):
            trec_metrics(qrels, run, ignore_identical_ids=ignore_identical_ids)
        return
    assert_trec(qrels, run, ignore_identical_ids)


@PROPERTY
@given(cases())
def test_card_matches_sentence_transformers_on_ties(case: tuple[Qrels, Run]) -> None:
    """Tied scores: the evaluator is fed our ranking, so only the metric maths is compared."""
    qrels, run = case
    if not has_relevant(qrels):
        with pytest.raises(InputError):
            card_metrics(qrels, run)
        return
    assert_card(qrels, run, hits_in_our_order(run))


@PROPERTY
@given(cases(distinct_scores=True), st.randoms(use_true_random=False))
def test_card_matches_sentence_transformers_on_raw_scores(
    case: tuple[Qrels, Run], rnd: random.Random
) -> None:
    """Distinct scores: the evaluator sorts the shuffled raw run itself, which checks our ranking too."""
    qrels, run = case
    if not has_relevant(qrels):
        return
    hits = {qid: rnd.sample(list(docs.items()), len(docs)) for qid, docs in run.items()}
    assert_card(qrels, run, hits)


def numpy_case(seed: int) -> tuple[Qrels, Run]:
    """Deep runs (1200 docs, past the 1000 cutoff) with two-decimal scores (many ties), 150 graded
    judgements per query of which some are never retrieved, and one query missing from the run."""
    rng = np.random.default_rng(seed)
    pool = [f"doc{i}" for i in range(3000)] + [f"q{i}" for i in range(20)]
    qrels: Qrels = {}
    run: Run = {}
    for i in range(20):
        qid = f"q{i}"
        judged = rng.choice(len(pool), 150, replace=False)
        qrels[qid] = {pool[j]: int(g) for j, g in zip(judged, rng.integers(0, 4, 150), strict=True)}
        if i == 0:
            continue
        retrieved = rng.choice(len(pool), 1200, replace=False)
        run[qid] = {pool[j]: float(s) for j, s in zip(retrieved, np.round(rng.random(1200), 2), strict=True)}
        run[qid][qid] = 1.0  # a top-scored identical id for ignore_identical_ids
    return qrels, run


@pytest.mark.parametrize("seed", range(3))
def test_deep_runs_match_references(seed: int) -> None:
    qrels, run = numpy_case(seed)
    assert_trec(qrels, run, ignore_identical_ids=False)
    assert_trec(qrels, run, ignore_identical_ids=True)
    binary = {qid: {d: int(g > 0) for d, g in judged.items()} for qid, judged in qrels.items()}
    assert_card(binary, run, hits_in_our_order(run))


# --- edge cases (expected values from the references) --------------------------------------------


def test_empty_run() -> None:
    qrels: Qrels = {"q1": {"a": 1, "b": 2}, "q2": {"c": 1}}
    assert_trec(qrels, {}, ignore_identical_ids=False)
    assert_card(qrels, {}, {})


def test_more_relevant_docs_than_cutoffs() -> None:
    """|R| = 120 > every card cutoff (MAP@100 divides by min(k, |R|)) and > 10 for trec."""
    relevant = [f"r{i:03d}" for i in range(120)]
    qrels: Qrels = {"q": {d: 1 + i % 3 for i, d in enumerate(relevant)}}
    docs = relevant[::2] + [f"n{i}" for i in range(60)]  # 60 relevant and 60 unjudged, interleaved
    run: Run = {"q": {d: float(len(docs) - (i * 7) % len(docs)) for i, d in enumerate(docs)}}
    assert_trec(qrels, run, ignore_identical_ids=False)
    assert_card({"q": dict.fromkeys(relevant, 1)}, run, hits_in_our_order(run))


def test_relevant_doc_at_rank_11() -> None:
    qrels: Qrels = {"q": {"hit": 1}}
    run: Run = {"q": {f"n{i}": 2.0 + i for i in range(10)} | {"hit": 1.0}}
    ref = trec_reference(qrels, run, ignore_identical_ids=False)
    # Fixture guard: the references see the hit below 10 and above 100.
    assert ref["recall@10"]["q"] == 0 and ref["recall@100"]["q"] > 0
    assert_trec(qrels, run, ignore_identical_ids=False)
    assert_card(qrels, run, hits_in_our_order(run))


# --- contract ------------------------------------------------------------------------------------


@PROPERTY
@given(cases(), st.randoms(use_true_random=False))
def test_deterministic_and_independent_of_dict_order(case: tuple[Qrels, Run], rnd: random.Random) -> None:
    qrels, run = case
    if not has_relevant(qrels):
        return

    def shuffled(d: dict) -> dict:
        return dict(rnd.sample(list(d.items()), len(d)))

    run2 = shuffled({qid: shuffled(docs) for qid, docs in run.items()})
    qrels2 = {qid: shuffled(qrels[qid]) for qid in qrels}  # keep query order: it is per_query's order
    assert card_metrics(qrels, run) == card_metrics(qrels2, run2)
    assert trec_metrics(qrels, run, ignore_identical_ids=True) == trec_metrics(
        qrels2, run2, ignore_identical_ids=True
    )


@pytest.mark.parametrize("score", [float("nan"), float("inf"), "1.0", None])
def test_bad_score_raises_input_error(score: object) -> None:
    run = {"q": {"a": 1.0, "b": score}}
    for metrics in (card_metrics, trec_metrics):
        with pytest.raises(InputError, match="run\\['q'\\]\\['b'\\]"):
            metrics({"q": {"a": 1}}, run)  # type: ignore[arg-type]


def test_bad_grade_raises_input_error() -> None:
    with pytest.raises(InputError, match="qrels\\['q'\\]\\['a'\\]"):
        trec_metrics({"q": {"a": 0.5}}, {})  # type: ignore[dict-item]


def test_rank_cutoff() -> None:
    run: Run = {"q": {str(i): float(i % 3) for i in range(12)}}
    assert rank(run, 5) == {"q": rank(run)["q"][:5]}
    with pytest.raises(InputError):
        rank(run, 0)

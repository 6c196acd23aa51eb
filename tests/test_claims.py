"""The notebooks' claims (ssl_course/claims.json) against the shipped reference runs, and the checker itself.

The first test is the one that keeps the course honest: a re-recording of the references that loses a
lesson (or a claim marked as not holding that now holds) fails here."""
from __future__ import annotations

import json
import re

import pytest

from ssl_course import claims, config, reference

SHIPPED = config.REPO_ROOT / "results"
NOTEBOOK_SOURCES = config.REPO_ROOT / "notebooks" / "_src"
#: notebooks whose prose interprets a training result: each must state its claims
NOTEBOOKS_WITH_CLAIMS = ("02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12")


@pytest.mark.parametrize("claim", claims.load_claims(), ids=lambda claim: claim.id)
def test_every_claim_agrees_with_the_shipped_reference_runs(claim, monkeypatch):
    if not SHIPPED.is_dir():
        pytest.skip("no results/ folder in this checkout")
    monkeypatch.delenv(reference.RESULTS_ENV, raising=False)
    verdict = claims.check(claim)
    assert verdict.supported is not None, f"{claim.id}: a reference run it needs is missing ({verdict.pairs})"
    if claim.holds:
        assert verdict.supported, f"{claim.id} is taught as holding but the references say: {verdict.describe()}"
    else:
        assert not verdict.supported, (f"{claim.id} is marked as not holding at the course's budget, but the "
                                       f"references now show it ({verdict.describe()}): update claims.json "
                                       "and the notebook's prose")


def test_claims_are_judged_on_the_validation_split_never_the_test_split():
    for claim in claims.load_claims():
        for side in [claim.left, claim.right] + [s for seed in claim.seeds for s in seed.values()]:
            metric = side.get("metric", "")
            assert not metric.startswith("test") and metric not in ("knn_accuracy", "classifier_accuracy",
                                                                    "linear_probe_accuracy"), (claim.id, metric)


def test_each_semi_supervised_notebook_states_its_claims_and_prints_them():
    stated = {claim.notebook for claim in claims.load_claims()}
    assert set(NOTEBOOKS_WITH_CLAIMS) <= stated
    for notebook in stated:
        source = next(NOTEBOOK_SOURCES.glob(f"{notebook}_*.py")).read_text()
        assert re.search(rf'claims\.show\("{notebook}"', source), f"notebook {notebook} never prints its claims"


def _run(folder, name, metrics=None, logs=None, steps=5):
    run = folder / name
    run.mkdir(parents=True)
    (run / reference.REFERENCE_FILE).write_text(json.dumps({"name": name, "steps": steps, "seconds": 1.0,
                                                            "device": "cpu", "date": "2026-12-06"}))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "history.json").write_text(json.dumps({"logs": logs or {}}))


def _claim(**changes):
    entry = {"id": "x", "notebook": "99", "text": "a beats b", "holds": True, "margin": 0.05,
             "left": {"run": "99_a", "metric": "val_accuracy", "method": "a"},
             "right": {"run": "99_b", "metric": "val_accuracy", "method": "b"}}
    entry.update(changes)
    return claims.Claim(**entry)


def test_check_needs_the_margin_and_every_seed(tmp_path, monkeypatch):
    monkeypatch.setenv(reference.RESULTS_ENV, str(tmp_path))
    _run(tmp_path, "99_a", {"val_accuracy": 0.50})
    _run(tmp_path, "99_b", {"val_accuracy": 0.44})
    _run(tmp_path, "seed1_a", {"val_accuracy": 0.47})
    _run(tmp_path, "seed1_b", {"val_accuracy": 0.45})
    assert claims.check(_claim()).supported is True
    assert claims.check(_claim(margin=0.07)).supported is False            # 0.06 lead is not enough
    seed = {"left": {"run": "seed1_a", "metric": "val_accuracy"}, "right": {"run": "seed1_b", "metric": "val_accuracy"}}
    assert claims.check(_claim(seeds=[seed])).supported is False           # the other seed leads by 0.02 only
    assert claims.check(_claim(margin=0.01, seeds=[seed])).supported is True
    missing = {"left": {"run": "seed2_a", "metric": "val_accuracy"}, "right": seed["right"]}
    verdict = claims.check(_claim(seeds=[missing]))
    assert verdict.supported is None and "missing" in verdict.describe()


def test_check_reads_constants_curves_steps_and_a_learners_own_results(tmp_path, monkeypatch):
    monkeypatch.setenv(reference.RESULTS_ENV, str(tmp_path))
    _run(tmp_path, "99_a", {"val_accuracy": 0.3}, logs={"attention": [0.0, 1.0]}, steps=40)
    above_chance = _claim(right={"value": 0.1, "label": "chance"}, margin=0.1)
    assert claims.check(above_chance).supported is True
    curve = _claim(left={"run": "99_a", "metric": "history:attention"}, right={"value": 1.0}, margin=0.0)
    assert claims.check(curve).supported is True
    assert claims.check(_claim(left={"run": "99_a", "metric": "steps"}, right={"value": 50})).supported is False
    own = {"a": {"val_accuracy": 0.30}, "b": {"val_accuracy": 0.40}}
    assert claims.check(_claim(), own).supported is False
    assert "a 0.300 vs b 0.400: does not hold" == claims.check(_claim(), own).describe()


def test_a_shared_baseline_is_found_under_every_notebook_that_uses_it(tmp_path, monkeypatch):
    monkeypatch.setenv(reference.RESULTS_ENV, str(tmp_path))
    shared = "supervised_cifar10_250_tiny"
    _run(tmp_path, reference.SHARED_PREFIX + shared, {"val_accuracy": 0.37})
    for notebook in reference.SHARED_RUNS[shared]:
        assert reference.reference_dir(f"{notebook}_{shared}") == tmp_path / (reference.SHARED_PREFIX + shared)
        side = {"run": f"{notebook}_{shared}", "metric": "val_accuracy"}
        assert claims.check(_claim(left=side, right={"value": 0.3})).pairs[0][0] == pytest.approx(0.37)
    assert reference.reference_dir(f"09_{shared}") == tmp_path / f"09_{shared}"   # 09 trains on a subset


def test_show_prints_the_claim_the_reference_and_the_learners_run(tmp_path, monkeypatch, capsys):
    path = tmp_path / "claims.json"
    path.write_text(json.dumps([{**_claim().__dict__, "seeds": []},
                                {**_claim(id="y", holds=False, note="needs 10x the budget").__dict__}]))
    monkeypatch.setattr(claims, "CLAIMS_FILE", path)
    monkeypatch.setenv(reference.RESULTS_ENV, str(tmp_path / "results"))
    _run(tmp_path / "results", "99_a", {"val_accuracy": 0.5})
    _run(tmp_path / "results", "99_b", {"val_accuracy": 0.4})
    monkeypatch.setenv(config.MODE_ENV, "learn")
    claims.show("99", {"a": {"val_accuracy": 0.41}, "b": {"val_accuracy": 0.40}})
    printed = capsys.readouterr().out
    assert "claim: a beats b (by at least 0.05)" in printed
    assert "course reference: a 0.500 vs b 0.400: holds" in printed
    assert "a: reference run: 5 steps in 0.0 min on cpu, 2026-12-06" in printed   # each run's budget
    assert "your run: a 0.410 vs b 0.400: does not hold" in printed
    assert "does not show: needs 10x the budget" in printed
    monkeypatch.setenv(config.MODE_ENV, "present")     # the page shows the reference: no "your run"
    claims.show("99", {"a": {"val_accuracy": 0.41}, "b": {"val_accuracy": 0.40}})
    assert "your run" not in capsys.readouterr().out


def test_malformed_claims_are_clear_errors(tmp_path):
    path = tmp_path / "claims.json"
    good = {**_claim().__dict__}
    path.write_text(json.dumps([{k: v for k, v in good.items() if k != "holds"}]))
    with pytest.raises(ValueError, match="lacks \\['holds'\\]"):
        claims.load_claims(path=path)
    path.write_text(json.dumps([{**good, "holds": False, "note": ""}]))
    with pytest.raises(ValueError, match="note must say what was measured"):
        claims.load_claims(path=path)
    path.write_text(json.dumps([good, good]))
    with pytest.raises(ValueError, match="unique"):
        claims.load_claims(path=path)
    path.write_text(json.dumps([{**good, "right": {"run": "99_b"}}]))
    with pytest.raises(ValueError, match="right must give run and metric, or a value"):
        claims.load_claims(path=path)

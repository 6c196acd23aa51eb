"""What each notebook claims about its training results, as data, and whether a run supports it.

A notebook that interprets a training result ("PAWS beats the supervised baseline") states it as a
claim in ``ssl_course/claims.json``; the notebook prints it with :func:`show`, and
``tests/test_claims.py`` checks every claim against the course's shipped reference runs
(``results/``), so a re-recording that loses a lesson fails the tests.

A claim compares one number with another on the **validation** split (never the test split):

* ``left`` and ``right``: ``{"run": <reference run name>, "metric": <key>, "method": <name>}`` (the
  method names the learner's own result of the same cell), or ``{"value": <number>, "label": <text>}``
  for a constant such as chance. ``metric`` is a key of the run's ``metrics.json`` (or of an
  ``evaluations.json`` entry), ``history:<key>`` for the last logged value of a training curve, or
  ``steps``;
* ``margin``: how far ``left`` must be above ``right`` (accuracy points as fractions, e.g. 0.03);
* ``seeds``: more runs of the same comparison with other seeds (``[{"left": ..., "right": ...}]``):
  the claim holds only if it holds in every one of them;
* ``holds``: what the course says. ``true``: the reference shows it. ``false``: a claim from a paper
  that the course's budget cannot show; ``note`` then says what was measured instead (the trend, and
  the budget at which it would show). The test checks that the references agree with ``holds``
  either way, so a claim is never hidden and never stale.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_course import reference

__all__ = ["CLAIMS_FILE", "Claim", "Verdict", "load_claims", "check", "show"]

CLAIMS_FILE = Path(__file__).with_name("claims.json")
_REQUIRED = ("id", "notebook", "text", "left", "right", "holds")


@dataclass(frozen=True)
class Claim:
    """One comparison a notebook makes (see the module docstring for the fields)."""

    id: str
    notebook: str
    text: str
    left: dict[str, Any]
    right: dict[str, Any]
    holds: bool
    margin: float = 0.0
    seeds: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    """A claim checked on some runs: ``supported`` is None when a number is missing."""

    claim: Claim
    supported: bool | None
    pairs: list[tuple[float | None, float | None]]   # (left, right), the main comparison first, then seeds

    def describe(self) -> str:
        left, right = self.pairs[0]
        if left is None or right is None:
            return "no run to check it on"
        numbers = f"{_label(self.claim.left)} {left:.3f} vs {_label(self.claim.right)} {right:.3f}"
        if self.supported is None:
            return f"{numbers}; a run of another seed is missing"
        if len(self.pairs) > 1:
            others = ", ".join(f"{left:.3f} vs {right:.3f}" for left, right in self.pairs[1:])
            numbers += f" (other seeds: {others})"
        return f"{numbers}: {'holds' if self.supported else 'does not hold'}"


def load_claims(notebook: str | None = None, path: Path | None = None) -> list[Claim]:
    """The claims of one notebook (``"11"``), or all of them (from :data:`CLAIMS_FILE` unless ``path``);
    a malformed entry is a clear error."""
    path = Path(path) if path is not None else CLAIMS_FILE
    entries = json.loads(path.read_text())
    claims = []
    for number, entry in enumerate(entries):
        missing = [key for key in _REQUIRED if key not in entry]
        if missing:
            raise ValueError(f"{path}: claim #{number} ({entry.get('id', 'no id')}) lacks {missing}; "
                             f"every claim needs {list(_REQUIRED)}")
        for side in ("left", "right"):
            if not ({"run", "metric"} <= set(entry[side]) or "value" in entry[side]):
                raise ValueError(f"{path}: claim {entry['id']!r}: {side} must give run and metric, or a value")
        if not entry["holds"] and not entry.get("note"):
            raise ValueError(f"{path}: claim {entry['id']!r} does not hold at the course's budget: its note must "
                             "say what was measured instead and at what budget it would hold")
        claims.append(Claim(**entry))
    ids = [claim.id for claim in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: claim ids must be unique, got {sorted(i for i in ids if ids.count(i) > 1)}")
    return [claim for claim in claims if notebook is None or claim.notebook == notebook]


def _label(side: dict[str, Any]) -> str:
    return side.get("label") or side.get("method") or side.get("run", "?")


def _reference_value(side: dict[str, Any]) -> float | None:
    """A number of a shipped reference run: its ``metrics.json``, else an ``evaluations.json`` entry."""
    if "value" in side:
        return float(side["value"])
    # a run inside a comparison ("12_compare_.../runs/mixmatch_250_s0") is a path; a run name may be shared
    run = side["run"]
    folder = reference.results_dir() / run if "/" in run else reference.reference_dir(run)
    metric = side["metric"]
    if metric.startswith("history:"):         # the last logged value of a training curve
        history_path = folder / "history.json"
        if not history_path.is_file():
            return None
        values = json.loads(history_path.read_text())["logs"].get(metric.removeprefix("history:"))
        return float(values[-1]) if values else None
    if metric == "steps":                     # the steps the reference run trained
        info_path = folder / reference.REFERENCE_FILE
        return float(json.loads(info_path.read_text())["steps"]) if info_path.is_file() else None
    metrics_path, evaluations_path = folder / "metrics.json", folder / reference.EVALUATIONS_FILE
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        if side["metric"] in metrics:
            return float(metrics[side["metric"]])
    if evaluations_path.is_file():
        for metrics in json.loads(evaluations_path.read_text()).values():
            if side["metric"] in metrics:
                return float(metrics[side["metric"]])
    return None


def _own_value(side: dict[str, Any], results: dict[str, dict[str, Any]]) -> float | None:
    """The learner's number for one side: ``results[method][metric]`` (or the constant)."""
    if "value" in side:
        return float(side["value"])
    value = results.get(side.get("method", ""), {}).get(side["metric"])
    return None if value is None else float(value)


def check(claim: Claim, results: dict[str, dict[str, Any]] | None = None) -> Verdict:
    """Check ``claim`` on the shipped references, or on ``results`` (metrics by method: a learner's run)."""
    if results is None:
        pairs = [(_reference_value(claim.left), _reference_value(claim.right))]
        pairs += [(_reference_value(seed["left"]), _reference_value(seed["right"])) for seed in claim.seeds]
    else:
        pairs = [(_own_value(claim.left, results), _own_value(claim.right, results))]
    if any(left is None or right is None for left, right in pairs):
        return Verdict(claim, None, pairs)
    return Verdict(claim, all(left - right >= claim.margin for left, right in pairs), pairs)


def show(notebook: str, results: dict[str, dict[str, Any]] | None = None) -> list[Verdict]:
    """Print the notebook's claims: what the course's reference runs show and, given ``results``, your run.

    In present mode the numbers on the page are the reference's, so only those are printed.
    """
    verdicts = []
    for claim in load_claims(notebook):
        shipped = check(claim)
        verdicts.append(shipped)
        print(f"claim: {claim.text}" + (f" (by at least {claim.margin:.2f})" if claim.margin else ""))
        print(f"  course reference: {shipped.describe()}")
        for side in (claim.left, claim.right):
            if "run" in side and reference.has_reference(side["run"].split("/")[0]):
                print(f"    {_label(side)}: {reference.describe(side['run'].split('/')[0])}")
        if not claim.holds:
            print(f"  at the course's budget this does not show: {claim.note}")
        if results is not None and not reference.presenting():
            print(f"  your run: {check(claim, results).describe()}")
    return verdicts

"""The tutorials' qualitative claims (claims.yaml) and their verdicts from runs over several seeds.

A paired claim compares two configurations that differ in one setting, each run with the same seeds on the same
test images: b's test accuracy minus a's, with the bootstrap over seeds and images of `paired` (the trained model
is a unit of replication as well as the test image). A catalogue page controls all its tests together
(`paired.control`: false discovery rate, and a minimum effect); a claim that needed a difference is reproduced
only when its difference is a finding after that control, in the claimed direction (and at least the size the
tutorial stated, where it stated one and the claim is judged on the tutorial's own data).

A verdict says where it was reached: on the claim's own data it is reproduced / refuted / inconclusive; on
another dataset it holds / does not hold / is not settled "on Fashion-MNIST", and on the offline 5,000-image
sample of MNIST "on the MNIST sample" (about a twentieth of the optimizer steps the tutorials took). A claim that
a configuration is stuck or cannot fit (`stalled`) is not reproduced by runs of it still improving at their last
epoch: their own diagnosis says they are undertrained.

numpy and the catalogue's spec model only, pure: records in, verdicts out.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import numpy as np

from mnist_pipeline.catalogue import ModelSpec
from mnist_pipeline.claims import Claim, Ladder
from mnist_pipeline.config import DATASET_NAMES
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.paired import (  # noqa: F401 - pack and unpack: the records' per-image bits, used from here too
    FALSE_DISCOVERY_RATE,
    MIN_EFFECT,
    control,
    pack,
    paired_difference,
    unpack,
    why_not,
)

NOT_COMPARED = ("claimed", "claimed_accuracy", "source", "claim_dataset", "metric")  # not settings of the run


def differences(first: dict[str, Any], second: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The settings in which two runs' recipes differ: setting -> (first's value, second's)."""
    keys = [k for k in dict.fromkeys([*first, *second]) if k not in NOT_COMPARED]
    return {k: (first.get(k), second.get(k)) for k in keys if first.get(k) != second.get(k)}


def recipe(run: dict[str, Any]) -> dict[str, Any]:
    """What a run's configuration set: the model spec (every field, defaults filled in, so records written before
    a field existed compare like for like), the input scaling and split, early stopping."""
    return {**ModelSpec.model_validate(run["spec"]).model_dump(), "prepare.normalize": run["prepare"]["normalized"],
            "prepare.val_fraction": run["prepare"]["val_fraction"],
            "train.early_stopping_patience": run["train_params"]["early_stopping_patience"]}


def shown(value: Any) -> str:
    """A setting's value as params.yaml writes it (false, null, 0.003, relu); also what `dvc exp run -S` takes."""
    return value if isinstance(value, str) else json.dumps(value)


def spread(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def compare_pair(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]]) -> dict[str, Any]:
    """Two configurations over their common seeds: each one's accuracy spread, the paired difference and the
    one setting (or the several) in which they differ."""
    by_seed_a, by_seed_b = {r["seed"]: r for r in runs_a}, {r["seed"]: r for r in runs_b}
    seeds = [s for s in by_seed_a if s in by_seed_b]
    if not seeds:
        return {}
    total = by_seed_a[seeds[0]]["test_total"]
    paired = paired_difference([unpack(by_seed_a[s]["correct"], total) for s in seeds],
                               [unpack(by_seed_b[s]["correct"], total) for s in seeds])
    return {"a": spread([by_seed_a[s]["metrics"]["accuracy"] for s in seeds]),
            "b": spread([by_seed_b[s]["metrics"]["accuracy"] for s in seeds]),
            "gap_a": spread([by_seed_a[s]["metrics"]["train_accuracy"] - by_seed_a[s]["metrics"]["val_accuracy"]
                             for s in seeds]),
            "gap_b": spread([by_seed_b[s]["metrics"]["train_accuracy"] - by_seed_b[s]["metrics"]["val_accuracy"]
                             for s in seeds]),
            "gap_change_per_seed": [
                (by_seed_b[s]["metrics"]["train_accuracy"] - by_seed_b[s]["metrics"]["val_accuracy"])
                - (by_seed_a[s]["metrics"]["train_accuracy"] - by_seed_a[s]["metrics"]["val_accuracy"])
                for s in seeds],
            "loss_a": spread([by_seed_a[s]["metrics"]["loss"] for s in seeds]),
            "loss_b": spread([by_seed_b[s]["metrics"]["loss"] for s in seeds]),
            "changed": {k: [shown(v) for v in pair] for k, pair in
                        differences(recipe(by_seed_a[seeds[0]]), recipe(by_seed_b[seeds[0]])).items()},
            **paired}


class Family:
    """The paired tests of one catalogue page: each comparison computed once (the same one shown in a lesson and a
    ladder is one test), then controlled together (`control`); after that no new test may join."""

    def __init__(self, runs: dict[str, list[dict[str, Any]]], rate: float = FALSE_DISCOVERY_RATE,
                 min_effect: float = MIN_EFFECT) -> None:
        self.runs, self.rate, self.min_effect = runs, rate, min_effect
        self.tests: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.controlled = False

    def _add(self, key: tuple[str, str, str], make: Any) -> dict[str, Any]:
        if key not in self.tests:
            if self.controlled:
                raise PipelineError(f"the test {key} was not among the page's controlled tests")
            self.tests[key] = make()
        return self.tests[key]

    def pair(self, a: str, b: str) -> dict[str, Any]:
        """Configuration b against a on the clean test images ({} when they share no seed)."""
        return self._add((a, b, "none"), lambda: compare_pair(self.runs.get(a, []), self.runs.get(b, [])))

    def distorted(self, a: str, b: str, name: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]
                  ) -> dict[str, Any]:
        """b against a on the test images distorted `name`, over `pairs` (each seed's (a, b) records of it)."""
        if name == "none":
            return self.pair(a, b)
        return self._add((a, b, name), lambda: paired_difference([unpack(x["correct"], x["total"]) for x, _ in pairs],
                                                                 [unpack(y["correct"], y["total"]) for _, y in pairs]))

    def control(self) -> None:
        control(list(r for r in self.tests.values() if r), self.rate, self.min_effect)
        self.controlled = True


def p_value(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def per_seed(result: dict[str, Any]) -> str:
    """Each seed's own difference, in points: '+4.5, +14.1, +63.1'."""
    return ", ".join(f"{d * 100:+.1f}" for d in result["per_seed"])


def tested(result: dict[str, Any]) -> str:
    """A controlled paired result in words: the difference, its interval, p and q, the seeds' own differences, and
    whether it is a finding."""
    low, high = result["ci95"]
    head = (f"{result['difference'] * 100:+.2f} points (95% interval {low * 100:+.2f} to {high * 100:+.2f}; "
            f"{p_value(result['p'])}, q = {result['q']:.3f}; per seed {per_seed(result)}; {result['seeds']} seeds x "
            f"{result['images']:,} images)")
    return head + (": **a finding**" if result["finding"] else f": inside the noise ({why_not(result)})")


OUTCOME_ELSEWHERE = {"reproduced": "holds", "refuted": "does not hold", "inconclusive": "not settled"}


def qualified(outcome: str, claim_dataset: str, where: tuple[str, bool]) -> str:
    """The verdict's word where the claim was judged: `where` is (the catalogue's dataset, whether it is the offline
    MNIST sample rather than the tutorial's data). On the claim's own data: reproduced | refuted | inconclusive;
    elsewhere: holds | does not hold | not settled, "on Fashion-MNIST" or "on the MNIST sample"."""
    dataset, sample = where
    if outcome not in OUTCOME_ELSEWHERE or claim_dataset == "none" or (dataset == claim_dataset and not sample):
        return outcome
    place = "the MNIST sample" if dataset == "mnist" and sample else DATASET_NAMES[dataset]
    return f"{OUTCOME_ELSEWHERE[outcome]} on {place}"


def paired_verdict(expect: str, result: dict[str, Any], at_least: float = 0.0) -> tuple[str, str]:
    """reproduced | refuted | inconclusive, with a short reason (the numbers are beside it), from a controlled paired
    result and, where the tutorial stated one and the claim is judged on its data, the size of effect (`at_least`,
    in accuracy). reproduced: a finding in the claimed direction (its whole interval beyond that size); refuted: a
    finding in the opposite direction, or a whole interval short of the size; inconclusive: inside the noise, or
    straddling the size. not_better: reproduced unless b is better by a finding."""
    noise = f"inside the noise ({why_not(result)})"
    if expect == "not_better":
        if result["finding"] and result["difference"] > 0:
            return "refuted", "b is better, by a finding"
        return "reproduced", "b is not better: " + ("b is worse, by a finding" if result["finding"] else noise)
    sign = 1 if expect == "better" else -1
    near, far = sorted((sign * result["ci95"][0], sign * result["ci95"][1]))  # the interval, claimed direction
    if result["finding"] and sign * result["difference"] < 0:
        return "refuted", "the opposite of the claim, by a finding"
    if not result["finding"]:
        return "inconclusive", f"{noise}: the seeds run do not settle it"
    if not at_least or near > at_least:
        return "reproduced", "a finding in the claimed direction" + (
            f", beyond the {at_least * 100:g} points the tutorial stated" if at_least else "")
    if far < at_least:
        return "refuted", f"a finding, but short of the {at_least * 100:g} points the tutorial stated"
    return "inconclusive", (f"a finding, but the interval does not settle whether it is at least {at_least * 100:g} "
                            "points")


def gap_verdict(result: dict[str, Any], min_effect: float, runs_a: list[dict[str, Any]],
                runs_b: list[dict[str, Any]]) -> tuple[str, str]:
    """A claim that b overfits less than a (dropout), judged on the train-validation gap seed by seed: reproduced
    when every seed's gap is smaller with b and the mean by at least `min_effect`, and no run of b is diagnosed
    undertrained or underfitting (a run that fits less has a smaller gap without overfitting less); refuted when
    every seed's is larger by as much; otherwise inconclusive (no bootstrap: each seed gives one gap, measured on
    a sample of training images and the validation images). How often validation loss ends above its minimum is
    said too."""
    changes = result["gap_change_per_seed"]
    mean = sum(changes) / len(changes)
    shown = (f"the train-validation gap changed by {mean * 100:+.2f} points on average (per seed "
             + ", ".join(f"{c * 100:+.1f}" for c in changes) + ")")
    rose_a, rose_b = (sum(rises(r["history"].get("val_loss", [])) for r in group) for group in (runs_a, runs_b))
    rising = (f"; validation loss ends above its minimum in {rose_a} of {len(runs_a)} seeds without the change, "
              f"{rose_b} of {len(runs_b)} with it")
    unfit = [r["seed"] for r in runs_b if r["diagnosis"].startswith(("undertrained", "underfitting"))]
    if all(c < 0 for c in changes) and -mean >= min_effect and unfit:
        return "inconclusive", (f"{shown}: smaller in every seed, but {len(unfit)} of {len(runs_b)} runs with the "
                                "change were still improving or under-fitting, and the gap of a run that fits less "
                                f"need not be less overfitting{rising}")
    if all(c < 0 for c in changes) and -mean >= min_effect:
        return "reproduced", f"{shown}: smaller in every seed{rising}"
    if all(c > 0 for c in changes) and mean >= min_effect:
        return "refuted", f"{shown}: larger in every seed{rising}"
    return "inconclusive", (f"{shown}: the seeds do not agree on a change of at least {min_effect * 100:g} point"
                            f"{rising}")


def still_improving_seeds(runs: list[dict[str, Any]]) -> list[int]:
    """The seeds whose run was still improving at its last epoch (evaluate's diagnosis: undertrained)."""
    return [r["seed"] for r in runs if r["diagnosis"].startswith("undertrained")]


def judge_claim(claim: Claim, family: Family, underfit_below: float, demo: dict[str, Any] | None,
                where: tuple[str, bool]) -> dict[str, Any]:
    """One claim's verdict on one catalogue's runs (`family`: the page's controlled tests over label -> its
    successful runs, one per seed); `where`: see `qualified`."""
    out: dict[str, Any] = {"id": claim.id, "kind": claim.kind}
    runs = family.runs
    if claim.kind == "needs_internet":
        return {**out, "verdict": "not comparable", "reason": f"{claim.reason}; check it with `{claim.command}`"}
    if claim.kind == "demo":
        if not demo:
            return {**out, "verdict": "not run", "reason": "the demo stage has not run"}
        claimed = float(demo["claimed"])
        off = abs(demo["prediction"] - claimed)
        verdict = "reproduced" if off <= (claim.tolerance or 0) else "refuted"
        return {**out, "verdict": verdict, "ours": demo["prediction"],
                "reason": f"predict({demo['at']:g}) = {demo['prediction']:.4f}, {off:.4f} from the claimed "
                          f"{claimed:g} (tolerance {claim.tolerance:g})"}
    runs_a = runs.get(claim.a or "", [])
    if not runs_a or (claim.kind in ("paired", "paired_gap") and not runs.get(claim.b or "")):
        missing = claim.a if not runs_a else claim.b
        return {**out, "verdict": "not run", "reason": f"no successful run of {missing}"}
    like_for_like = qualified("reproduced", claim.dataset, where) == "reproduced"
    if claim.kind in ("paired", "paired_gap"):
        result = family.pair(claim.a or "", claim.b or "")
        if claim.kind == "paired":
            outcome, reason = paired_verdict(claim.expect or "better", result,
                                             claim.at_least if like_for_like else 0.0)
        else:
            outcome, reason = gap_verdict(result, family.min_effect, runs_a, runs[claim.b or ""])
        declared = sorted(claim.changes) if claim.changes else None
        if (declared is None and len(result["changed"]) != 1) or (declared and sorted(result["changed"]) != declared):
            outcome, reason = "not comparable", (f"the two differ in {len(result['changed'])} settings "
                                                 f"({', '.join(result['changed'])}), not "
                                                 + (", ".join(declared) if declared else "one"))
        judged = {**out, **result}
    elif claim.kind == "rising_val_loss":
        rising = [r["seed"] for r in runs_a if rises(r["history"].get("val_loss", []))]
        outcome = ("reproduced" if len(rising) == len(runs_a) else "refuted" if not rising else "inconclusive")
        lows = [int(np.argmin(r["history"]["val_loss"])) + 1 for r in runs_a]
        reason = (f"validation loss ends above its minimum in {len(rising)} of {len(runs_a)} seeds "
                  f"(minimum at epoch {', '.join(map(str, lows))} of "
                  f"{', '.join(str(r['epochs_run']) for r in runs_a)})")
        judged = {**out, "seeds": len(runs_a)}
    elif claim.kind == "stopped_by_threshold":
        stopped = [r for r in runs_a if r["stopped_by"].startswith("loss below")]  # training.stopped_by's words
        outcome = "reproduced" if len(stopped) == len(runs_a) else "refuted" if not stopped else "inconclusive"
        reason = (f"stopped by the threshold in {len(stopped)} of {len(runs_a)} seeds: "
                  + "; ".join(sorted({r['stopped_by'] for r in runs_a})))
        judged = {**out, "seeds": len(runs_a)}
    else:
        trains = spread([r["metrics"]["train_accuracy"] for r in runs_a])
        low = sum(r["metrics"]["train_accuracy"] < underfit_below for r in runs_a)
        outcome = "reproduced" if low == len(runs_a) else "refuted" if not low else "inconclusive"
        reason = (f"training accuracy {trains['mean']:.1%} ± {trains['sd']:.1%} over {len(runs_a)} seeds, "
                  f"below {underfit_below:.0%} in {low}")
        judged = {**out, "seeds": len(runs_a), "train_accuracy": trains}
    stalled = claim.stalled or (claim.a if claim.kind == "low_train" else None)
    improving = still_improving_seeds(runs.get(stalled or "", []))
    if outcome == "reproduced" and improving:
        outcome = "inconclusive"
        reason = (f"{stalled} was still improving at its last epoch in {len(improving)} of "
                  f"{len(runs.get(stalled or '', []))} seeds (diagnosed undertrained): a run still improving has not "
                  f"shown that it is stuck or cannot fit; {reason}")
    return {**judged, "outcome": outcome, "verdict": qualified(outcome, claim.dataset, where), "reason": reason}


def rises(val_loss: list[float], margin: float = 0.02) -> bool:
    """Validation loss ends more than `margin` (relative) above its minimum, and the minimum is not the end."""
    if len(val_loss) < 2:
        return False
    best = min(val_loss)
    return int(np.argmin(val_loss)) < len(val_loss) - 1 and val_loss[-1] > best * (1 + margin)


def ladder_rows(ladder: Ladder, family: Family) -> list[dict[str, Any]]:
    """Each step of a ladder: its runs' accuracy spread and, from its starting step, what changed and the
    paired test."""
    rows, previous, runs = [], None, family.runs
    for step in ladder.steps:
        start = step.from_ or previous
        row: dict[str, Any] = {"label": step.label, "from": start}
        if runs.get(step.label):
            row["accuracy"] = spread([r["metrics"]["accuracy"] for r in runs[step.label]])
            if start and runs.get(start):
                row["step"] = family.pair(start, step.label)
        rows.append(row)
        previous = step.label
    return rows

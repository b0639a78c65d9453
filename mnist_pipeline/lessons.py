"""The tutorials' qualitative claims (claims.yaml) and their verdicts from runs over several seeds.

A paired claim compares two configurations that differ in one setting, each run with the same seeds
on the same test images. The difference is b's test accuracy minus a's, averaged over the seeds both
have; its 95% interval is a paired bootstrap over the test images (one resample of images serves every
seed, so what the seeds share is kept). The difference is a finding only when the interval excludes
zero; otherwise it is inside the noise, and a claim that needed a difference is *inconclusive*.

numpy and the catalogue's spec model only, pure: records in, verdicts out.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from mnist_pipeline.catalogue import ModelSpec
from mnist_pipeline.errors import PipelineError

BOOTSTRAP_RESAMPLES = 4000
NOT_COMPARED = ("claimed", "claimed_accuracy", "source", "claim_dataset", "metric")  # not settings of the run


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Configuration(Strict):
    model: str
    set: dict[str, Any] = Field(default_factory=dict)  # `dvc exp run -S` overrides


class Claim(Strict):
    id: str
    tutorial: str
    dataset: Literal["mnist", "fashion_mnist", "none"]
    claim: str
    kind: Literal["paired", "rising_val_loss", "stopped_by_threshold", "low_train", "demo", "needs_internet"]
    a: str | None = None
    b: str | None = None
    expect: Literal["better", "worse", "not_better"] | None = None
    at_least: float = Field(default=0.0, ge=0, le=1)  # the effect the claim's words imply ("breaks", "essential")
    tolerance: float | None = None
    reason: str | None = None
    command: str | None = None


class Step(Strict):
    label: str
    from_: str | None = Field(default=None, alias="from")


class Ladder(Strict):
    name: str
    steps: list[Step]


class Claims(Strict):
    seeds: list[int] = Field(min_length=1)
    configurations: dict[str, Configuration]
    claims: list[Claim]
    ladders: list[Ladder]

    def labels(self, catalogue: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
        """(label, model, overrides) of every configuration: each catalogue entry, then the variants."""
        return ([(name, name, {}) for name in catalogue]
                + [(label, c.model, dict(c.set)) for label, c in self.configurations.items()])


def load_claims(path: Path, catalogue: list[str]) -> Claims:
    """claims.yaml, checked: every label it names is a catalogue entry or one of its configurations."""
    try:
        claims = Claims.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValueError) as error:
        raise PipelineError(f"{path}: {str(error).splitlines()[0]}") from None
    known = set(catalogue) | set(claims.configurations)
    named = [c.model for c in claims.configurations.values()]
    named += [label for c in claims.claims for label in (c.a, c.b) if label]
    named += [label for ladder in claims.ladders for s in ladder.steps for label in (s.label, s.from_) if label]
    unknown = sorted({label for label in named if label not in known})
    if unknown or any(c.model not in catalogue for c in claims.configurations.values()):
        raise PipelineError(f"{path}: unknown configurations {unknown}; known: {', '.join(sorted(known))}")
    return claims


def unpack(bits: str, total: int) -> np.ndarray:
    """A run's per-test-image correctness, stored as hex of np.packbits, back to (total,) bool."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(bits), dtype=np.uint8))[:total].astype(bool)


def pack(correct: np.ndarray) -> str:
    return np.packbits(correct.astype(np.uint8)).tobytes().hex()


def paired_difference(a: list[np.ndarray], b: list[np.ndarray], resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> dict[str, Any]:
    """b minus a in accuracy, seeds paired in order ((n,) bool each, the same n test images), with the
    paired bootstrap's 95% interval over the test images and its two-sided p-value."""
    per_image = np.mean([bi.astype(np.float64) - ai for ai, bi in zip(a, b)], axis=0)  # (n,) in [-1, 1]
    n, rng = len(per_image), np.random.default_rng(seed)
    means = np.concatenate([per_image[rng.integers(0, n, size=(200, n))].mean(axis=1)
                            for _ in range(resamples // 200)])
    low, high = np.quantile(means, [0.025, 0.975])
    p = min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    return {"difference": float(per_image.mean()), "ci95": [float(low), float(high)], "p": float(p),
            "seeds": len(a), "images": n, "finding": bool(low > 0 or high < 0)}


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
            "changed": {k: [shown(v) for v in pair] for k, pair in
                        differences(recipe(by_seed_a[seeds[0]]), recipe(by_seed_b[seeds[0]])).items()},
            **paired}


def p_value(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def paired_verdict(expect: str, result: dict[str, Any], at_least: float = 0.0) -> tuple[str, str]:
    """reproduced | refuted | inconclusive, with the reason, from the paired difference's 95% interval and the
    size of effect the claim implies (`at_least`, in accuracy: "breaks training" is more than a fraction of a
    point). reproduced: the whole interval is beyond that size in the claimed direction; refuted: the whole
    interval is short of it; inconclusive: the interval straddles it."""
    low, high = result["ci95"]
    shown = (f"{result['difference'] * 100:+.2f} points (95% interval {low * 100:+.2f} to {high * 100:+.2f}, "
             f"paired bootstrap {p_value(result['p'])})")
    if expect == "not_better":
        return ("refuted", f"b is better by {shown}") if low > 0 else (
            "reproduced", f"b is not better: {shown}" + ("" if high < 0 else ", inside the noise"))
    sign = 1 if expect == "better" else -1
    near, far = sorted((sign * low, sign * high))  # the interval in the claimed direction
    size = f"at least {at_least * 100:g} points, as the claim's words imply" if at_least else "a real difference"
    if near > at_least:
        return "reproduced", shown
    if far < at_least:
        if far < 0:
            return "refuted", f"the opposite of the claim: {shown}"
        short = "a real difference, but" if near > 0 else "at most a small difference,"
        return "refuted", f"{shown}: {short} short of the {at_least * 100:g} points the claim's words imply"
    return "inconclusive", f"{shown}: the interval does not settle whether it is {size}"


def judge_claim(claim: Claim, runs: dict[str, list[dict[str, Any]]], underfit_below: float,
                demo: dict[str, Any] | None) -> dict[str, Any]:
    """One claim's verdict on one catalogue's runs (label -> its successful runs, one per seed)."""
    out: dict[str, Any] = {"id": claim.id, "kind": claim.kind}
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
    if not runs_a or (claim.kind == "paired" and not runs.get(claim.b or "")):
        missing = claim.a if not runs_a else claim.b
        return {**out, "verdict": "not run", "reason": f"no successful run of {missing}"}
    if claim.kind == "paired":
        result = compare_pair(runs_a, runs[claim.b or ""])
        verdict, reason = paired_verdict(claim.expect or "better", result, claim.at_least)
        if len(result["changed"]) != 1:
            verdict, reason = "not comparable", (f"the two differ in {len(result['changed'])} settings "
                                                 f"({', '.join(result['changed'])}), not one")
        return {**out, "verdict": verdict, "reason": reason, **result}
    if claim.kind == "rising_val_loss":
        rising = [r["seed"] for r in runs_a if rises(r["history"].get("val_loss", []))]
        verdict = ("reproduced" if len(rising) == len(runs_a) else "refuted" if not rising else "inconclusive")
        lows = [int(np.argmin(r["history"]["val_loss"])) + 1 for r in runs_a]
        return {**out, "verdict": verdict, "seeds": len(runs_a),
                "reason": f"validation loss ends above its minimum in {len(rising)} of {len(runs_a)} seeds "
                          f"(minimum at epoch {', '.join(map(str, lows))} of "
                          f"{', '.join(str(r['epochs_run']) for r in runs_a)})"}
    if claim.kind == "stopped_by_threshold":
        stopped = [r for r in runs_a if r["stopped_by"].startswith("loss below")]  # training.stopped_by's words
        verdict = "reproduced" if len(stopped) == len(runs_a) else "refuted" if not stopped else "inconclusive"
        return {**out, "verdict": verdict, "seeds": len(runs_a),
                "reason": f"stopped by the threshold in {len(stopped)} of {len(runs_a)} seeds: "
                          + "; ".join(sorted({r['stopped_by'] for r in runs_a}))}
    trains = spread([r["metrics"]["train_accuracy"] for r in runs_a])
    low = sum(r["metrics"]["train_accuracy"] < underfit_below for r in runs_a)
    verdict = "reproduced" if low == len(runs_a) else "refuted" if not low else "inconclusive"
    return {**out, "verdict": verdict, "seeds": len(runs_a), "train_accuracy": trains,
            "reason": f"training accuracy {trains['mean']:.1%} ± {trains['sd']:.1%} over {len(runs_a)} seeds, "
                      f"below {underfit_below:.0%} in {low}"}


def rises(val_loss: list[float], margin: float = 0.02) -> bool:
    """Validation loss ends more than `margin` (relative) above its minimum, and the minimum is not the end."""
    if len(val_loss) < 2:
        return False
    best = min(val_loss)
    return int(np.argmin(val_loss)) < len(val_loss) - 1 and val_loss[-1] > best * (1 + margin)


def ladder_rows(ladder: Ladder, runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each step of a ladder: its runs' accuracy spread and, from its starting step, what changed and the
    paired test."""
    rows, previous = [], None
    for step in ladder.steps:
        start = step.from_ or previous
        row: dict[str, Any] = {"label": step.label, "from": start}
        if runs.get(step.label):
            row["accuracy"] = spread([r["metrics"]["accuracy"] for r in runs[step.label]])
            if start and runs.get(start):
                row["step"] = compare_pair(runs[start], runs[step.label])
        rows.append(row)
        previous = step.label
    return rows

"""Judging a run against its tutorial's claim: like for like, with the run's uncertainty.

A claim is compared only in the metric it was made in (binary accuracy with binary accuracy), on the
dataset it was made on, with the recipe's data (the full training set) and with the tutorial's own recipe
(claims.yaml `recipes` lists how an entry's recipe differs from it): otherwise it is *not comparable*, with
the reason. A comparable claim is *reproduced* when it lies inside our 95% Wilson
interval and *refuted* when it lies outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnist_pipeline.catalogue import N_CLASSES
from mnist_pipeline.metrics import wilson_interval

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
# the training images of a tutorial's own fit, by catalogue source (default: all 60,000 of MNIST's)
TUTORIAL_TRAIN_IMAGES = {"CSDN different networks": "42,000 (60,000 less its validation_split 0.3)"}


@dataclass(frozen=True)
class Run:
    """What the claim is judged against: the run's data and its measured figures."""

    dataset: str
    source: str  # fetch's source: offline | path | cache | download
    train_images: int
    weights: str | None  # VGG16 base weights, for kind vgg16
    metrics: dict[str, float]
    test_correct: int
    test_total: int


@dataclass(frozen=True)
class Verdict:
    verdict: str  # reproduced | refuted | not comparable | nothing to compare
    reason: str
    metric: str
    ours: float | None
    ci95: tuple[float, float] | None


def comparable(spec: dict[str, Any], run: Run, recipe: list[str] | tuple[str, ...] = ()) -> str | None:
    """Why the claim and this run are not like for like, or None when they are; `recipe`: how the entry's recipe
    differs from the tutorial's (claims.yaml `recipes`), which also makes it not like for like."""
    claim_dataset = spec.get("claim_dataset", "mnist")
    if run.dataset != claim_dataset:
        return (f"the claim was measured on {DATASET_NAMES[claim_dataset]}, this run is on "
                f"{DATASET_NAMES.get(run.dataset, run.dataset)}")
    if spec["kind"] == "vgg16" and run.weights != "imagenet":
        weights = "random weights (features.weights=none)" if run.weights == "none" else f"the weights {run.weights}"
        return f"this VGG16 base has {weights}, the tutorial's had ImageNet's"
    if run.dataset == "mnist" and run.source == "offline":
        return (f"trained on {run.train_images:,} images of the 5,000-image MNIST sample, the tutorial on "
                f"{TUTORIAL_TRAIN_IMAGES.get(spec.get('source', ''), '60,000')}; fetch.source=download checks it on "
                "full MNIST")
    if recipe:
        return "our recipe differs from the tutorial's: " + "; ".join(recipe)
    return None


def judge(spec: dict[str, Any], run: Run, recipe: list[str] | tuple[str, ...] = ()) -> Verdict:
    """The verdict on the tutorial's claimed number for this catalogue entry (`recipe`: see `comparable`)."""
    metric, claimed = spec["metric"], spec.get("claimed_accuracy")
    if metric == "binary_accuracy":
        ours = run.metrics.get("keras_binary_accuracy")
        decisions = run.test_total * N_CLASSES  # binary accuracy scores each of the 10 outputs as a yes/no
        ci95 = wilson_interval(round((ours or 0.0) * decisions), decisions)
    else:
        ours = run.metrics["accuracy"]
        ci95 = wilson_interval(run.test_correct, run.test_total)
    if claimed is None:
        return Verdict("nothing to compare", "the tutorial states no number", metric, ours, ci95)
    reason = comparable(spec, run, recipe)
    if reason:
        return Verdict("not comparable", reason, metric, ours, ci95)
    if ci95[0] <= claimed <= ci95[1]:
        return Verdict("reproduced", f"the claimed {claimed:.2%} lies inside our 95% interval", metric, ours, ci95)
    side = "above" if claimed > ci95[1] else "below"
    return Verdict("refuted", f"the claimed {claimed:.2%} lies {side} our 95% interval", metric, ours, ci95)

"""Claims are judged like for like with the run's 95% interval: reproduced, refuted or not comparable."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from mnist_pipeline.claims import Run, judge
from mnist_pipeline.metrics import wilson_interval

SPEC = {"kind": "dense", "metric": "accuracy", "claimed_accuracy": 0.97, "claim_dataset": "mnist"}


def run(**changes) -> Run:
    facts = {"dataset": "mnist", "source": "download", "train_images": 54_000, "weights": None,
             "metrics": {"accuracy": 0.967, "keras_binary_accuracy": 0.9935}, "test_correct": 9_670,
             "test_total": 10_000}
    return Run(**{**facts, **changes})


@pytest.mark.parametrize("correct, total", [(967, 1000), (0, 50), (50, 50), (9_670, 10_000), (1, 3)])
def test_wilson_interval_equals_scipys(correct: int, total: int):
    expected = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(correct, total) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_a_claim_inside_the_interval_is_reproduced_outside_refuted():
    low, high = wilson_interval(9_670, 10_000)
    assert judge(SPEC, run()).verdict == "reproduced" and low < 0.97 < high
    refuted = judge({**SPEC, "claimed_accuracy": 0.99}, run())
    assert refuted.verdict == "refuted" and "above our 95% interval" in refuted.reason


@pytest.mark.parametrize("spec, facts, reason", [
    ({**SPEC, "claim_dataset": "fashion_mnist"}, {}, "measured on Fashion-MNIST, this run is on MNIST"),
    (SPEC, {"dataset": "fashion_mnist"}, "measured on MNIST, this run is on Fashion-MNIST"),
    ({**SPEC, "kind": "vgg16"}, {"weights": "none"}, "random weights (features.weights=none), the tutorial's"),
    (SPEC, {"source": "offline", "train_images": 3_600}, "3,600 images of the 5,000-image MNIST sample"),
])
def test_not_like_for_like_is_not_comparable_and_says_why(spec: dict, facts: dict, reason: str):
    verdict = judge(spec, run(**facts))
    assert verdict.verdict == "not comparable" and reason in verdict.reason


def test_a_binary_accuracy_claim_is_judged_in_binary_accuracy():
    """The Keras-concepts claims were binary accuracy: compared with our binary accuracy, never our top-1."""
    verdict = judge({**SPEC, "metric": "binary_accuracy", "claimed_accuracy": 0.9935}, run())
    assert verdict.metric == "binary_accuracy" and verdict.ours == 0.9935 and verdict.verdict == "reproduced"
    assert judge({**SPEC, "claimed_accuracy": None}, run()).verdict == "nothing to compare"

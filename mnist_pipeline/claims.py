"""The tutorials' claims: their lessons as claims.yaml states them (`Claims`, read by `load_claims`; lessons.py
judges them over seeds), and each tutorial's number judged against a run, like for like, with the run's
uncertainty (`judge`).

A claim is compared only in the metric it was made in (binary accuracy with binary accuracy), on the
dataset it was made on, with the recipe's data (the full training set) and with the tutorial's own recipe
(claims.yaml `recipes` lists how an entry's recipe differs from it): otherwise it is *not comparable*, with
the reason. A comparable claim is *reproduced* when it lies inside our 95% Wilson
interval and *refuted* when it lies outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mnist_pipeline.config import DATASET_NAMES
from mnist_pipeline.errors import PipelineError, first_line
from mnist_pipeline.metrics import wilson_interval
from mnist_pipeline.models import N_CLASSES
from mnist_pipeline.paired import FALSE_DISCOVERY_RATE, MIN_EFFECT

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

    @classmethod
    def from_records(cls, fetched: dict[str, Any], trained: dict[str, Any], features: dict[str, Any],
                     evaluation: dict[str, Any]) -> Run:
        """The run as its stages recorded it (fetch.json, train.json, features.json, evaluation.json)."""
        test = evaluation["intervals"]["test"]
        return cls(dataset=fetched["dataset"], source=fetched["source"], train_images=trained["shapes"]["x_train"][0],
                   weights=None if features.get("skipped") else features["weights"], metrics=evaluation["metrics"],
                   test_correct=test["correct"], test_total=test["total"])


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


# claims.yaml: the tutorials' lessons, the variants that test them, their seeds and ladders

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
    kind: Literal["paired", "paired_gap", "rising_val_loss", "stopped_by_threshold", "low_train", "demo",
                  "needs_internet"]
    a: str | None = None
    b: str | None = None
    expect: Literal["better", "worse", "not_better"] | None = None
    at_least: float = Field(default=0.0, ge=0, le=1)  # a size the tutorial stated, in accuracy (with stated)
    stated: str | None = None  # where the tutorial stated that size (its numbers)
    stalled: str | None = None  # the configuration the claim says is stuck or cannot fit (low_train: a)
    recipe: list[str] = Field(default_factory=list)  # how these runs differ from the tutorial's own recipe
    # the settings a and b differ in, when the claim's one change is several settings (the tutorial's "change it
    # to SGD" is Keras' SGD() with its own default learning rate); None: exactly one
    changes: list[str] | None = None
    tolerance: float | None = None
    reason: str | None = None
    command: str | None = None

    @model_validator(mode="after")
    def size_is_stated(self) -> Claim:
        if self.at_least and not self.stated:
            raise ValueError(f"claim {self.id}: at_least needs `stated`, where the tutorial stated that size")
        return self


class Step(Strict):
    label: str
    from_: str | None = Field(default=None, alias="from")


class Ladder(Strict):
    name: str
    steps: list[Step]


class ExtraSeeds(Strict):
    """More seeds for some configurations on some datasets: where the seeds' spread is large and runs are cheap."""

    datasets: list[Literal["mnist", "fashion_mnist"]]
    seeds: list[int] = Field(min_length=1)
    configurations: list[str] = Field(min_length=1)


class Claims(Strict):
    seeds: list[int] = Field(min_length=1)
    extra_seeds: list[ExtraSeeds] = Field(default_factory=list)
    false_discovery_rate: float = Field(default=FALSE_DISCOVERY_RATE, gt=0, lt=1)  # over each page's tests
    min_effect: float = Field(default=MIN_EFFECT, ge=0, le=1)  # in accuracy: smaller is never a finding
    configurations: dict[str, Configuration]
    claims: list[Claim]
    ladders: list[Ladder]
    recipes: dict[str, list[str]] = Field(default_factory=dict)  # catalogue entry -> how it differs from its tutorial

    def seeds_of(self, label: str, dataset: str) -> list[int]:
        """The seeds a configuration runs with on a dataset: `seeds`, then any `extra_seeds` for it there."""
        extra = [s for e in self.extra_seeds if dataset in e.datasets and label in e.configurations for s in e.seeds]
        return list(dict.fromkeys([*self.seeds, *extra]))

    def labels(self, catalogue: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
        """(label, model, overrides) of every configuration: each catalogue entry, then the variants."""
        return ([(name, name, {}) for name in catalogue]
                + [(label, c.model, dict(c.set)) for label, c in self.configurations.items()])


def load_claims(path: Path, catalogue: list[str]) -> Claims:
    """claims.yaml, checked: every label it names is a catalogue entry or one of its configurations."""
    try:
        claims = Claims.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValueError) as error:
        raise PipelineError(f"{path}: {first_line(error)}") from None
    known = set(catalogue) | set(claims.configurations)
    named = [c.model for c in claims.configurations.values()]
    named += [label for c in claims.claims for label in (c.a, c.b, c.stalled) if label]
    named += list(claims.recipes) + [label for extra in claims.extra_seeds for label in extra.configurations]
    named += [label for ladder in claims.ladders for s in ladder.steps for label in (s.label, s.from_) if label]
    unknown = sorted({label for label in named if label not in known})
    if unknown or any(c.model not in catalogue for c in claims.configurations.values()):
        raise PipelineError(f"{path}: unknown configurations {unknown}; known: {', '.join(sorted(known))}")
    return claims

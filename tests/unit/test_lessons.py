"""The lessons' verdicts: the paired test over seeds, and claims.yaml's comparisons controlled."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mnist_pipeline.catalogue import ModelSpec
from mnist_pipeline.config import read_params
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.lessons import (
    Claims,
    differences,
    load_claims,
    pack,
    paired_difference,
    paired_verdict,
    rises,
    unpack,
)
from mnist_pipeline.lessons import (
    recipe as run_recipe,
)
from tests.harness import ROOT


def correct(n: int, right: int, rng: np.random.Generator) -> np.ndarray:
    bits = np.zeros(n, dtype=bool)
    bits[rng.choice(n, right, replace=False)] = True
    return bits


def test_pack_round_trips_per_image_correctness():
    bits = np.random.default_rng(0).random(1001) > 0.5
    assert np.array_equal(unpack(pack(bits), 1001), bits)


def test_a_real_difference_is_a_finding_and_noise_is_not():
    rng = np.random.default_rng(1)
    a = [correct(1000, 850, rng) for _ in range(3)]
    better = [np.where(rng.random(1000) < 0.5, True, x) for x in a]  # b fixes about half of a's mistakes
    result = paired_difference(a, better)
    assert result["difference"] == pytest.approx(np.mean([b.mean() - x.mean() for x, b in zip(a, better)]))
    assert result["finding"] and result["ci95"][0] > 0 and result["p"] < 0.01 and result["seeds"] == 3
    flipped = [x.copy() for x in a]  # the same accuracy, 10 images moved from right to wrong and 10 back
    for x in flipped:
        right, wrong = np.flatnonzero(x)[:10], np.flatnonzero(~x)[:10]
        x[right], x[wrong] = False, True
    same = paired_difference(a, flipped)
    assert same["difference"] == pytest.approx(0) and not same["finding"] and same["ci95"][0] < 0 < same["ci95"][1]


@pytest.mark.parametrize(("expect", "ci", "verdict"), [
    ("better", (0.01, 0.03), "reproduced"), ("better", (-0.03, -0.01), "refuted"),
    ("better", (-0.01, 0.02), "inconclusive"), ("worse", (-0.03, -0.01), "reproduced"),
    ("worse", (0.01, 0.02), "refuted"), ("not_better", (-0.01, 0.02), "reproduced"),
    ("not_better", (0.01, 0.02), "refuted"),
])
def test_paired_verdicts(expect: str, ci: tuple[float, float], verdict: str):
    result = {"difference": sum(ci) / 2, "ci95": list(ci), "p": 0.04}
    assert paired_verdict(expect, result)[0] == verdict


@pytest.mark.parametrize(("expect", "ci", "verdict", "words"), [
    ("worse", (-0.019, -0.003), "refuted", "a real difference, but short of the 5 points"),  # "breaks": -1 point
    ("worse", (-0.30, -0.20), "reproduced", ""), ("better", (0.03, 0.08), "inconclusive", "does not settle"),
    ("better", (-0.01, 0.02), "refuted", "at most a small difference"), ("better", (-0.04, -0.01), "refuted",
                                                                          "the opposite of the claim"),
])
def test_a_claimed_size_of_effect_is_judged_too(expect: str, ci: tuple[float, float], verdict: str, words: str):
    result = {"difference": sum(ci) / 2, "ci95": list(ci), "p": 0.001}
    found, reason = paired_verdict(expect, result, at_least=0.05)
    assert found == verdict and words in reason, reason


def test_rising_validation_loss():
    assert rises([1.0, 0.5, 0.4, 0.45, 0.5]) and not rises([1.0, 0.5, 0.4, 0.39]) and not rises([0.5, 0.4, 0.405])


def recipe(params: dict[str, Any], model: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """What a configuration runs, from params and its overrides (as compare's records say it)."""
    entry = dict(params["models"][model])
    prepare, train = dict(params["prepare"]), dict(params["train"])
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section == "models":
            entry[name.split(".", 1)[1]] = value
        else:
            {"prepare": prepare, "train": train}[section][name] = value
    return {**ModelSpec.model_validate(entry).model_dump(), "prepare.normalize": prepare["normalize"],
            "prepare.val_fraction": prepare["val_fraction"],
            "train.early_stopping_patience": train["early_stopping_patience"]}


def test_every_lesson_compares_configurations_that_differ_in_exactly_one_setting():
    params = read_params(ROOT / "params.yaml")
    claims = load_claims(ROOT / "claims.yaml", list(params["models"]))
    configurations = {label: (model, overrides) for label, model, overrides in claims.labels(list(params["models"]))}
    paired = [c for c in claims.claims if c.kind == "paired"]
    assert len(paired) >= 8
    for claim in paired:
        changed = differences(recipe(params, *configurations[claim.a]), recipe(params, *configurations[claim.b]))
        assert len(changed) == 1, (claim.id, changed)


def test_claims_naming_an_unknown_configuration_are_refused(tmp_path):
    text = (ROOT / "claims.yaml").read_text().replace("b: lee_ce_sigmoid", "b: lee_ce_sigmoidd", 1)
    (tmp_path / "claims.yaml").write_text(text)
    with pytest.raises(PipelineError, match="lee_ce_sigmoidd"):
        load_claims(tmp_path / "claims.yaml", list(read_params(ROOT / "params.yaml")["models"]))
    assert isinstance(load_claims(ROOT / "claims.yaml", list(read_params(ROOT / "params.yaml")["models"])), Claims)


def test_every_configuration_sets_its_params_as_dvc_exp_run_applies_them(tmp_path):
    """Each variant's overrides through DVC's own `-S` parser (the code `dvc exp run` runs), on a copy of
    params.yaml: keys a catalogue entry leaves at their defaults (deep_relu's learning_rate) are set too."""
    from dvc.utils.hydra import apply_overrides

    from mnist_cli.compare import set_params

    params = read_params(ROOT / "params.yaml")
    claims = load_claims(ROOT / "claims.yaml", list(params["models"]))
    for label, model, overrides in claims.labels(list(params["models"])):
        path = tmp_path / f"{label}.yaml"
        path.write_text((ROOT / "params.yaml").read_text())
        args = set_params("fashion_mnist", {"features.weights": "none"}, model, 43, overrides)
        apply_overrides(str(path), args[1::2])
        applied = read_params(path)
        assert (applied["data"]["dataset"], applied["train"]["model"], applied["train"]["seed"]) == \
            ("fashion_mnist", model, 43), label
        for key, value in overrides.items():
            section, *rest = key.split(".")
            node = applied[section]
            for part in rest:
                node = node[part]
            assert node == value, (label, key, node)


def test_records_written_before_a_spec_field_existed_compare_like_for_like():
    """A record from before modern_cnn's fields (no batch_norm, schedule, ...) against one written after: only
    the setting that really differs counts (the MNIST catalogue once called Lee's loss lesson 'not comparable')."""
    params = read_params(ROOT / "params.yaml")
    new = ModelSpec.model_validate(params["models"]["lee_mse_sigmoid"]).model_dump()
    old = {k: v for k, v in ModelSpec.model_validate(params["models"]["lee_ce_sigmoid"]).model_dump().items()
           if k not in ("batch_norm", "batch_norm_momentum", "schedule", "warmup_epochs", "weight_decay",
                        "label_smoothing", "augment", "conv_blocks", "global_pool")}
    facts = {"prepare": {"normalized": True, "val_fraction": 0.1}, "train_params": {"early_stopping_patience": 3}}
    assert differences(run_recipe({"spec": new, **facts}), run_recipe({"spec": old, **facts})) == {
        "loss": ("mse", "categorical_crossentropy")}

"""The distortions of the held-out test images, on real MNIST digits: each does what its name says, measured
by a property of the ink, keeps shape and range, and is the same for the same seed."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mnist_pipeline import distortions
from mnist_pipeline.config import DistortionsParams, parse_section
from mnist_pipeline.data.preparation import reshape, to_float
from mnist_pipeline.distortions import NAMES, distort, distort_prepared, from_unit, to_unit
from mnist_pipeline.errors import PipelineError
from tests.harness import ROOT

PARAMS = DistortionsParams()


@pytest.fixture(scope="module")
def digits(mnist_sample) -> np.ndarray:
    """300 real test digits, (300, 28, 28) float32 in [0, 1]."""
    return to_float(mnist_sample["x_test"][:300], True)


def ink_moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: the ink's centroid (row, column), its principal axis angle in degrees and the ratio of its
    second moments along and across that axis."""
    rows, cols = np.mgrid[:28, :28]
    mass = images.sum(axis=(1, 2))
    r = (images * rows).sum(axis=(1, 2)) / mass
    c = (images * cols).sum(axis=(1, 2)) / mass
    dr, dc = rows[None] - r[:, None, None], cols[None] - c[:, None, None]
    mrr, mcc, mrc = [(images * a * b).sum(axis=(1, 2)) / mass for a, b in ((dr, dr), (dc, dc), (dr, dc))]
    angle = np.degrees(0.5 * np.arctan2(2 * mrc, mcc - mrr))
    spread = np.sqrt((mcc - mrr) ** 2 + 4 * mrc ** 2)
    elongation = (mrr + mcc + spread) / (mrr + mcc - spread)
    return np.stack([r, c], axis=1), angle, elongation


@pytest.mark.parametrize("name", NAMES)
def test_each_keeps_shape_and_range_is_seeded_and_leaves_its_input_alone(digits: np.ndarray, name: str):
    before = digits.copy()
    first, again = distort(digits, name, PARAMS), distort(digits, name, PARAMS)
    assert first.shape == digits.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1
    assert np.array_equal(first, again) and np.array_equal(digits, before)
    assert not np.allclose(first, digits)
    other = distort(digits, name, PARAMS.model_copy(update={"seed": 7}))
    assert np.array_equal(other, first) == (name not in ("rotation", "uneven_lighting", "off_centre"))


def test_rotation_turns_the_ink_by_15_to_25_degrees(digits: np.ndarray):
    turned = distort(digits, "rotation", PARAMS)
    _, before, elongation = ink_moments(digits)
    _, after, _ = ink_moments(turned)
    long = elongation > 4  # a clear principal axis (1s, 7s): its angle is well measured
    assert long.sum() >= 30
    change = (after - before + 90) % 180 - 90  # an axis has no direction: wrap to [-90, 90)
    assert np.all((np.abs(change[long]) > 15 - 2) & (np.abs(change[long]) < 25 + 2)), np.sort(change[long])
    assert (change[long] > 0).any() and (change[long] < 0).any()  # either way


def test_off_centre_moves_the_ink_4_to_6_pixels(digits: np.ndarray):
    moved = distort(digits, "off_centre", PARAMS)
    whole = np.isclose(moved.sum(axis=(1, 2)), digits.sum(axis=(1, 2)))  # none of the digit pushed off the edge
    assert whole.mean() > 0.5  # MNIST leaves about 4 pixels around a digit: a 5-6 pixel move crops some
    distance = np.linalg.norm(ink_moments(moved)[0] - ink_moments(digits)[0], axis=1)
    assert np.all((distance[whole] >= 4 - 1e-3) & (distance[whole] <= 6 + 1e-3)), distance[whole]
    assert np.all(distance[~whole] <= 6 + 1e-3)
    assert len(np.unique(np.round(distance[whole], 2))) > 2  # several lengths, not one


def test_thick_strokes_carry_more_ink_and_thin_ones_less(digits: np.ndarray):
    mass = digits.sum(axis=(1, 2))
    thick, thin = distort(digits, "thick", PARAMS).sum(axis=(1, 2)), distort(digits, "thin", PARAMS).sum(axis=(1, 2))
    assert np.all(thick > 1.3 * mass) and np.all(thin < 0.85 * mass) and np.all(thin > 0.05 * mass)


def high_frequency_energy(images: np.ndarray, above: int = 7) -> np.ndarray:
    """Per image: the spectral power at spatial frequencies above `above` cycles per image."""
    spectrum = np.abs(np.fft.fft2(images)) ** 2
    frequencies = np.fft.fftfreq(28) * 28
    radius = np.hypot(frequencies[:, None], frequencies[None, :])
    return spectrum[:, radius > above].sum(axis=1)


def test_blur_takes_away_the_high_frequencies(digits: np.ndarray):
    blurred = distort(digits, "blur", PARAMS)
    assert np.all(high_frequency_energy(blurred) < 0.5 * high_frequency_energy(digits))
    assert np.allclose(blurred.sum(axis=(1, 2)), digits.sum(axis=(1, 2)), rtol=0.02)  # ink spread, not lost


def test_low_resolution_has_only_as_many_degrees_of_freedom_as_its_pixels(digits: np.ndarray):
    """Every image upscaled from 10x10 lies in a 100-dimensional space: 300 of them stacked have rank 100."""
    low = distort(digits, "low_resolution", PARAMS).reshape(len(digits), -1).astype(np.float64)
    singular = np.linalg.svd(low, compute_uv=False)
    pixels = PARAMS.low_resolution_pixels ** 2
    assert singular[pixels] < 1e-6 * singular[0]  # (fewer when some border pixel is empty in every digit)
    assert np.linalg.svd(digits.reshape(len(digits), -1), compute_uv=False)[pixels] > 1e-2 * singular[0]


def test_uneven_lighting_makes_the_background_uneven_and_keeps_the_ink(digits: np.ndarray):
    lit = distort(digits, "uneven_lighting", PARAMS)
    background = digits == 0
    spread = [lit[i][background[i]].std() for i in range(len(digits))]
    assert np.all(np.array(spread) > 0.05)
    assert np.all(lit[background] >= PARAMS.lighting_offset - 1e-6)
    assert np.all(lit[background] <= 1 - (1 - PARAMS.lighting_drop) * (1 - PARAMS.lighting_offset) + 1e-6)
    assert np.allclose(lit[digits == 1], 1)


@pytest.mark.parametrize("scale", [True, False, "centered"])
@pytest.mark.parametrize("layout", ["flat", "image"])
def test_prepared_images_are_distorted_in_their_own_scale_and_layout(mnist_sample, scale, layout):
    raw = mnist_sample["x_test"][:50]
    prepared = reshape(to_float(raw, scale), layout)
    assert np.allclose(to_unit(prepared, scale), to_float(raw, True), atol=1e-6)
    assert np.allclose(from_unit(to_unit(prepared, scale), scale, prepared.shape), prepared, atol=1e-4)
    out = distort_prepared(prepared, scale, PARAMS)
    assert list(out) == [distortions.split_name(name) for name in NAMES]
    background = {True: 0.0, False: 0.0, "centered": -1.0}[scale]
    for split, images in out.items():
        assert images.shape == prepared.shape and images.dtype == np.float32, split
        name = split.removeprefix("test_")
        expected = reshape(from_unit(distort(to_float(raw, True), name, PARAMS), scale, (50, 28, 28)), layout)
        assert np.allclose(images, expected, atol=1e-4), split
        if name != "uneven_lighting":
            assert np.isclose(images.min(), background, atol=1e-4), split


def test_a_distortion_draws_the_same_whichever_others_are_applied(digits: np.ndarray):
    alone = distort_prepared(digits, True, PARAMS.model_copy(update={"apply": ["off_centre"]}))
    assert np.array_equal(alone["test_off_centre"], distort_prepared(digits, True, PARAMS)["test_off_centre"])


def test_the_params_section_parses_and_refuses_ranges_upside_down():
    section = parse_section(yaml.safe_load((ROOT / "params.yaml").read_text()), "distortions", DistortionsParams)
    assert tuple(section.apply) == NAMES and set(distortions.describe(section)) == set(NAMES)
    with pytest.raises(PipelineError, match="rotation_min_degrees 30.0 is above rotation_max_degrees 25.0"):
        parse_section({"distortions": {"rotation_min_degrees": 30}}, "distortions", DistortionsParams)
    with pytest.raises(PipelineError, match="distortions.apply"):
        parse_section({"distortions": {"apply": ["smudge"]}}, "distortions", DistortionsParams)

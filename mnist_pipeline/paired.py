"""The paired test behind every comparison on a catalogue page, and the control over a page's many tests.

Two configurations are compared over the seeds both ran, on the same test images: per image and seed the
difference in correctness (b - a, in {-1, 0, 1}). What varies from one replication to the next is both the
trained model (the seed) and the test images, so the bootstrap resamples both: each of its resamples draws the
seeds with replacement (k of the k paired seeds) and, independently, the test images with replacement (n of n,
one draw shared by the drawn seeds, so what the seeds share is kept), and takes the mean difference. Its 2.5%
and 97.5% quantiles are the 95% interval, and twice the smaller tail beyond 0 is the two-sided p-value.

With few seeds the seed resampling is coarse: three seeds that disagree in sign leave much of the bootstrap
on both sides of zero, and no bootstrap of three seeds can show more than three seeds show. A page's tests are
controlled together by Benjamini-Hochberg's false discovery rate (`control`): a difference is *a finding* only
when its adjusted p-value (q) is at most the rate, it is at least the minimum effect in size, and every seed's
own difference has its sign; otherwise it is inside the noise.

numpy only, pure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RESAMPLES = 10000
FALSE_DISCOVERY_RATE = 0.05
MIN_EFFECT = 0.01  # in accuracy: 1 point, 10 of 1,000 test images; nothing smaller is called a finding


def unpack(bits: str, total: int) -> np.ndarray:
    """A run's per-test-image correctness, stored as hex of np.packbits, back to (total,) bool."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(bits), dtype=np.uint8))[:total].astype(bool)


def pack(correct: np.ndarray) -> str:
    """(n,) bool per-test-image correctness as hex of np.packbits (how records keep it)."""
    return np.packbits(correct.astype(np.uint8)).tobytes().hex()


def paired_difference(a: list[np.ndarray], b: list[np.ndarray], resamples: int = RESAMPLES,
                      seed: int = 0) -> dict[str, Any]:
    """b minus a in accuracy, seeds paired in order ((n,) bool each, the same n test images): the mean over seeds
    and images, each seed's own difference, and the bootstrap over seeds and images (95% interval, two-sided p).
    Alone it is a family of one (q = p); `control` over a page's tests replaces q and `finding`.

    Exact and fast: an image's differences over the k seeds are one of at most 3^k patterns, so drawing n images
    with replacement is drawing pattern counts from a multinomial (n, each pattern's share of the images)."""
    diffs = np.stack([bi.astype(np.int8) - ai.astype(np.int8) for ai, bi in zip(a, b)])  # (k, n) in {-1, 0, 1}
    k, n = diffs.shape
    patterns, counts = np.unique(diffs, axis=1, return_counts=True)  # (k, u), (u,)
    rng = np.random.default_rng(seed)
    images = multinomial(rng, n, counts, resamples)  # (resamples, u): images drawn of each pattern
    per_seed = images @ patterns.T.astype(np.float64) / n  # (resamples, k): each seed's mean on the drawn images
    drawn = rng.multinomial(k, np.full(k, 1 / k), size=resamples) / k  # (resamples, k): seeds drawn, as weights
    means = np.sum(per_seed * drawn, axis=1)  # (resamples,)
    low, high = np.quantile(means, [0.025, 0.975])
    p = min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    result = {"difference": float(diffs.mean()), "per_seed": [float(d) for d in diffs.mean(axis=1)],
              "ci95": [float(low), float(high)], "p": float(p), "seeds": k, "images": n}
    control([result])  # a test alone is its own family; a page's `control` replaces this
    return result


def multinomial(rng: np.random.Generator, n: int, counts: np.ndarray, size: int) -> np.ndarray:
    """`size` draws of n items from categories of these counts with replacement, (size, u) int: the same
    distribution as rng.multinomial(n, counts / n, size), as one vectorised conditional binomial per category
    (numpy's multinomial draws row by row, 40x slower at 10,000 rows)."""
    out = np.zeros((size, len(counts)), dtype=np.int64)
    left, rest = np.full(size, n, dtype=np.int64), int(counts.sum())
    for j, count in enumerate(counts[:-1]):
        out[:, j] = rng.binomial(left, min(1.0, count / rest)) if rest else 0
        left -= out[:, j]
        rest -= int(count)
    out[:, -1] = left
    return out


def adjusted(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q), in the order given."""
    m = len(p_values)
    if not m:
        return []
    order = np.argsort(p_values, kind="stable")
    ranked = np.asarray(p_values, dtype=np.float64)[order] * m / np.arange(1, m + 1)
    q = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    out = np.empty(m)
    out[order] = q
    return [float(v) for v in out]


def control(results: list[dict[str, Any]], rate: float = FALSE_DISCOVERY_RATE,
            min_effect: float = MIN_EFFECT) -> None:
    """Control a page's tests together: each distinct result (by identity) gets its q-value, the family's size and
    the controlled `finding` (q <= rate and |difference| >= min_effect). Mutates the results, which the page's
    sections share, so the same comparison shown twice is one test."""
    distinct = list({id(r): r for r in results}.values())
    for result, q in zip(distinct, adjusted([r["p"] for r in distinct])):
        result.update(q=q, tests=len(distinct), rate=rate, min_effect=min_effect,
                      finding=bool(q <= rate and abs(result["difference"]) >= min_effect and agree(result)))


def agree(result: dict[str, Any]) -> bool:
    """Every seed's own difference has the sign of the mean: a bootstrap over a few seeds cannot see a seed it did
    not draw, so a difference some seed contradicts is never a finding."""
    return all(d * result["difference"] > 0 for d in result["per_seed"])


def why_not(result: dict[str, Any]) -> str:
    """Why a controlled result is not a finding, in a few words ('' when it is one)."""
    if result["finding"]:
        return ""
    if result["q"] > result["rate"]:
        if result["tests"] == 1:
            return f"p = {result['p']:.3f}"
        return f"q = {result['q']:.3f} over {result['tests']} tests"
    if abs(result["difference"]) < result["min_effect"]:
        return f"smaller than the {result['min_effect'] * 100:g} point minimum effect"
    return "the seeds disagree in sign"

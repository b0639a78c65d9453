"""Held-out test digits made as hard as photos of real handwriting, one distortion at a time.

MNIST's digits are centred by their centre of mass, upright, sharp, evenly lit and of one stroke width;
a photo of a digit is often none of these. Each distortion here changes one of those things, by the amount
the `distortions` params section sets, so that a model's accuracy on each says what it has not learned:

- rotation: turned by a random angle in [rotation_min_degrees, rotation_max_degrees], either way;
- thick / thin: strokes widened (grey dilation) or narrowed (grey erosion) over a square of that many pixels;
- blur: a Gaussian blur of blur_sigma pixels;
- low_resolution: averaged down to low_resolution_pixels a side, then bilinearly back up to 28;
- uneven_lighting: the light falls linearly by lighting_drop across the image in a random direction, on
  paper that is lighting_offset grey: in MNIST's inverted scale the background rises from the offset
  towards the dark side and the ink's contrast falls with it;
- off_centre: moved by a whole-pixel offset whose length is in [shift_min_pixels, shift_max_pixels]; MNIST
  leaves about 4 pixels around a digit, so at 4-6 pixels a third of the sample's test digits lose some ink past
  the edge (a median 4% of it), as a digit partly out of the frame of a photo does.

Pure and deterministic for a seed: images in, images out, never the inputs changed. The distortions work
on (N, 28, 28) float32 in [0, 1] with background 0 (ink 1); `distort_prepared` takes the test images as the
prepare stage wrote them (flat or 28x28x1, in any `prepare.normalize` scale) and returns them the same way.
scipy.ndimage is imported where it is used, so that evaluate (which needs only the names) does not load it.
"""

from __future__ import annotations

import numpy as np

from mnist_pipeline.config import Distortion, DistortionsParams

NAMES: tuple[Distortion, ...] = Distortion.__args__  # every distortion, in the order tables show them
SIDE = 28


def in_order(names: list[str] | dict[str, object]) -> list[str]:
    """`names` in NAMES' order (records are written with sorted keys)."""
    return [name for name in NAMES if name in names]


def split_name(name: str) -> str:
    """The predicted split of a distorted test set, as predictions.npz names it."""
    return f"test_{name}"


def metric_name(name: str) -> str:
    """A distortion's top-1 accuracy as the evaluation record's metrics name it."""
    return f"accuracy_{name}"


def describe(params: DistortionsParams) -> dict[str, str]:
    """What each applied distortion does, with its amounts, for records and tables."""
    p = params
    said = {
        "rotation": f"turned {p.rotation_min_degrees:g}-{p.rotation_max_degrees:g} degrees, either way",
        "thick": f"strokes thickened (grey dilation, {p.thick_pixels}x{p.thick_pixels} pixels)",
        "thin": f"strokes thinned (grey erosion, {p.thin_pixels}x{p.thin_pixels} pixels)",
        "blur": f"Gaussian blur, sigma {p.blur_sigma:g} px",
        "low_resolution": f"{p.low_resolution_pixels}x{p.low_resolution_pixels} pixels, bilinear back to {SIDE}x{SIDE}",
        "uneven_lighting": f"light falling by {p.lighting_drop:.0%} across, on {p.lighting_offset:.0%} grey paper",
        "off_centre": f"moved {p.shift_min_pixels:g}-{p.shift_max_pixels:g} pixels, any direction",
    }
    return {name: said[name] for name in p.apply}


def rng_for(name: str, seed: int) -> np.random.Generator:
    """One stream per distortion: what one draws does not depend on which others are applied."""
    return np.random.default_rng([seed, NAMES.index(name)])


def rotate(images: np.ndarray, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Each image turned about its centre by an angle uniform in [low, high] degrees, random sign."""
    from scipy import ndimage

    angles = rng.uniform(low, high, len(images)) * rng.choice([-1.0, 1.0], len(images))
    return np.stack([ndimage.rotate(image, angle, reshape=False, order=1, mode="constant", cval=0.0)
                     for image, angle in zip(images, angles)])


def thicken(images: np.ndarray, pixels: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.grey_dilation(images, size=(1, pixels, pixels), mode="constant", cval=0.0)


def thin(images: np.ndarray, pixels: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.grey_erosion(images, size=(1, pixels, pixels), mode="constant", cval=0.0)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma), mode="constant", cval=0.0)


def area_matrix(size: int, side: int = SIDE) -> np.ndarray:
    """(size, side): row i averages the input pixels under output pixel i, partial pixels by their share."""
    edges = np.linspace(0, side, size + 1)
    starts, ends = np.arange(side), np.arange(1, side + 1)
    overlap = np.clip(np.minimum(edges[1:, None], ends) - np.maximum(edges[:-1, None], starts), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def bilinear_matrix(size: int, side: int = SIDE) -> np.ndarray:
    """(side, size): linear interpolation between pixel centres (OpenCV's INTER_LINEAR), edges held."""
    centre = np.clip((np.arange(side) + 0.5) * size / side - 0.5, 0, size - 1)
    low = np.floor(centre).astype(int)
    high = np.minimum(low + 1, size - 1)
    weights = np.zeros((side, size))
    np.add.at(weights, (np.arange(side), low), 1 - (centre - low))
    np.add.at(weights, (np.arange(side), high), centre - low)
    return weights


def lower_resolution(images: np.ndarray, pixels: int) -> np.ndarray:
    """Averaged down to (pixels, pixels), then bilinearly back up to 28x28: both separable, rows then columns."""
    down, up = area_matrix(pixels), bilinear_matrix(pixels)
    small = np.einsum("ij,njk,lk->nil", down, images, down)  # (N, pixels, pixels)
    return np.einsum("ij,njk,lk->nil", up, small, up)


def light_unevenly(images: np.ndarray, drop: float, offset: float, rng: np.random.Generator) -> np.ndarray:
    """Inverted photo of ink on paper lit by light falling linearly from 1 to 1 - drop along a random direction:
    observed = light x (1 - offset) x (1 - image), returned inverted (1 - observed) as MNIST is."""
    angles = rng.uniform(0, 2 * np.pi, len(images))
    grid = (np.arange(SIDE) - (SIDE - 1) / 2) / (SIDE - 1)  # -0.5 .. 0.5 across the image
    along = np.cos(angles)[:, None, None] * grid[None, None, :] + np.sin(angles)[:, None, None] * grid[None, :, None]
    span = np.abs(np.cos(angles)) + np.abs(np.sin(angles))  # `along`'s range over the image, corner to corner
    ramp = along / span[:, None, None] + 0.5  # (N, 28, 28): 0 where the light is full, 1 where it is weakest
    light = 1 - drop * ramp
    return 1 - light * (1 - offset) * (1 - images)


def shift_choices(low: float, high: float) -> np.ndarray:
    """(K, 2) whole-pixel (rows, columns) offsets whose length is in [low, high]."""
    reach = int(np.floor(high))
    rows, cols = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    length = np.hypot(rows, cols)
    keep = (length >= low) & (length <= high)
    return np.stack([rows[keep], cols[keep]], axis=1)


def move(images: np.ndarray, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by a random offset among `shift_choices`; pixels moved in from outside are background."""
    choices = shift_choices(low, high)
    offsets = choices[rng.integers(0, len(choices), len(images))]
    out = np.zeros_like(images)
    for image, target, (dy, dx) in zip(images, out, offsets):
        target[max(dy, 0):SIDE + min(dy, 0), max(dx, 0):SIDE + min(dx, 0)] = \
            image[max(-dy, 0):SIDE + min(-dy, 0), max(-dx, 0):SIDE + min(-dx, 0)]
    return out


def distort(images: np.ndarray, name: str, params: DistortionsParams) -> np.ndarray:
    """(N, 28, 28) float32 in [0, 1], background 0 -> the same shape and range, distorted by `name`."""
    p, rng = params, rng_for(name, params.seed)
    done = {
        "rotation": lambda: rotate(images, p.rotation_min_degrees, p.rotation_max_degrees, rng),
        "thick": lambda: thicken(images, p.thick_pixels),
        "thin": lambda: thin(images, p.thin_pixels),
        "blur": lambda: blur(images, p.blur_sigma),
        "low_resolution": lambda: lower_resolution(images, p.low_resolution_pixels),
        "uneven_lighting": lambda: light_unevenly(images, p.lighting_drop, p.lighting_offset, rng),
        "off_centre": lambda: move(images, p.shift_min_pixels, p.shift_max_pixels, rng),
    }[name]()
    return np.clip(done, 0, 1).astype(np.float32)


def to_unit(x: np.ndarray, normalized: bool | str) -> np.ndarray:
    """Prepared images (any layout, `prepare.normalize`'s scale) -> (N, 28, 28) float32 in [0, 1]."""
    images = x.reshape(len(x), SIDE, SIDE).astype(np.float32)
    if normalized == "centered":
        return (images * np.float32(127) + np.float32(127)) / np.float32(255)
    return images if normalized else images / np.float32(255)


def from_unit(images: np.ndarray, normalized: bool | str, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of `to_unit`: back to the prepared scale and `shape` (flat or 28x28x1)."""
    if normalized == "centered":
        scaled = (images * np.float32(255) - np.float32(127)) / np.float32(127)
    else:
        scaled = images if normalized else images * np.float32(255)
    return scaled.reshape(shape).astype(np.float32)


def distort_prepared(x_test: np.ndarray, normalized: bool | str, params: DistortionsParams) -> dict[str, np.ndarray]:
    """The prepared test images under each applied distortion, in the prepared layout and scale:
    {split_name(name): array shaped like x_test}."""
    unit = to_unit(x_test, normalized)
    return {split_name(name): from_unit(distort(unit, name, params), normalized, x_test.shape)
            for name in params.apply}

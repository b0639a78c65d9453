"""Real images in: read a PNG/JPEG safely and make it look like an MNIST digit.

MNIST was made this way (LeCun et al.): white ink on black, the ink's bounding box fitted
into 20x20 keeping the aspect ratio, then placed in a 28x28 field so that its centre of mass
is the centre. A photo of a digit on paper is the opposite (dark ink, light background), of
any size, off-centre and JPEG-compressed; `mnist_style` undoes all of that.

Also: the resize of 28x28 gray images to larger RGB ones, and the frozen VGG16 base that the
features stage and predict share.

`read_gray` refuses what should not be decoded: files over a byte limit, images over a pixel
limit (a decompression bomb: a few KiB of PNG that inflate to gigabytes), non-images and
truncated images, each with a one-line error naming the file. It reads 16-bit grayscale PNGs
(scans) scaled to 0..255, and phones' MPO files (a JPEG plus extra frames) by their first frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnist_pipeline.errors import PipelineError, first_line

MAX_FILE_BYTES = 20 * 2**20  # 20 MiB: a phone photo is a few MiB
MAX_PIXELS = 40_000_000  # 40 megapixels; Pillow's own bomb limit is 89 MP
FORMATS = ("PNG", "JPEG", "MPO")  # MPO: a phone's JPEG with extra frames after the first (stereo, depth)
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # Pillow's modes for 16-bit grayscale PNGs
FIELD, BOX = 28, 20  # MNIST: 28x28 field, digit fitted into 20x20


def read_gray(path: Path, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PNG/JPEG (or MPO) file -> uint8 (H, W) grayscale; transparent parts become white paper."""
    return decode_gray(path, path, path.stat().st_size, max_bytes, max_pixels)


def decode_gray(source: Path | bytes, path: Path | str, size: int, max_bytes: int = MAX_FILE_BYTES,
                max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """`read_gray` of a file or of bytes (an upload); `path` names it in the errors, `size` is its length."""
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    if size > max_bytes:
        raise PipelineError(f"{path}: file is {size / 2**20:.1f} MiB, over the limit of {max_bytes / 2**20:.1f} MiB")
    if size == 0:
        raise PipelineError(f"{path}: empty file, not an image")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            if image.format not in FORMATS:
                raise PipelineError(f"{path}: {image.format} image; only PNG and JPEG are read")
            width, height = image.size
            if width * height > max_pixels:
                raise PipelineError(f"{path}: {width}x{height} is {width * height:,} pixels, over the limit of "
                                    f"{max_pixels:,} (refused unread: a decompression bomb?)")
            image.load()  # decode now, inside the try: a truncated file fails here (an MPO: its first frame)
            return to_gray(ImageOps.exif_transpose(image))  # phone photos store rotation in EXIF
    except UnidentifiedImageError:
        raise PipelineError(f"{path}: not an image (PNG or JPEG expected)") from None
    except Image.DecompressionBombError as exc:
        raise PipelineError(f"{path}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PipelineError(f"{path}: unreadable image ({first_line(exc, 120)})") from None


def to_gray(image: Any) -> np.ndarray:
    """A decoded Pillow image -> uint8 (H, W): 16-bit gray scaled (not clipped) to 0..255, transparency on white."""
    from PIL import Image

    if image.mode in WIDE_MODES:
        wide = np.asarray(image).astype(np.float64)  # (H, W) in 0..65535
        return np.round(np.clip(wide, 0, 65535) / 257).astype(np.uint8)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def mnist_style(gray: np.ndarray) -> np.ndarray:
    """uint8 (H, W) photo of one digit -> float32 (28, 28) in [0, 1], prepared like MNIST."""
    import cv2
    from scipy import ndimage

    x = gray.astype(np.float32)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    if np.median(border) > 127:  # light paper, dark ink: invert to MNIST's white on black
        x = 255 - x
        border = 255 - border
    x = np.clip(x - np.median(border), 0, None)  # grey paper or uneven light -> black
    if x.max() < 32:
        raise PipelineError("no ink found: the image is blank or has no contrast")
    ink = x > 0.25 * x.max()  # JPEG ringing and paper texture stay below this
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))  # cv2 wants (w, h)
    shrinking = scale < 1
    box = cv2.resize(crop, new_size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    box = np.clip(box / box.max(), 0, 1)
    com_row, com_col = ndimage.center_of_mass(box)
    top = int(np.clip(round(FIELD / 2 - com_row), 0, FIELD - box.shape[0]))
    left = int(np.clip(round(FIELD / 2 - com_col), 0, FIELD - box.shape[1]))
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top:top + box.shape[0], left:left + box.shape[1]] = box
    return field


def image_files(paths: list[Path]) -> list[Path]:
    """Files named, plus the PNG/JPEG files inside folders named (sorted, not recursive)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.exists():
            found.append(path)
        else:
            raise PipelineError(f"{path}: no such file or folder")
    return found


# --- resizing for models that take larger colour images (VGG16) --------------------------
# Output stays uint8: (60000, 48, 48, 3) uint8 is 415 MB where the tutorial's float64 arrays
# are 3.3 GB. Images are resized in batches, each batch handed to one `cv2.resize` call as the
# channels of a single (28, 28, B) image (OpenCV 5 allows up to 128 channels): the same pixels
# as a loop over images, in about half the time.

CV_MAX_CHANNELS = 128  # OpenCV 5 takes at most 128 channels per image


def interpolation_flag(name: str) -> int:
    """OpenCV's constant for an interpolation name."""
    import cv2

    return {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR,
            "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}[name]


def resize_gray_to_rgb(images: np.ndarray, size: int, interpolation: str = "linear",
                       batch: int = CV_MAX_CHANNELS) -> np.ndarray:
    """uint8 (N, 28, 28) -> uint8 (N, size, size, 3), gray copied to R, G and B."""
    import cv2

    flag = interpolation_flag(interpolation)
    step = max(1, min(batch, CV_MAX_CHANNELS))
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for start in range(0, len(images), step):
        chunk = np.ascontiguousarray(images[start:start + step].transpose(1, 2, 0))  # (28, 28, B)
        resized = cv2.resize(chunk, (size, size), interpolation=flag)
        resized = resized.reshape(size, size, -1).transpose(2, 0, 1)  # (B, size, size); B=1 loses its axis
        out[start:start + step] = resized[..., np.newaxis]  # broadcast gray into 3 channels
    return out


# --- the frozen VGG16 base ----------------------------------------------------------------

VGG16_NOTOP = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + VGG16_NOTOP


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights (`$KERAS_HOME/models`, default ~/.keras/models)."""
    import os

    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def weights_error(detail: str) -> PipelineError:
    """The one-line error for VGG16 weights that cannot be had, saying where to put them."""
    return PipelineError(
        f"VGG16 ImageNet weights unavailable ({detail}): put {VGG16_NOTOP} from {VGG16_URL} "
        f"into {keras_models_dir()}/, or set features.weights to a local .h5 path or 'none' (random weights)"
    )


def vgg16_base(weights: str, size: int) -> Any:
    """The frozen VGG16 convolutional base for (size, size, 3) inputs."""
    import keras

    if weights not in ("imagenet", "none") and not Path(weights).is_file():
        raise weights_error(f"file not found: {weights}")
    try:
        base = keras.applications.VGG16(include_top=False, input_shape=(size, size, 3),
                                        weights=None if weights == "none" else weights)
    except Exception as exc:  # Keras' download raises several kinds; all mean "no weights"
        if weights == "imagenet":
            raise weights_error(first_line(exc, 200)) from None
        raise
    base.trainable = False
    return base


def extract(base: Any, images: np.ndarray, batch: int) -> np.ndarray:
    """uint8 (N, S, S, 3) -> float32 (N, 512): the base's output, flattened."""
    import keras

    outputs = []
    for start in range(0, len(images), batch):
        chunk = keras.applications.vgg16.preprocess_input(images[start:start + batch].astype(np.float32))
        outputs.append(np.asarray(base(chunk, training=False)).reshape(len(chunk), -1))
    return np.concatenate(outputs).astype(np.float32)

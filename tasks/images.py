"""Real images in: read a PNG/JPEG safely and make it look like an MNIST digit.

MNIST was made this way (LeCun et al.): white ink on black, the ink's bounding box fitted
into 20x20 keeping the aspect ratio, then placed in a 28x28 field so that its centre of mass
is the centre. A photo of a digit on paper is the opposite (dark ink, light background), of
any size, off-centre and JPEG-compressed; `mnist_style` undoes all of that.

`read_gray` refuses what should not be decoded: files over a byte limit, images over a pixel
limit (a decompression bomb: a few KiB of PNG that inflate to gigabytes), non-images and
truncated images, each with a one-line error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.errors import PipelineError

MAX_FILE_BYTES = 20 * 2**20  # 20 MiB: a phone photo is a few MiB
MAX_PIXELS = 40_000_000  # 40 megapixels; Pillow's own bomb limit is 89 MP
FIELD, BOX = 28, 20  # MNIST: 28x28 field, digit fitted into 20x20


def read_gray(path: Path, max_bytes: int = MAX_FILE_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PNG/JPEG file -> uint8 (H, W) grayscale; transparent parts become white paper."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = path.stat().st_size
    if size > max_bytes:
        raise PipelineError(f"{path}: file is {size / 2**20:.1f} MiB, over the limit of {max_bytes / 2**20:.1f} MiB")
    if size == 0:
        raise PipelineError(f"{path}: empty file, not an image")
    try:
        with Image.open(path) as image:
            if image.format not in ("PNG", "JPEG"):
                raise PipelineError(f"{path}: {image.format} image; only PNG and JPEG are read")
            width, height = image.size
            if width * height > max_pixels:
                raise PipelineError(f"{path}: {width}x{height} is {width * height:,} pixels, over the limit of "
                                    f"{max_pixels:,} (refused unread: a decompression bomb?)")
            image.load()  # decode now, inside the try: a truncated file fails here
            image = ImageOps.exif_transpose(image)  # phone photos store rotation in EXIF
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(paper, rgba)
            return np.asarray(image.convert("L"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise PipelineError(f"{path}: not an image (PNG or JPEG expected)") from None
    except Image.DecompressionBombError as exc:
        raise PipelineError(f"{path}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PipelineError(f"{path}: unreadable image ({str(exc).splitlines()[0][:120]})") from None


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

"""One robust image decoder for all of mfr: any common file in, RGB uint8 H x W x 3 out.

Conversions (documented behaviour):

- EXIF orientation is applied, so the array is upright as a viewer shows it.
- Grayscale, bilevel, palette, CMYK, YCbCr, LAB and HSV images are converted to RGB.
- 16-bit images are reduced to 8 bits by rounding ``value / 257`` (so 65535 -> 255); 16-bit
  RGB PNGs are reduced by Pillow itself (high byte).
- Alpha (RGBA, LA, palette with transparency) is composited on black:
  ``rgb * alpha / 255``, rounded. Fully transparent pixels become black.
- Multi-frame files (GIF, TIFF) give their first frame.

Rejected with :class:`~mfr.errors.BadImageError` ("<path>: <reason>"): a missing file, a
folder, a 0-byte file, a file that is not an image, truncated or corrupt image data, and an
image with more than ``max_pixels`` pixels (a decompression bomb; checked from the header
before any pixel is decoded).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mfr.errors import BadImageError, MfrError
from mfr.io import atomic_write

#: Default pixel limit: far above any face photo, far below a memory-exhausting bomb.
DEFAULT_MAX_PIXELS = 64_000_000

_EXIF_ORIENTATION = 0x0112
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to an RGB uint8 array (H, W, 3); see the module docstring for the rules."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        from mfr.io import missing_file

        raise missing_file(path, "file", cls=BadImageError) from None
    except OSError as error:
        raise BadImageError(f"{path}: cannot read file ({error.strerror or error})") from None
    if path.is_dir():
        raise BadImageError(f"{path}: is a folder, not an image file")
    if size == 0:
        raise BadImageError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise BadImageError(_bomb_message(path, width, height, max_pixels))
                image.load()
                return _to_rgb_array(_apply_exif_orientation(image))
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError(f"{path}: not an image file (unknown or unsupported format)") from None
    except Image.DecompressionBombError as error:
        raise BadImageError(f"{path}: decompression bomb rejected by Pillow ({error})") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        reason = str(error) or type(error).__name__
        if "truncated" in reason.lower() or isinstance(error, EOFError):
            raise BadImageError(f"{path}: truncated image data ({reason})") from None
        raise BadImageError(f"{path}: corrupt image data ({reason})") from None


def _bomb_message(path: Path, width: int, height: int, max_pixels: int) -> str:
    return (
        f"{path}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
        f"{max_pixels:,} (possible decompression bomb)"
    )


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    # getexif() is cheap compared to the decode; only transpose when there is something to do.
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(image)
    return image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        return np.array(image)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.int64)
        gray = ((np.clip(values, 0, 65535) + 128) // 257).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float32)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[:, :, 3:4]
        return ((rgba[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
    return np.array(image.convert("RGB"))


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB uint8 (H, W, 3) or single-channel uint8 (H, W) array atomically.

    The format follows the suffix (PNG, JPEG at quality 95, BMP, WebP, TIFF).
    """
    path = Path(path)
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    ):
        raise MfrError(
            f"{path}: cannot write an array of shape {array.shape} and dtype {array.dtype}; "
            "expected uint8 H x W x 3 (RGB) or H x W"
        )
    suffix = path.suffix.lower()
    image_format = Image.registered_extensions().get(suffix)
    if image_format is None:
        raise MfrError(f"{path}: unknown image suffix {suffix!r}")
    with atomic_write(path, "wb") as handle:
        Image.fromarray(np.ascontiguousarray(array)).save(
            handle, format=image_format, **_SAVE_OPTIONS.get(image_format, {})
        )


def shrink_to_side(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``image`` (H, W, ...) shrunk (area filter) so that its longer side is at most ``side``
    px, and the factor applied (1.0: returned as it is); a point of the copy is at
    ``point / factor`` in the image."""
    import cv2

    height, width = image.shape[:2]
    factor = min(1.0, side / max(height, width))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, factor


def resize_square(image: np.ndarray, size: int, crop: float = 1.0) -> np.ndarray:
    """Resize to ``size`` x ``size`` (area filter when shrinking); with ``crop`` < 1, first take
    that fraction of the shorter side from the centre (1.0: the whole image, squashed)."""
    import cv2

    if crop < 1.0:
        height, width = image.shape[:2]
        side = int(round(min(height, width) * crop))
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top : top + side, left : left + side]
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)

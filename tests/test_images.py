"""read_image / write_image: every bad-file kind is rejected by name, every mode decodes right."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from mfr.data.images import read_image, write_image
from mfr.data.layout import IMAGE_SUFFIXES, is_image_path
from mfr.errors import BadImageError, MfrError


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's signature)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


@pytest.fixture
def photo(rng):
    return rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)


def _corrupt_png(array: np.ndarray) -> bytes:
    """A PNG whose compressed pixel data has one flipped byte."""
    data = bytearray(_png_bytes(array))
    data[data.index(b"IDAT") + 10] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("a.png", _corrupt_png, "corrupt image data"),
        ("b.jpg", lambda p: b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "not an image file"),
        ("c.jpg", lambda p: _jpeg_bytes(p)[: len(_jpeg_bytes(p)) // 2], "truncated image data"),
        ("d.png", lambda p: _png_bytes(p)[: len(_png_bytes(p)) // 2], "truncated image data"),
        ("e.png", lambda p: b"", "empty file (0 bytes)"),
        ("f.jpg", lambda p: b"this is a text file, not a photo\n" * 10, "not an image file"),
        (
            "g.png",
            lambda p: _bomb_png(10_000, 10_000),
            "over the limit of 64,000,000 (possible decompression bomb)",
        ),
        ("h.png", lambda p: _bomb_png(100_000, 100_000), "decompression bomb"),
    ],
)
def test_bad_file_raises_bad_image_error_naming_file_and_reason(
    tmp_path, photo, name, make, reason
):
    path = tmp_path / name
    path.write_bytes(make(photo))
    with pytest.raises(BadImageError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert reason in message[len(f"{path}: ") :]


def test_missing_file_and_folder_raise_bad_image_error(tmp_path):
    with pytest.raises(BadImageError, match=r"missing\.png: file not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(BadImageError, match="is a folder"):
        read_image(tmp_path)


def test_pixel_limit_is_checked_from_header_before_decoding(tmp_path, photo):
    path = tmp_path / "small.png"
    path.write_bytes(_png_bytes(photo))
    assert read_image(path).shape == (24, 32, 3)
    with pytest.raises(BadImageError, match="32x24 = 768 pixels, over the limit of 100"):
        read_image(path, max_pixels=100)


def test_rgb_png_round_trips_exactly(tmp_path, photo):
    path = tmp_path / "a.png"
    write_image(path, photo)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == photo.shape and out.flags.writeable
    np.testing.assert_array_equal(out, photo)


def test_jpeg_written_at_quality_95_is_close(tmp_path, rng):
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    path = tmp_path / "a.JPG"
    write_image(path, smooth)
    assert Image.open(path).format == "JPEG"
    assert np.abs(read_image(path).astype(int) - smooth).max() <= 4


def test_grayscale_becomes_three_equal_channels(tmp_path, rng):
    gray = rng.integers(0, 256, size=(10, 14), dtype=np.uint8)
    path = tmp_path / "g.png"
    Image.fromarray(gray, mode="L").save(path)
    out = read_image(path)
    assert out.shape == (10, 14, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_sixteen_bit_gray_scales_to_eight_bit(tmp_path):
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), values)
    assert Image.open(path).mode.startswith("I")
    out = read_image(path)
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 128])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_sixteen_bit_rgb_keeps_channel_order_and_scale(tmp_path):
    rgb16 = np.zeros((2, 3, 3), dtype=np.uint16)
    rgb16[..., 0] = 65535  # red full
    rgb16[..., 2] = 257 * 100  # blue 100
    path = tmp_path / "c16.png"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])  # OpenCV writes BGR
    out = read_image(path)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 100])


def test_palette_image_decodes_to_its_palette_colours(tmp_path):
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    path = tmp_path / "p.png"
    image.save(path)
    out = read_image(path)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [0, 255, 0])
    np.testing.assert_array_equal(out[1, 0], [0, 0, 255])


def test_cmyk_decodes_to_rgb(tmp_path):
    cmyk = np.zeros((2, 2, 4), dtype=np.uint8)
    cmyk[0, 0] = [255, 0, 0, 0]  # cyan
    cmyk[0, 1] = [0, 255, 0, 0]  # magenta
    cmyk[1, 0] = [0, 0, 0, 255]  # black
    path = tmp_path / "k.tif"
    Image.fromarray(cmyk, mode="CMYK").save(path)
    out = read_image(path)
    np.testing.assert_array_equal(out[0, 0], [0, 255, 255])
    np.testing.assert_array_equal(out[0, 1], [255, 0, 255])
    np.testing.assert_array_equal(out[1, 0], [0, 0, 0])
    np.testing.assert_array_equal(out[1, 1], [255, 255, 255])


def test_rgba_and_la_are_composited_on_black(tmp_path):
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = read_image(path)
    np.testing.assert_array_equal(out[0, 0], [200, 100, 50])
    np.testing.assert_array_equal(out[0, 1], [0, 0, 0])
    expected = (np.array([200, 100, 50]) * 128 + 127) // 255
    np.testing.assert_array_equal(out[0, 2], expected)

    la = np.array([[[90, 255], [90, 0]]], np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    np.testing.assert_array_equal(read_image(path)[0], [[90, 90, 90], [0, 0, 0]])


@pytest.mark.parametrize(
    ("orientation", "expected_transform"),
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # stored image must be turned 90 degrees clockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_applied_on_non_square_image(tmp_path, orientation, expected_transform):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # wide: 20 rows, 40 columns
    stored[:10, :10] = [255, 0, 0]  # red block in the top-left corner
    stored[10:, 30:] = [0, 0, 255]  # blue block in the bottom-right corner
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    image.save(path, format="JPEG", quality=98, exif=exif.tobytes())
    out = read_image(path)
    expected = expected_transform(stored)
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected).mean() < 3


def test_write_image_rejects_wrong_arrays_and_suffixes(tmp_path):
    with pytest.raises(MfrError, match="expected uint8"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(MfrError, match="unknown image suffix"):
        write_image(tmp_path / "x.xyz", np.zeros((4, 4, 3), dtype=np.uint8))
    write_image(tmp_path / "label.png", np.full((3, 5), 255, dtype=np.uint8))
    assert Image.open(tmp_path / "label.png").mode == "L"
    assert not list(tmp_path.glob(".*.tmp"))


def test_image_suffixes_are_lower_case_and_matched_case_insensitively():
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)
    assert is_image_path("A/B.JPG") and is_image_path("x.png") and not is_image_path("x.txt")


def test_shrink_to_side_caps_the_longer_side_and_returns_the_factor_back_to_image_pixels():
    from mfr.data.images import shrink_to_side

    image = np.zeros((800, 1600, 3), np.uint8)
    image[400:480, 1000:1200] = 255  # a bright block at x 1000-1200, y 400-480
    small, factor = shrink_to_side(image, 640)
    assert small.shape == (320, 640, 3) and factor == 0.4
    ys, xs = np.nonzero(small[:, :, 0] > 127)
    assert abs(xs.min() / factor - 1000) <= 3 and abs(ys.max() / factor - 479) <= 3
    same, factor = shrink_to_side(image[:100, :200], 640)
    assert factor == 1.0 and same.shape == (100, 200, 3)

"""fmlib.png writes PNGs that decode to the pixels given (Pillow's decoder, which checks
each chunk's CRC), smaller than storing them, and refuses what is not 8-bit RGB."""

import io

import numpy as np
import PIL.Image
import pytest

from fmlib.figures import start
from fmlib.png import png_bytes


def decoded(data: bytes) -> np.ndarray:
    with PIL.Image.open(io.BytesIO(data)) as image:
        image.verify()  # signature, chunk order and every CRC
    with PIL.Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (64, 129, 3)])
def test_random_pixels_decode_to_themselves(shape):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(decoded(png_bytes(rgb)), rgb)


def test_a_live_views_picture_decodes_to_itself_and_compresses():
    view = start.ConditionalPath()
    view.update()
    rgb = view.raster()
    data = png_bytes(rgb)
    assert np.array_equal(decoded(data), rgb)
    assert len(data) < rgb.nbytes / 5  # flat colours: zlib takes most of it
    assert view.encode(rgb) == data  # the panel's pictures are these bytes


def test_not_8_bit_rgb_is_refused():
    for bad in (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3)), np.zeros((4, 4), np.uint8)):
        with pytest.raises(ValueError, match="rgb must be uint8 pixels"):
            png_bytes(bad)
    with pytest.raises(ValueError, match="at least one pixel"):
        png_bytes(np.zeros((0, 4, 3), np.uint8))

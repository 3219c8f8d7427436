import io
import struct
import warnings
import zlib
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageFile  # noqa: E402

from blocklearn.vision.core import (ImageReadError, PILImage, PILImageBW, PILMask, TensorImage, TensorImageBW,  # noqa: E402
                         TensorMask, ToTensor, image2tensor)
from blocklearn.blocks.show import get_grid  # noqa: E402
from blocklearn.vision.show import show_image, show_images  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / 'data'
PHOTO = DATA / 'photos' / 'images' / 'fishes_1.jpg'  # 320x213 RGB
FASHION = sorted((DATA / 'fashion_tiny' / 'train' / 'ankle_boot').glob('*.png'))[0]  # 28x28 L


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


def pixels(img) -> np.ndarray:
    return np.asarray(img).astype(int)


def header(path: Path) -> Image.Image:
    """The file's mode, size and info as PIL reads them from its header (the file closed again)."""
    with Image.open(path) as im:
        return im


def quadrant_image(w: int, h: int) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:h // 2, :w // 2] = (255, 0, 0)
    arr[:h // 2, w // 2:] = (0, 255, 0)
    arr[h // 2:, :w // 2] = (0, 0, 255)
    arr[h // 2:, w // 2:] = (255, 255, 255)
    return Image.fromarray(arr)


def save_with_orientation(img: Image.Image, path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif)


def png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG that declares w x h pixels (its data is a stub: opening reads only the header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64))
                     + chunk(b'IEND', b''))


# --- opening: every kind of source gives the same upright RGB pixels ---

def test_create_repr_and_same_pixels_from_every_source():
    ref = pixels(Image.open(PHOTO).convert('RGB'))
    img = PILImage.create(PHOTO)
    assert repr(img) == 'PILImage mode=RGB size=320x213'
    assert type(img) is PILImage
    sources = [str(PHOTO), PHOTO.read_bytes(), io.BytesIO(PHOTO.read_bytes()), Image.open(PHOTO),
               np.asarray(Image.open(PHOTO)), torch.from_numpy(np.array(Image.open(PHOTO))).permute(2, 0, 1)]
    for src in [PHOTO] + sources:
        assert np.array_equal(pixels(PILImage.create(src)), ref), type(src)


def test_create_bw_from_colour_and_grayscale_files():
    bw = PILImageBW.create(PHOTO)
    assert repr(bw) == 'PILImageBW mode=L size=320x213'
    ref = pixels(Image.open(PHOTO).convert('L'))
    # libjpeg decodes the luma directly; it may differ from PIL's RGB->L by the chroma subsampling error
    assert np.abs(pixels(bw) - ref).mean() < 1.0
    fashion = PILImageBW.create(FASHION)
    assert fashion.size == (28, 28) and np.array_equal(pixels(fashion), pixels(Image.open(FASHION)))
    assert PILImage.create(FASHION).mode == 'RGB'


def test_create_float_tensor_and_array_in_unit_range():
    t = torch.zeros(3, 4, 5)
    t[0] = 1.0
    t[1] = 0.5
    img = PILImage.create(t)
    assert img.size == (5, 4) and tuple(pixels(img)[0, 0]) == (255, 128, 0)
    bw = PILImageBW.create(np.full((4, 5), 0.25, np.float32))
    assert pixels(bw)[0, 0] == 64


def test_create_rejects_unknown_source_and_bad_shapes():
    with pytest.raises(TypeError, match='cannot open a int'):
        PILImage.create(3)
    with pytest.raises(ValueError, match=r'\(H,W,3\)'):
        PILImage.create(np.zeros((4, 5, 2), np.uint8))


# --- EXIF orientation ---

def test_exif_orientation_6_comes_out_upright(tmp_path):
    upright = quadrant_image(40, 80)                 # 40 wide, 80 tall, red top-left
    path = tmp_path / 'rotated.jpg'
    save_with_orientation(upright.transpose(Image.Transpose.ROTATE_90), path, 6)   # stored 80x40
    assert header(path).size == (80, 40)
    for src in (path, path.read_bytes(), Image.open(path)):
        img = PILImage.create(src)
        assert img.size == (40, 80)
        arr = pixels(img)
        assert np.abs(arr[5, 5] - (255, 0, 0)).max() < 40        # red top-left
        assert np.abs(arr[5, 35] - (0, 255, 0)).max() < 40       # green top-right
        assert np.abs(arr[75, 5] - (0, 0, 255)).max() < 40       # blue bottom-left
    # the rotation is not applied a second time when the image is converted again
    again = PILImageBW.create(PILImage.create(path))
    assert again.size == (40, 80) and abs(pixels(again)[5, 5] - 76) < 20    # red in L is 76


def test_exif_orientation_with_reduced_decode_keeps_the_geometry(tmp_path):
    upright = quadrant_image(400, 800)
    path = tmp_path / 'big_rotated.jpg'
    save_with_orientation(upright.transpose(Image.Transpose.ROTATE_90), path, 6)
    lazy = PILImage.create(path)
    full = PILImage.create(path)
    full.load()
    small = lazy.resize_box((50, 100), (0, 0, 400, 800))          # an 8x reduction: decoded at 1/8 scale
    ref = full.resize_box((50, 100), (0, 0, 400, 800))
    assert small.size == ref.size == (50, 100) and type(small) is PILImage
    assert np.abs(pixels(small) - pixels(ref)).mean() < 3
    assert np.abs(pixels(small)[10, 10] - (255, 0, 0)).max() < 40
    assert lazy.size == (400, 800) and np.asarray(lazy).shape == (800, 400, 3)   # the original is still full size


# --- modes ---

def test_grayscale_png_becomes_rgb(tmp_path):
    Image.fromarray(np.array([[0, 100], [200, 255]], np.uint8)).save(tmp_path / 'l.png')
    arr = pixels(PILImage.create(tmp_path / 'l.png'))
    assert arr.shape == (2, 2, 3) and tuple(arr[1, 0]) == (200, 200, 200)


def test_palette_png_keeps_colours_and_composites_transparency_on_white(tmp_path):
    p = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), mode='P')
    p.putpalette([0, 0, 0, 10, 200, 30, 250, 5, 90] + [0] * 759)
    p.save(tmp_path / 'p.png')
    arr = pixels(PILImage.create(tmp_path / 'p.png'))
    assert tuple(arr[0, 1]) == (10, 200, 30) and tuple(arr[1, 0]) == (250, 5, 90) and tuple(arr[0, 0]) == (0, 0, 0)
    p.save(tmp_path / 'pt.png', transparency=0)                   # index 0 (black) is transparent
    assert header(tmp_path / 'pt.png').info['transparency'] == 0
    arr = pixels(PILImage.create(tmp_path / 'pt.png'))
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[0, 1]) == (10, 200, 30)


def test_rgba_and_la_composite_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 0)            # transparent black -> white, not black
    rgba[0, 1] = (255, 0, 0, 255)        # opaque red
    rgba[1, 0] = (255, 0, 0, 128)        # half red over white -> pink
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    arr = pixels(PILImage.create(tmp_path / 'a.png'))
    assert tuple(arr[0, 0]) == (255, 255, 255) and tuple(arr[0, 1]) == (255, 0, 0)
    assert arr[1, 0, 0] == 255 and abs(arr[1, 0, 1] - 127) <= 1
    la = Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8), 'LA')
    la.save(tmp_path / 'la.png')
    bw = pixels(PILImageBW.create(tmp_path / 'la.png'))
    assert bw.tolist() == [[255, 50]]


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.array([[0, 257, 32768, 65535]], np.uint16)).save(tmp_path / 'i16.png')
    assert header(tmp_path / 'i16.png').mode.startswith('I;16')
    assert pixels(PILImageBW.create(tmp_path / 'i16.png')).tolist() == [[0, 1, 128, 255]]
    assert pixels(PILImage.create(tmp_path / 'i16.png'))[0, 3].tolist() == [255, 255, 255]


def test_32_bit_and_float_images_are_scaled_by_their_range(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / 'f.tif')
    assert header(tmp_path / 'f.tif').mode == 'F'
    assert pixels(PILImageBW.create(tmp_path / 'f.tif')).tolist() == [[0, 128, 255]]
    Image.fromarray(np.array([[-1000, 0, 1000]], np.int32)).save(tmp_path / 'i.tif')
    assert header(tmp_path / 'i.tif').mode == 'I'
    assert pixels(PILImageBW.create(tmp_path / 'i.tif')).tolist() == [[0, 128, 255]]


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new('CMYK', (16, 16), (0, 255, 255, 0))          # no cyan, full magenta+yellow: red
    cmyk.save(tmp_path / 'cmyk.jpg', quality=95)
    assert header(tmp_path / 'cmyk.jpg').mode == 'CMYK'
    arr = pixels(PILImage.create(tmp_path / 'cmyk.jpg'))
    assert np.abs(arr[8, 8] - (255, 0, 0)).max() < 10


def test_mask_keeps_palette_indices(tmp_path):
    m = Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8), mode='P')
    m.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    m.save(tmp_path / 'mask.png')
    mask = PILMask.create(tmp_path / 'mask.png')
    assert mask.mode == 'L' and pixels(mask).tolist() == [[0, 1], [2, 3]]
    t = ToTensor()(mask)
    assert type(t) is TensorMask and t.shape == (2, 2) and t.tolist() == [[0, 1], [2, 3]]


# --- bad files ---

def test_zero_byte_file(tmp_path):
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    with pytest.raises(ImageReadError, match='empty') as e:
        PILImage.create(path)
    assert str(path) in str(e.value) and 'Download it again' in str(e.value)
    assert isinstance(e.value, OSError)


def test_truncated_jpeg_fails_at_create(tmp_path):
    data = PHOTO.read_bytes()
    path = tmp_path / 'cut.jpg'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageReadError, match='truncated') as e:
        PILImage.create(path)
    assert str(path) in str(e.value) and 'LOAD_TRUNCATED_IMAGES' in str(e.value)


def test_truncated_jpeg_loads_when_the_user_allows_it(tmp_path, monkeypatch):
    data = PHOTO.read_bytes()
    path = tmp_path / 'cut.jpg'
    path.write_bytes(data[:len(data) // 2])
    monkeypatch.setattr(ImageFile, 'LOAD_TRUNCATED_IMAGES', True)
    img = PILImage.create(path)
    assert np.asarray(img).shape == (213, 320, 3)


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    Image.open(PHOTO).save(buf, 'PNG')
    path = tmp_path / 'cut.png'
    path.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match='truncated') as e:
        PILImage.create(path)
    assert str(path) in str(e.value)


def test_text_named_jpg(tmp_path):
    path = tmp_path / 'notes.jpg'
    path.write_text('this is not a picture\n')
    with pytest.raises(ImageReadError, match='not an image') as e:
        PILImage.create(path)
    assert str(path) in str(e.value) and "b'this is not a pi'" in str(e.value) and 'Delete it' in str(e.value)
    path.write_text('<html><body>404 Not Found</body></html>')
    with pytest.raises(ImageReadError, match='HTML page'):
        PILImage.create(path)


def test_decompression_bomb_error_says_how_big_and_how_to_fix(tmp_path):
    path = tmp_path / 'huge.png'
    png_header_only(path, 30000, 30000)
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError) as e:
        PILImage.create(path)
    msg = str(e.value)
    assert str(path) in msg and '900,000,000 pixels' in msg and 'MAX_IMAGE_PIXELS' in msg and 'resize_images' in msg
    assert Image.MAX_IMAGE_PIXELS == limit


def test_decompression_bomb_warning_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / 'big.png'
    quadrant_image(40, 40).save(path)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)           # 1,600 pixels: over the limit, under twice it
    with pytest.warns(Image.DecompressionBombWarning) as record:
        img = PILImage.create(path)
    ours = [str(w.message) for w in record if str(path) in str(w.message)]
    assert len(ours) == 1 and '40x40' in ours[0] and 'resize_images' in ours[0]
    assert img.size == (40, 40)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 700)            # over twice the limit: an error
    with pytest.raises(ImageReadError, match='1,600 pixels'):
        PILImage.create(path)


# --- tensors ---

def test_image2tensor_is_uint8_chw_writable_without_warnings():
    img = PILImage.create(PHOTO)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        t = image2tensor(img)
        t[0, 0, 0] = 7                                         # writable: no read-only numpy buffer underneath
    assert t.dtype == torch.uint8 and t.shape == (3, 213, 320)
    ref = torch.from_numpy(np.array(Image.open(PHOTO).convert('RGB'))).permute(2, 0, 1)
    assert torch.equal(t[:, 1:], ref[:, 1:])
    assert image2tensor(PILImageBW.create(FASHION)).shape == (1, 28, 28)
    arr = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert image2tensor(arr).data_ptr() == arr.__array_interface__['data'][0]   # arrays are shared, not copied


def test_to_tensor_types_shapes_and_decode():
    tfm = ToTensor()
    assert tfm.order == 5
    img = PILImage.create(PHOTO)
    t = tfm(img)
    assert type(t) is TensorImage and t.dtype == torch.uint8 and t.shape == (3, 213, 320)
    back = tfm.decode(t)
    assert type(back) is PILImage and np.array_equal(pixels(back), pixels(img))
    bw = tfm(PILImageBW.create(FASHION))
    assert type(bw) is TensorImageBW and bw.shape == (1, 28, 28)
    assert type(tfm.decode(bw)) is PILImageBW
    x, y = tfm((img, 3))
    assert type(x) is TensorImage and y == 3


# --- display ---

def test_show_returns_axes_and_draws_grayscale_in_gray():
    ax = PILImage.create(PHOTO).show()
    assert isinstance(ax, matplotlib.axes.Axes) and ax.images[0].get_array().shape == (213, 320, 3)
    bw = ToTensor()(PILImageBW.create(FASHION))
    _, ctx = plt.subplots()
    assert bw.show(ctx=ctx) is ctx
    im = ctx.images[0]
    assert im.get_cmap().name == 'gray' and im.get_clim() == (0, 255) and im.get_array().shape == (28, 28)


def test_show_image_float_and_uint8_display_the_same():
    u8 = image2tensor(PILImage.create(PHOTO))
    a = show_image(u8).images[0].get_array()
    b = show_image(u8.float() / 255).images[0].get_array()
    assert a.dtype == np.uint8 and np.allclose(np.asarray(a) / 255, np.asarray(b), atol=1e-6)
    hwc = np.asarray(PILImage.create(PHOTO))
    ax = show_image(hwc, title='fish', figsize=(2, 2))
    assert ax.get_title() == 'fish' and ax.figure.get_size_inches().tolist() == [2, 2]
    gray_float = show_image(torch.full((1, 4, 4), 0.5)).images[0]
    assert gray_float.get_clim() == (0, 1)                  # a mid-gray stays mid-gray, not stretched


def test_show_images_and_get_grid():
    axs = get_grid(5)
    assert len(axs) == 5 and len(axs[0].figure.axes) == 6                    # 2 rows x 3 columns
    assert not axs[0].figure.axes[5].axison
    fig, axs = get_grid(4, nrows=1, return_fig=True, title='four')
    assert fig.get_size_inches().tolist() == [12, 3] and fig._suptitle.get_text() == 'four'
    ims = [PILImage.create(PHOTO), PILImageBW.create(FASHION), np.zeros((5, 5, 3), np.uint8)]
    axs = show_images(ims, titles=['a', 'b', 'c'])
    assert [ax.get_title() for ax in axs] == ['a', 'b', 'c'] and len(axs[0].figure.axes) == 3

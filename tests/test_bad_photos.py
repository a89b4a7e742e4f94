"""The bad-photo corpus, generated here (no committed binaries), through the one photo decoder.

Every photo the decoder refuses is a ``PhotoError`` naming the file and saying what is wrong, and the CLI's
``retrieve`` and ``search-photo`` print that as one line with exit code 2. Every odd photo it accepts decodes
to the right pixels: large photos reduced while decoding, EXIF orientation applied, colour modes converted
by what they mean. Ordinary photos decode exactly as a plain decode + bilinear resize did before.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gallery_core.cli import main
from gallery_core.data import decode
from gallery_core.data.decode import (
    MAX_PHOTO_PIXELS,
    TRANSPARENT_BACKGROUND,
    PhotoError,
    PhotoTooLargeError,
    decode_photo,
    load_photo,
)
from gallery_core.data.photos import find_undecodable

ORIENTATION = 0x0112  # the EXIF tag
RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


# --- making the corpus ---

def solid_jpeg(width: int, height: int) -> bytes:
    """A valid baseline JPEG of any size, solid grey 128, in ~width*height/85 bytes and no full-size image.

    The headers are those PIL writes for a 16x16 grey image (standard Huffman tables), with the frame size
    patched; every 8x8 block of grey 128 codes as DC difference 0 + end-of-block ("00" "1010"), so four blocks
    are the three bytes 28 a2 8a.
    """
    assert width % 16 == 0 and height % 16 == 0
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 128).save(buffer, format="JPEG")
    data = buffer.getvalue()
    frame, scan = data.index(b"\xff\xc0"), data.index(b"\xff\xda")
    header = bytearray(data[:scan + 2 + int.from_bytes(data[scan + 2:scan + 4], "big")])
    header[frame + 5:frame + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    assert data[len(header):] == b"\x28\xa2\x8a\xff\xd9"  # the 16x16 original: 4 blocks, then the end marker
    return bytes(header) + b"\x28\xa2\x8a" * (width // 8 * height // 8 // 4) + b"\xff\xd9"


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def upright_photo(size: tuple[int, int] = (40, 30)) -> Image.Image:
    """A landscape photo whose orientation shows: a red block top-left, a green one bottom-right, on blue."""
    img = Image.new("RGB", size, BLUE)
    img.paste(RED, (0, 0, size[0] // 2, size[1] // 3))
    img.paste(GREEN, (size[0] * 3 // 4, size[1] * 2 // 3, size[0], size[1]))
    return img


# How a camera stores an upright scene for each EXIF orientation: the inverse of what the reader must do.
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def with_orientation(img: Image.Image, orientation: int, fmt: str) -> bytes:
    """``img`` (upright) stored turned, with the EXIF orientation tag that turns it back."""
    stored = img if STORED_AS[orientation] is None else img.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(stored, fmt, exif=exif.tobytes())


def gradient(size: int) -> Image.Image:
    y, x = np.mgrid[0:size, 0:size]
    return Image.fromarray(np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], axis=-1)
                           .astype(np.uint8))


# name -> what its PhotoError says (after "<path>: ")
REFUSED = {
    "huge.jpg": "400 megapixels is too large; the limit is 150 megapixels",
    "empty.jpg": "cannot decode image: the file is empty",
    "truncated.jpg": "cannot decode image: looks like a JPEG but its data is broken or cut short",
    "header-only.jpg": "cannot decode image: looks like a JPEG but its data is broken or cut short",
    "truncated.png": "cannot decode image: looks like a PNG but its data is broken or cut short",
    "notes.jpg": "cannot decode image: its content is not a recognised image (it looks like text); "
                 "accepted: JPEG, PNG, WebP, BMP, GIF, TIFF",
    "junk.jpg": "cannot decode image: its content is not a recognised image (it starts with bytes 00 01 02",
    "iphone.heic": "cannot decode image: it is a HEIC/MP4 file (the iPhone's HEIC/HEIF photo format, which is "
                   "not supported: export or convert it to JPEG); accepted: JPEG",
    "iphone-named.jpg": "it is a HEIC/MP4 file",
    "photo.avif": "cannot decode image: it is an AVIF file (AVIF photos are not supported",
    "scan.jpg": "cannot decode image: it is a PDF file; accepted: JPEG, PNG",
    "folder.jpg": "is a folder, not a photo",
    "loop.jpg": "symlink loop: following the link leads back to itself",
    "dangling.jpg": "broken symlink: it points to",
    "missing.jpg": "cannot read photo: No such file or directory",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Every photo of the corpus by name: the refused ones (REFUSED) and the odd but good ones."""
    folder = tmp_path_factory.mktemp("bad_photos")
    noisy = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    files = {
        "huge.jpg": solid_jpeg(20000, 20000),
        "large.jpg": solid_jpeg(12000, 12000),
        "empty.jpg": b"",
        "truncated.jpg": noisy[:len(noisy) // 2],
        "header-only.jpg": b"\xff\xd8\xff\xe0" + bytes(30),
        "truncated.png": encode(gradient(64), "PNG")[:300],
        "notes.jpg": b"these are not pixels, just notes\n",
        "junk.jpg": bytes(range(256)),
        "iphone.heic": bytes([0, 0, 0, 24]) + b"ftypheic" + bytes(40),
        "iphone-named.jpg": bytes([0, 0, 0, 24]) + b"ftypmif1" + bytes(40),
        "photo.avif": bytes([0, 0, 0, 28]) + b"ftypavif" + bytes(40),
        "scan.jpg": b"%PDF-1.7\n" + bytes(40),
        "upright.jpg": encode(upright_photo(), "JPEG", quality=95),
        "rotated.jpg": with_orientation(upright_photo(), 6, "JPEG"),
        "cmyk.jpg": encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"),  # pure red in CMYK
        "anim.gif": encode(Image.new("RGB", (40, 30), GREEN), "GIF"),
        "scan.tif": encode(Image.new("RGB", (40, 30), BLUE), "TIFF"),
        "modern.webp": encode(Image.new("RGB", (40, 30), RED), "WEBP", lossless=True),
        "old.bmp": encode(Image.new("RGB", (40, 30), GREEN), "BMP"),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    for name in ("folder.jpg", "loop.jpg", "dangling.jpg", "missing.jpg"):
        paths[name] = folder / name
    paths["folder.jpg"].mkdir()
    os.symlink(paths["loop.jpg"], paths["loop.jpg"])  # a link to itself
    os.symlink(folder / "nowhere.jpg", paths["dangling.jpg"])
    return paths


# --- refusals: a PhotoError naming the file and what is wrong ---

@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_bad_photo_is_a_photo_error_naming_the_file(corpus, name):
    path = corpus[name]
    with pytest.raises(PhotoError) as caught:
        load_photo(path, 32)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert REFUSED[name] in message
    assert "\n" not in message


def test_bytes_are_named_by_the_caller(corpus):
    data = corpus["iphone.heic"].read_bytes()
    with pytest.raises(PhotoError, match=r"^IMG_0001\.HEIC: cannot decode image: it is a HEIC/MP4 file"):
        load_photo(data, 32, name="IMG_0001.HEIC")
    with pytest.raises(PhotoError, match=r"^uploaded photo: cannot decode image"):
        load_photo(data, 32)


@pytest.mark.parametrize("name", sorted(REFUSED))
@pytest.mark.parametrize("command", ["retrieve", "search-photo"])
def test_the_cli_names_a_bad_photo_in_one_line(tiny_run, corpus, capsys, command, name):
    path = corpus[name]
    flag = "--photos" if command == "retrieve" else "--photo"
    assert main([command, "--artifacts", str(tiny_run), flag, str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {path}: ") and REFUSED[name] in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""


def test_a_bad_photo_among_good_ones_is_the_one_named(tiny_run, corpus, capsys):
    args = ["retrieve", "--artifacts", str(tiny_run), "--photos", str(corpus["upright.jpg"]),
            str(corpus["huge.jpg"])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {corpus['huge.jpg']}: ") and "too large" in err


def test_the_build_skips_and_reports_bad_photos(corpus):
    """What training does before the build (find_undecodable, two threads): reasons by position, never an
    exception, and PIL's DecompressionBombWarning for the 144 MP photos silenced even with decodes overlapping."""
    names = ["upright.jpg", "huge.jpg", "folder.jpg", "iphone.heic", "large.jpg", "loop.jpg", "truncated.jpg",
             "large.jpg", "large.jpg", "large.jpg"]
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        bad = find_undecodable([str(corpus[n]) for n in names], 32)
    assert not [w for w in shown if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == filters_before
    assert sorted(bad) == [1, 2, 3, 5, 6]
    for position, reason in bad.items():
        assert reason.startswith(f"{corpus[names[position]]}: ") and REFUSED[names[position]] in reason


@pytest.mark.parametrize("name", ["folder.jpg", "loop.jpg", "dangling.jpg", "missing.jpg"])
def test_why_there_is_no_photo_file(corpus, name):
    """What a catalogue check can say instead of "file not found"."""
    assert decode.photo_file_problem(corpus[name]).startswith(REFUSED[name])
    assert decode.photo_file_problem(corpus["upright.jpg"]) is None


# --- large photos: refused over the limit, decoded reduced under it ---

def test_a_huge_photo_is_refused_before_decoding(corpus):
    with pytest.raises(PhotoTooLargeError, match="400 megapixels is too large; the limit is 150 megapixels"):
        decode_photo(corpus["huge.jpg"], 224)


def test_the_limit_is_ours_below_pils_and_can_be_lowered(corpus):
    assert MAX_PHOTO_PIXELS < 2 * Image.MAX_IMAGE_PIXELS  # ours decides, naming the size and the limit
    with pytest.raises(PhotoTooLargeError, match=r"large\.jpg: 12000x12000 pixels \(144 megapixels\) is too "
                                                 r"large; the limit is 40 megapixels"):
        decode_photo(corpus["large.jpg"], 224, max_pixels=40_000_000)


def test_pils_decompression_bomb_warning_and_error_are_handled(corpus, monkeypatch):
    photo = corpus["old.bmp"]  # 40 x 30 = 1200 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL warns over 1000, refuses over 2000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning would fail the test
        assert load_photo(photo, 16).shape == (16, 16, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(PhotoTooLargeError, match=r"old\.bmp: 1,200 pixels is too large; the limit is 1,000 "):
        load_photo(photo, 16)


def test_a_large_jpeg_is_decoded_reduced_by_the_decoder(corpus, monkeypatch):
    loaded = []
    original_load = Image.Image.load

    def spy_load(img):  # the size of what the decoder actually produces
        loaded.append(img.size)
        return original_load(img)

    monkeypatch.setattr(Image.Image, "load", spy_load)
    photo = decode_photo(corpus["large.jpg"], 224)
    assert (photo.width, photo.height, photo.format) == (12000, 12000, "JPEG")
    assert photo.reduced_by == 8 and photo.image.size == (1500, 1500)  # 1/8 by draft: 6.75 MB, not 432 MB
    assert max(w * h for w, h in loaded) == 1500 * 1500
    pixels = load_photo(corpus["large.jpg"], 32)
    assert pixels.shape == (32, 32, 3) and (pixels == 128).all()


def test_draft_decoding_stays_close_to_a_full_decode():
    data = encode(gradient(2048), "JPEG", quality=95)
    photo = decode_photo(data, 64)
    assert photo.reduced_by == 4 and photo.image.size == (512, 512)  # kept >= 4 x 64 and >= 512
    with Image.open(io.BytesIO(data)) as img:
        full = np.asarray(img.convert("RGB").resize((64, 64), Image.BILINEAR), dtype=np.int16)
    assert np.abs(load_photo(data, 64).astype(np.int16) - full).mean() < 1.0


def test_a_large_png_is_reduced_after_decoding():
    data = encode(gradient(2048).convert("L"), "PNG")
    photo = decode_photo(data, 32)
    assert photo.reduced_by == 4 and photo.image.size == (512, 512) and photo.image.mode == "RGB"
    assert (photo.width, photo.height) == (2048, 2048)
    assert decode_photo(data).reduced_by == 1  # no target size: full size


# --- orientation ---

@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    upright = upright_photo()
    stored = with_orientation(upright, orientation, "PNG")  # lossless: the pixels must match exactly
    photo = decode_photo(stored, 32)
    assert (photo.width, photo.height) == upright.size
    assert np.array_equal(np.asarray(photo.image), np.asarray(upright))
    assert np.array_equal(load_photo(stored, 32), load_photo(encode(upright, "PNG"), 32))


def test_an_exif_rotated_jpeg_decodes_like_the_upright_one(corpus):
    rotated, upright = load_photo(corpus["rotated.jpg"], 32), load_photo(corpus["upright.jpg"], 32)
    assert np.abs(rotated.astype(np.int16) - upright).mean() < 4  # the same up to JPEG's losses
    corners = [rotated[2, 2].astype(int).tolist(), rotated[-2, -2].astype(int).tolist()]
    assert corners == [pytest.approx(RED, abs=20), pytest.approx(GREEN, abs=20)]
    photo = decode_photo(corpus["rotated.jpg"])
    assert (photo.width, photo.height) == (40, 30) and photo.image.size == (40, 30)


def test_thumbnails_and_vae_targets_are_upright_too(corpus, tmp_path):
    from gallery_core.app.thumbnails import make_thumbnail, thumbnail_bytes
    from gallery_core.models.vae import thumbnail_array

    stored, upright = tmp_path / "stored.png", tmp_path / "upright.png"
    stored.write_bytes(with_orientation(upright_photo((64, 48)), 6, "PNG"))
    upright.write_bytes(encode(upright_photo((64, 48)), "PNG"))
    assert make_thumbnail(stored, 32) == make_thumbnail(upright, 32)
    assert np.array_equal(thumbnail_array([str(stored)], 16), thumbnail_array([str(upright)], 16))
    for name in ("huge.jpg", "folder.jpg", "iphone.heic"):  # a placeholder, not an exception
        assert thumbnail_bytes(corpus[name], 32, tmp_path / "cache").startswith(b"\x89PNG")


# --- colour modes ---

def test_16_bit_grey_is_scaled_not_white():
    values = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    expected = np.round(values / 257).astype(np.uint8)
    png = encode(Image.frombytes("I;16B", (40, 30), values.astype(">u2").tobytes()), "PNG")
    tiff = encode(Image.fromarray(values), "TIFF")  # little-endian I;16
    for data in (png, tiff):
        pixels = np.asarray(decode_photo(data).image)
        assert np.array_equal(pixels[..., 0], expected) and np.array_equal(pixels[..., 2], expected)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGB"])
def test_transparency_is_composited_on_mid_grey(mode):
    """Left half transparent (hiding red or white), right half opaque; P and RGB: a transparent colour."""
    if mode == "RGBA":
        img = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
        img.paste((0, 0, 255, 255), (20, 0, 40, 30))
        opaque = (0, 0, 255)
    elif mode == "LA":
        img = Image.new("LA", (40, 30), (255, 0))
        img.paste((0, 255), (20, 0, 40, 30))
        opaque = (0, 0, 0)
    elif mode == "P":
        img = Image.new("P", (40, 30), 1)
        img.putpalette([0, 0, 255, 255, 255, 255] + [0] * 762)
        img.paste(0, (20, 0, 40, 30))
        img.info["transparency"] = 1  # palette entry 1 (white) is transparent
        opaque = (0, 0, 255)
    else:
        img = Image.new("RGB", (40, 30), (255, 255, 255))
        img.paste((0, 0, 255), (20, 0, 40, 30))
        img.info["transparency"] = (255, 255, 255)  # PNG's tRNS colour for RGB
        opaque = (0, 0, 255)
    data = encode(img, "PNG")
    assert Image.open(io.BytesIO(data)).mode == mode
    pixels = np.asarray(decode_photo(data).image)
    assert (pixels[:, :20] == TRANSPARENT_BACKGROUND).all()
    assert (pixels[:, 20:] == opaque).all()


def test_half_transparency_blends_with_the_background():
    data = encode(Image.new("RGBA", (8, 8), (255, 0, 0, 128)), "PNG")
    pixel = np.asarray(decode_photo(data).image)[0, 0].astype(int)
    assert pixel.tolist() == pytest.approx([255 * 128 / 255 + 128 * 127 / 255, 128 * 127 / 255,
                                            128 * 127 / 255], abs=1)


@pytest.mark.parametrize(("name", "colour"), [
    ("cmyk.jpg", (255, 0, 0)), ("anim.gif", GREEN), ("scan.tif", BLUE), ("modern.webp", RED), ("old.bmp", GREEN),
])
def test_other_modes_and_formats_decode_to_rgb(corpus, name, colour):
    pixels = load_photo(corpus[name], 16)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
    assert pixels.reshape(-1, 3).mean(axis=0).tolist() == pytest.approx(colour, abs=3)


@pytest.mark.parametrize(("mode", "value", "expected"), [
    ("1", 1, (255, 255, 255)), ("L", 77, (77, 77, 77)), ("YCbCr", (76, 85, 255), (254, 0, 0)),
])
def test_grey_bilevel_and_ycbcr(mode, value, expected):
    img = Image.new(mode, (16, 16), value)
    data = encode(img, "TIFF" if mode == "YCbCr" else "PNG")
    assert load_photo(data, 8)[0, 0].astype(int).tolist() == pytest.approx(expected, abs=2)


# --- ordinary photos do not move ---

def plain_decode(source: str | Path, size: int) -> np.ndarray:
    """What load_photo did before the decoder took care of orientation, modes and large photos."""
    with Image.open(source) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def test_catalogue_photos_decode_as_before(tiny_catalogue):
    """Within two grey levels of a plain PIL decode + resize, a tenth of one on average (the resize is PyTorch's
    uint8 kernel of the same antialiased bilinear filter, ``resize_square``; a tall photo shrunk 14x averages 0.1);
    a photo already at the size exactly."""
    paths = sorted((tiny_catalogue / "photos").rglob("*.jpg"))[:12]
    demo = Path(__file__).resolve().parent.parent / "data" / "demo" / "photos"
    paths += sorted(demo.rglob("*.jpg"))[:12] if demo.is_dir() else []  # the demo's 128 px photos, if built
    assert paths
    for path in paths:
        for size in (8, 16, 32, 64, 128, 224):
            ours, plain = load_photo(path, size).astype(np.int16), plain_decode(path, size).astype(np.int16)
            assert np.abs(ours - plain).max() <= 2 and np.abs(ours - plain).mean() < 0.1, (path, size)
            if Image.open(path).size == (size, size):
                assert np.array_equal(ours, plain), (path, size)


@pytest.mark.parametrize(("width", "height", "size"), [(640, 480, 128), (640, 480, 224), (97, 61, 224), (300, 900, 64)])
def test_resize_square_is_pils_bilinear_within_two_levels(width, height, size):
    rng = np.random.default_rng(width * height)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8))
    noise = rng.normal(0, 20, (height, width, 3))
    image = Image.fromarray(np.clip(np.asarray(coarse.resize((width, height), Image.BICUBIC)) + noise, 0, 255)
                            .astype(np.uint8))
    ours = decode.resize_square(image, size)
    assert ours.shape == (size, size, 3) and ours.dtype == np.uint8 and ours.flags.c_contiguous
    pil = np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.int16)
    difference = np.abs(ours.astype(np.int16) - pil)
    assert difference.max() <= 2 and difference.mean() < 0.25  # shrinking (antialiased) and enlarging alike


def test_the_sniffing_is_shared_with_the_upload_checks():
    from gallery_core.data import uploads

    assert uploads.sniff_format is decode.sniff_format
    assert decode.sniff_format(bytes(4) + b"ftypavif") == "AVIF"
    assert decode.sniff_format(b"II*\x00") == decode.sniff_format(b"MM\x00*") == "TIFF"

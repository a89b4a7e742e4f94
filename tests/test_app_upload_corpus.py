"""Bad and odd photos uploaded to the app (the upload checks and the Retrieve page's two uploaders).

Huge photos, HEIC files and EXIF-rotated photos, generated here: a huge photo or a HEIC is refused with a
message naming the file and saying why; an EXIF-rotated photo is used upright, as the model sees its
catalogue photos.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_bad_photos import encode, gradient, solid_jpeg, upright_photo, with_orientation

from gallery_core.artifacts.run import Run
from gallery_core.data.uploads import MAX_UPLOAD_PIXELS, UploadError, check_upload, check_uploads

pytest_plugins = ["conftest_app"]

HEIC = bytes([0, 0, 0, 24]) + b"ftypheic" + bytes(40)


@pytest.fixture(scope="module")
def huge_jpeg() -> bytes:
    return solid_jpeg(20000, 20000)  # 4.7 MB: under the upload's 10 MB, 400 megapixels


def rotated_png(jpeg: bytes, orientation: int = 6) -> bytes:
    """A lossless copy of a photo, stored turned with the EXIF tag that turns it back."""
    with Image.open(io.BytesIO(jpeg)) as img:
        return with_orientation(img.convert("RGB"), orientation, "PNG")


# --- the checks ---

@pytest.mark.parametrize(("name", "data", "message"), [
    ("large.jpg", solid_jpeg(12000, 12000),
     "large.jpg: 12000x12000 pixels (144 megapixels) is too large; the limit is 40 megapixels"),
    ("IMG_0001.HEIC", HEIC, "IMG_0001.HEIC: only JPEG and PNG photos are accepted, but it is a HEIC/MP4 file "
                            "(the iPhone's HEIC/HEIF photo format, which is not supported: export or convert it "
                            "to JPEG)"),
    ("photo.avif", bytes([0, 0, 0, 28]) + b"ftypavif" + bytes(40), "photo.avif: only JPEG and PNG photos are "
                                                                    "accepted, but it is an AVIF file"),
    ("notes.jpg", b"these are not pixels", "notes.jpg: only JPEG and PNG photos are accepted, but its content is "
                                           "not a recognised image (it looks like text)"),
    ("cut.jpg", encode(gradient(64), "JPEG")[:400], "cut.jpg: looks like a JPEG but cannot be decoded"),
])
def test_bad_uploads_say_what_is_wrong(name, data, message):
    with pytest.raises(UploadError) as caught:
        check_upload(name, data)
    assert message in str(caught.value)


def test_a_huge_upload_is_refused_with_the_limit(huge_jpeg):
    with pytest.raises(UploadError, match=r"^huge\.jpg: 400 megapixels is too large; the limit is 40 megapixels"):
        check_upload("huge.jpg", huge_jpeg)
    assert MAX_UPLOAD_PIXELS == 40_000_000


def test_odd_but_good_uploads_are_accepted():
    rotated = check_upload("rotated.jpg", with_orientation(upright_photo(), 6, "JPEG"))
    assert (rotated.width, rotated.height) == (40, 30)  # upright, as the stored pixels are 30 x 40
    grey16 = encode(Image.frombytes("I;16B", (40, 30), np.full((30, 40), 40000, ">u2").tobytes()), "PNG")
    assert check_upload("grey16.png", grey16).format == "PNG"
    big = check_upload("big.jpg", solid_jpeg(6000, 6000))  # 36 megapixels: under the limit
    assert (big.width, big.height) == (6000, 6000)
    accepted, errors = check_uploads([("IMG_0001.HEIC", HEIC), ("rotated.jpg", rotated.data)])
    assert [u.name for u in accepted] == ["rotated.jpg"] and len(errors) == 1 and "HEIC" in errors[0]


# --- the Retrieve page ---

def tray_uploads(at) -> dict:
    return {seed.name: seed for seed in at.session_state["seed_tray"].uploads.values()}


def test_seed_uploads_refuse_huge_and_heic_and_use_exif_rotated_photos_upright(open_page, app_artifacts,
                                                                               huge_jpeg):
    run = Run(app_artifacts / "demo")
    original = Path(run.photos["path"].iloc[0]).read_bytes()
    at = open_page("ui/pages/retrieve.py")
    at.file_uploader[0].set_value([
        ("huge.jpg", huge_jpeg, "image/jpeg"),
        ("IMG_0001.HEIC", HEIC, "image/heic"),
        ("rotated.png", rotated_png(original), "image/png"),
    ]).run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert len(messages) == 2
    assert messages[0].startswith("huge.jpg: 400 megapixels is too large; the limit is 40 megapixels")
    assert messages[1].startswith("IMG_0001.HEIC: only JPEG and PNG photos are accepted, but it is a HEIC/MP4")
    seeds = tray_uploads(at)
    assert list(seeds) == ["rotated.png"]
    # embedded upright: exactly as the catalogue photo it was made from
    np.testing.assert_allclose(seeds["rotated.png"].embedding, run.embed_uploads([original])[0], atol=1e-5)
    with Image.open(io.BytesIO(seeds["rotated.png"].thumbnail)) as thumb, \
            Image.open(io.BytesIO(original)) as photo:
        side = thumb.size[0]
        expected = np.asarray(photo.convert("RGB").resize((side, side), Image.BILINEAR), dtype=np.int16)
        assert np.abs(np.asarray(thumb.convert("RGB"), dtype=np.int16) - expected).mean() < 8  # upright thumbnail


def test_visual_search_refuses_a_huge_photo_and_finds_an_exif_rotated_one(open_page, app_artifacts, huge_jpeg):
    photos = pd.read_parquet(app_artifacts / "demo" / "photos.parquet")
    at = open_page("ui/pages/retrieve.py")
    at.file_uploader[1].set_value([("huge.jpg", huge_jpeg, "image/jpeg")]).run()
    assert not at.exception
    assert any(e.value.startswith("huge.jpg: 400 megapixels is too large") for e in at.error)
    at.file_uploader[1].set_value([("IMG_0001.HEIC", HEIC, "image/heic")]).run()
    assert any("IMG_0001.HEIC: only JPEG and PNG photos are accepted, but it is a HEIC/MP4 file" in e.value
               for e in at.error)
    query = photos.iloc[5]
    at.file_uploader[1].set_value([("rotated.png", rotated_png(Path(query["path"]).read_bytes(), 8),
                                    "image/png")]).run()
    assert not at.exception and not at.error
    grid = next(img for img in at.image if len(img.captions) == 8)
    assert grid.captions[0].startswith(f"{query['listing_id']} · 1.000")  # the photo itself, seen upright

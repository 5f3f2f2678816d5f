"""TFDS builders: tiny fixtures in each real format build into array_record, read back exactly, and
malformed fixtures fail with clear errors and leave no dataset behind. No TensorFlow is involved."""

import io
import os
import pickle
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from landmarkjax.data.builders import SyntheticFacesConfig, SyntheticObjectsConfig, build_dataset
from landmarkjax.data.davis import DAVIS_PALETTE
from landmarkjax.data.sources import SyntheticFaceSource, SyntheticObjectVideoSource
from landmarkjax.data.tfds_source import TfdsSource

from _fixtures import CELEBA_ATTRIBUTES as _ATTRIBUTES
from _fixtures import pts_text as _pts_text
from _fixtures import random_image as _random_image
from _fixtures import write_300w as _write_300w
from _fixtures import write_celeba as _write_celeba
from _fixtures import write_davis

def _no_dataset_left(data_dir, name):
    """No version folder that TFDS would load, and no half-written temporary folder."""
    for dirpath, dirnames, _ in os.walk(data_dir):
        for dirname in dirnames:
            assert not dirname.startswith("incomplete"), os.path.join(dirpath, dirname)
            assert dirname != "1.0.0", os.path.join(dirpath, dirname)
    assert not tfds.builder(name, data_dir=str(data_dir)).is_prepared()


def test_face300w_builds_and_round_trips_exactly(tmp_path):
    truth = _write_300w(tmp_path / "300w", np.random.default_rng(0))
    builder = build_dataset("face300w", data_dir=tmp_path / "data", manual_dir=tmp_path / "300w")
    assert builder.info.file_format.value == "array_record"
    assert "tensorflow" not in sys.modules

    expected_splits = {
        "train": ["lfpw/trainset", "helen/trainset", "afw"],
        "common": ["lfpw/testset", "helen/testset"],
        "challenging": ["ibug"],
        "full": ["lfpw/testset", "helen/testset", "ibug"],
    }
    for split, folders in expected_splits.items():
        source = TfdsSource("face300w", split=split, data_dir=tmp_path / "data")
        names = [source[i]["file_name"] for i in range(len(source))]
        assert sorted(names) == sorted(n for n in truth if n.rsplit("/", 1)[0] in folders), split

    source = TfdsSource("face300w", split="full", data_dir=tmp_path / "data")
    raw = builder.as_data_source(split="full")
    for i in range(len(source)):
        element = source[i]
        name = element["file_name"]
        path = tmp_path / "300w" / name
        assert raw[i]["image"] == path.read_bytes()  # the file's bytes, unchanged
        with Image.open(path) as image:
            np.testing.assert_array_equal(element["image"], np.asarray(image.convert("RGB")))
        assert element["image"].shape[2] == 3 and element["image"].dtype == np.uint8
        np.testing.assert_array_equal(element["landmarks"], truth[name])
        points = truth[name]
        np.testing.assert_array_equal(element["face_box"], [*points.min(0), *points.max(0)])
        assert element["subset"] == name.split("/")[0]
        assert element["visibility"].all() and element["visibility"].shape == (68,)
        assert element["attributes"].shape == (0,)

    # Grain worker processes receive the source pickled.
    clone = pickle.loads(pickle.dumps(source))
    assert repr(clone) == repr(source) and len(clone) == len(source)
    np.testing.assert_array_equal(clone[1]["image"], source[1]["image"])


def test_face300w_png_pixels_are_exact(tmp_path):
    rng = np.random.default_rng(1)
    _write_300w(tmp_path / "300w", rng, per_folder=1)
    image = _random_image(rng, 17, 19)
    Image.fromarray(image).save(tmp_path / "300w" / "lfpw/trainset/image_0000.png")
    build_dataset("face300w", data_dir=tmp_path / "data", manual_dir=tmp_path / "300w")
    source = TfdsSource("face300w", split="train", data_dir=tmp_path / "data")
    element = next(source[i] for i in range(len(source)) if source[i]["file_name"].startswith("lfpw"))
    np.testing.assert_array_equal(element["image"], image)


@pytest.mark.parametrize(
    "break_fixture, error, message",
    [
        (lambda root: (root / "ibug/image_0001.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n"),
         ValueError, "ibug/image_0001.pts: expected 68 point lines"),
        (lambda root: (root / "afw/image_0000.pts").write_text(_pts_text(np.ones((67, 2)))),
         ValueError, "afw/image_0000.pts: expected 68 points"),
        (lambda root: os.remove(root / "helen/testset/image_0001.pts"),
         FileNotFoundError, "expected the landmark file .*helen/testset/image_0001.pts"),
        (lambda root: os.rename(root / "ibug", root / "ibug_renamed"),
         FileNotFoundError, "300-W folder 'ibug'.*at .*ibug"),
        (lambda root: (root / "afw/image_0000.jpg").write_bytes(b"not an image"),
         ValueError, "afw/image_0000.jpg: expected a JPEG or PNG"),
    ],
)  # fmt: skip
def test_face300w_malformed_fixture_fails_clearly_and_leaves_nothing(tmp_path, break_fixture, error, message):
    root = tmp_path / "300w"
    _write_300w(root, np.random.default_rng(2), per_folder=2)
    break_fixture(root)
    with pytest.raises(error, match=message):
        build_dataset("face300w", data_dir=tmp_path / "data", manual_dir=root)
    _no_dataset_left(tmp_path / "data", "face300w")


def test_failed_build_can_be_fixed_and_rebuilt(tmp_path):
    root = tmp_path / "300w"
    _write_300w(root, np.random.default_rng(3), per_folder=1)
    good = (root / "ibug/image_0000.pts").read_text()
    (root / "ibug/image_0000.pts").write_text(good.replace("}", ""))
    with pytest.raises(ValueError, match="truncated"):
        build_dataset("face300w", data_dir=tmp_path / "data", manual_dir=root)
    (root / "ibug/image_0000.pts").write_text(good)
    build_dataset("face300w", data_dir=tmp_path / "data", manual_dir=root)
    assert len(TfdsSource("face300w", split="challenging", data_dir=tmp_path / "data")) == 1


def test_missing_manual_dir_says_what_it_should_hold(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"(?s)face300w: Manual directory .*nothing_here does not exist.*lfpw/trainset/",
    ):
        build_dataset("face300w", data_dir=tmp_path / "data", manual_dir=tmp_path / "nothing_here")
    _no_dataset_left(tmp_path / "data", "face300w")


def test_reading_an_unbuilt_dataset_says_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="build it first"):
        TfdsSource("face300w", split="train", data_dir=tmp_path / "empty")


# ------------------------------------------------------------------------------------------ CelebA / MAFL


@pytest.mark.parametrize("anno_subfolders", [False, True])
def test_celeba_mafl_builds_and_round_trips_exactly(tmp_path, anno_subfolders):
    names, landmarks, attributes = _write_celeba(
        tmp_path / "celeba", np.random.default_rng(4), 6, anno_subfolders
    )
    build_dataset("celeba_mafl", data_dir=tmp_path / "data", manual_dir=tmp_path / "celeba")
    expected = {"train": names[:3], "test": names[-2:], "celeba": names[:-2]}
    image_dir = tmp_path / "celeba" / ("Img/img_align_celeba" if anno_subfolders else "img_align_celeba")
    for split, split_names in expected.items():
        source = TfdsSource("celeba_mafl", split=split, data_dir=tmp_path / "data")
        assert [source[i]["file_name"] for i in range(len(source))] == split_names
        for i, name in enumerate(split_names):
            element, row = source[i], names.index(name)
            with Image.open(image_dir / name) as image:
                np.testing.assert_array_equal(element["image"], np.asarray(image.convert("RGB")))
            np.testing.assert_array_equal(element["landmarks"], landmarks[row])
            np.testing.assert_array_equal(element["attributes"], (attributes[row] == 1).astype(np.float32))
            np.testing.assert_array_equal(
                element["face_box"], [*landmarks[row].min(0), *landmarks[row].max(0)]
            )
    info = tfds.builder("celeba_mafl", data_dir=str(tmp_path / "data")).info
    assert info.metadata["attribute_names"] == _ATTRIBUTES.split()


@pytest.mark.parametrize(
    "break_fixture, error, message",
    [
        (lambda root: os.remove(root / "img_align_celeba/000002.jpg"),
         FileNotFoundError, "expected an image file at .*img_align_celeba/000002.jpg"),
        (lambda root: (root / "testing.txt").write_text("000005.jpg\n999999.jpg\n"),
         ValueError, "list_landmarks_align_celeba.txt: expected a row for 999999.jpg"),
        (lambda root: os.remove(root / "training.txt"),
         FileNotFoundError, "MAFL train list at .*training.txt or .*MAFL/training.txt"),
        (lambda root: (root / "list_landmarks_align_celeba.txt").write_text("6\nheader\n000001.jpg 1 2\n"),
         ValueError, "list_landmarks_align_celeba.txt: expected a header of 10"),
    ],
)  # fmt: skip
def test_celeba_mafl_malformed_fixture_fails_clearly(tmp_path, break_fixture, error, message):
    _write_celeba(tmp_path / "celeba", np.random.default_rng(5))
    break_fixture(tmp_path / "celeba")
    with pytest.raises(error, match=message):
        build_dataset("celeba_mafl", data_dir=tmp_path / "data", manual_dir=tmp_path / "celeba")
    _no_dataset_left(tmp_path / "data", "celeba_mafl")


# ------------------------------------------------------------------------------------------ DAVIS 2017


def test_davis2017_builds_and_round_trips_exactly(tmp_path):
    sequences = {"train": ["bear", "boat"], "val": ["car-shadow"]}
    truth = write_davis(tmp_path / "DAVIS", np.random.default_rng(6), sequences)
    builder = build_dataset("davis2017", data_dir=tmp_path / "data", manual_dir=tmp_path / "DAVIS")
    for split, names in sequences.items():
        source = TfdsSource("davis2017", split=split, data_dir=tmp_path / "data")
        raw = builder.as_data_source(split=split)
        assert [source[i]["sequence"] for i in range(len(source))] == names
        for i, name in enumerate(names):
            element, (paths, ids) = source[i], truth[name]
            assert list(element["frame_names"]) == ["00000", "00001", "00002"]
            assert [bytes(b) for b in raw[i]["frames"]] == [p.read_bytes() for p in paths]
            frames = []
            for p in paths:
                with Image.open(p) as image:
                    frames.append(np.asarray(image.convert("RGB")))
            np.testing.assert_array_equal(element["frames"], np.stack(frames))
            np.testing.assert_array_equal(element["masks"], ids)
            assert element["num_objects"] == ids.max()


def test_davis2017_missing_annotation_png_fails_clearly(tmp_path):
    write_davis(tmp_path / "DAVIS", np.random.default_rng(7), {"train": ["bear"], "val": ["boat"]})
    os.remove(tmp_path / "DAVIS/Annotations/480p/boat/00001.png")
    with pytest.raises(
        FileNotFoundError, match="annotation of frame 00001.jpg at .*Annotations/480p/boat/00001.png"
    ):
        build_dataset("davis2017", data_dir=tmp_path / "data", manual_dir=tmp_path / "DAVIS")
    _no_dataset_left(tmp_path / "data", "davis2017")


def test_davis2017_rgb_annotation_or_wrong_size_fails_clearly(tmp_path):
    write_davis(tmp_path / "DAVIS", np.random.default_rng(8), {"train": ["bear"], "val": ["boat"]})
    Image.fromarray(np.zeros((20, 28, 3), np.uint8)).save(tmp_path / "DAVIS/Annotations/480p/bear/00002.png")
    with pytest.raises(ValueError, match="bear/00002.png: expected a palette"):
        build_dataset("davis2017", data_dir=tmp_path / "data", manual_dir=tmp_path / "DAVIS")
    mask = Image.fromarray(np.zeros((21, 28), np.uint8))
    mask.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
    mask.save(tmp_path / "DAVIS/Annotations/480p/bear/00002.png")
    with pytest.raises(ValueError, match="bear/00002.png: expected a mask of the frame's size 28x20"):
        build_dataset("davis2017", data_dir=tmp_path / "data", manual_dir=tmp_path / "DAVIS")
    _no_dataset_left(tmp_path / "data", "davis2017")


def test_davis2017_frames_of_different_sizes_within_a_sequence_fail_clearly(tmp_path):
    write_davis(tmp_path / "DAVIS", np.random.default_rng(9), {"train": ["bear"], "val": ["boat"]})
    Image.fromarray(_random_image(np.random.default_rng(10), 20, 30)).save(
        tmp_path / "DAVIS/JPEGImages/480p/boat/00001.jpg"
    )
    with pytest.raises(ValueError, match="boat/00001.jpg: every frame of sequence 'boat' must have its first "
                       "frame's size 28x20 .*got 30x20"):
        build_dataset("davis2017", data_dir=tmp_path / "data", manual_dir=tmp_path / "DAVIS")
    _no_dataset_left(tmp_path / "data", "davis2017")


# ------------------------------------------------------------------------------------------ synthetic


def test_synthetic_faces_build_reproduces_the_source_exactly(tmp_path):
    config = SyntheticFacesConfig(name="tiny", kind="image", size=32, num_train=3, num_test=2, seed=11)
    build_dataset("synthetic_faces", data_dir=tmp_path, config=config)
    for split, num, seed in (("train", 3, 11), ("test", 2, 12)):
        built = TfdsSource("synthetic_faces", split=split, data_dir=tmp_path, config="tiny")
        reference = SyntheticFaceSource(num, size=32, seed=seed)
        assert len(built) == num
        for i in range(num):
            element, expected = built[i], reference[i]
            assert set(element) == set(expected)
            for key in expected:
                assert element[key].dtype == expected[key].dtype, key
                np.testing.assert_array_equal(element[key], expected[key], err_msg=key)


def test_synthetic_face_clips_build(tmp_path):
    config = SyntheticFacesConfig(
        name="tiny_clip", kind="clip", size=32, num_frames=2, num_train=1, num_test=1
    )
    build_dataset("synthetic_faces", data_dir=tmp_path, config=config)
    element = TfdsSource("synthetic_faces", split="train", data_dir=tmp_path, config="tiny_clip")[0]
    assert element["frames"].shape == (2, 32, 32, 3) and element["frames"].dtype == np.uint8
    assert element["landmarks"].shape == (2, 68, 2) and element["visibility"].shape == (2, 68)


def test_synthetic_objects_build_reproduces_the_source_exactly(tmp_path):
    config = SyntheticObjectsConfig(
        name="tiny", size=32, num_frames=2, num_objects=2, num_train=2, num_test=1
    )
    build_dataset("synthetic_objects", data_dir=tmp_path, config=config)
    built = TfdsSource("synthetic_objects", split="train", data_dir=tmp_path, config="tiny")
    reference = SyntheticObjectVideoSource(2, num_frames=2, size=32, num_objects=2, seed=0)
    for i in range(2):
        np.testing.assert_array_equal(built[i]["frames"], reference[i]["frames"])
        np.testing.assert_array_equal(built[i]["masks"], reference[i]["masks"])


def test_decoded_images_come_from_pillow_not_tensorflow():
    # A PNG decoded through the builders' record decoder equals Pillow's own decoding.
    from landmarkjax.data.tfds_source import decode_record

    image = np.random.default_rng(9).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    element = decode_record({"image": buffer.getvalue(), "landmarks": np.zeros((5, 2), np.float32)})
    np.testing.assert_array_equal(element["image"], image)
    assert "tensorflow" not in sys.modules

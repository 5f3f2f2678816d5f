"""Real face datasets in the face methods: a 300-W fixture in the official layout is built with
`build_dataset`, trained on through `train_and_evaluate`, and evaluated on `full`, `common` and
`challenging`; CelebA/MAFL gives a 5-point detector; an unbuilt dataset fails when the method is built."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from landmarkjax.configs.sbr import get_config as sbr_config
from landmarkjax.configs.semisup import get_config as semisup_config
from landmarkjax.configs.supervised import get_config
from landmarkjax.data import face_sources
from landmarkjax.data.augment import CropFace, FaceAugmentConfig, FaceAugmentParams, augment_face
from landmarkjax.data.builders import build_dataset
from landmarkjax.face_layout import CELEBA_ATTRIBUTE_NAMES
from landmarkjax.methods.sbr import SBRMethod
from landmarkjax.methods.semisup import ATTRIBUTE_IMAGE_KEY, ATTRIBUTES_KEY, SemiSupMethod
from landmarkjax.methods.supervised import SupervisedMethod
from landmarkjax.runs import train_and_evaluate
from landmarkjax.training.metric_writer import read_metrics

from _fixtures import tiny_detector_config, write_300w, write_celeba


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    """The RBG generator compiles faster than threefry on CPU; these tests only need some keys."""
    with jax.default_prng_impl("rbg"):
        yield


@pytest.fixture(scope="module")
def face300w_dir(tmp_path_factory):
    """A built 300-W fixture: 2 images per folder, so train 6, common 4, challenging 2, full 6."""
    root = tmp_path_factory.mktemp("face300w")
    write_300w(root / "300W", np.random.default_rng(0), per_folder=2)
    build_dataset("face300w", data_dir=root / "tfds", manual_dir=root / "300W")
    return str(root / "tfds")


@pytest.fixture(scope="module")
def celeba_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    write_celeba(root / "celeba", np.random.default_rng(1), num_images=6)
    build_dataset("celeba_mafl", data_dir=root / "tfds", manual_dir=root / "celeba")
    return str(root / "tfds")


def tiny_config(source="synthetic", data_dir=None, base=get_config):
    config = tiny_detector_config(base(), total_steps=2, batch_size=4)
    config.data.source = source
    config.data.tfds_data_dir = data_dir
    return config


def test_training_on_300w_reports_full_common_and_challenging(tmp_path, face300w_dir):
    config = tiny_config("face300w", face300w_dir)
    result = train_and_evaluate(config, tmp_path)
    assert result["step"] == 2
    assert result["num_examples"] == 6  # full = common + challenging
    assert result["common/num_examples"] == 4 and result["challenging/num_examples"] == 2
    for prefix in ("", "common/", "challenging/"):
        assert {f"{prefix}nme", f"{prefix}auc@0.08", f"{prefix}failure_rate@0.08"} <= set(result)
        assert np.isfinite(result[f"{prefix}nme"])
    # full is the union of the other two: its mean NME is their example-weighted mean.
    np.testing.assert_allclose(
        result["nme"], (4 * result["common/nme"] + 2 * result["challenging/nme"]) / 6, rtol=1e-5
    )


def test_300w_batches_and_splits(face300w_dir):
    method = SupervisedMethod(tiny_config("face300w", face300w_dir))
    assert method.eval_splits() == {"": "full", "common": "common", "challenging": "challenging"}
    assert method.model.num_keypoints == 68
    batch = next(method.train_loader(4))
    assert set(batch) == {"image", "landmarks", "visibility", "face_box"}  # no text, no empty attributes
    assert batch["image"].shape == (4, 32, 32, 3) and batch["landmarks"].shape == (4, 68, 2)
    assert [len(b["image"]) for b in method.eval_loader(4, "challenging")] == [2]
    config = tiny_config("face300w", face300w_dir)
    config.data.eval_split, config.data.extra_eval_splits = "common", ()
    assert SupervisedMethod(config).eval_splits() == {"": "common"}


def test_celeba_mafl_gives_a_five_point_detector(celeba_dir):
    method = SupervisedMethod(tiny_config("celeba_mafl", celeba_dir))
    assert method.model.num_keypoints == 5 and method.eval_splits() == {"": "test"}
    batch = next(method.train_loader(2))
    assert batch["landmarks"].shape == (2, 5, 2) and batch["attributes"].shape == (2, 40)
    state = method.init_state(jax.random.key(0))
    metrics = method.evaluate_batches(state, {}, method.eval_loader(2))
    assert metrics["num_examples"] == 2 and np.isfinite(metrics["nme"])


def tiny_semisup_config(variant, data_dir):
    config = semisup_config(variant)
    config.data.tfds_data_dir = data_dir
    config.total_steps, config.batch_size, config.eval_batch_size = 2, 4, 4
    config.log_every, config.eval_every, config.checkpoint_every = 1, 0, 0
    config.data.image_size = 32
    config.model.widths = (4, 4)
    config.model.attribute_hidden_widths = (8,)
    config.semisup.labelled_fraction = 0.5
    config.eval.num_visualized = 2
    config.optimizer.warmup_steps = 0
    return config


@pytest.mark.slow
def test_semisup_on_celeba_predicts_its_40_attributes_from_5_landmarks(tmp_path, celeba_dir):
    config = tiny_semisup_config("celeba_mafl", celeba_dir)
    method = SemiSupMethod(config)
    assert method.num_keypoints == 5 and method.attribute_names == CELEBA_ATTRIBUTE_NAMES
    assert list(method.binary_index) == list(range(40)) and len(method.regression_index) == 0
    batch = method.next_batch(method.train_loader(2), "train")
    assert batch["landmarks"].shape == (2, 5, 2) and batch[ATTRIBUTES_KEY].shape == (2, 40)
    assert set(np.unique(batch[ATTRIBUTES_KEY])) <= {0.0, 1.0}
    result = train_and_evaluate(config, tmp_path)
    assert result["step"] == 2 and np.isfinite(result["nme"])
    logged = [r for r in read_metrics(tmp_path) if "attribute_loss" in r]
    # 40 binary heads at chance: the mean cross-entropy is near log 2, and it is not a zero placeholder.
    assert logged and all(0.3 < r["attribute_loss"] < 1.5 for r in logged)


@pytest.mark.slow
def test_semisup_on_300w_trains_landmarks_and_elt_without_attributes(tmp_path, celeba_dir, face300w_dir):
    config = tiny_semisup_config("face300w", face300w_dir)
    method = SemiSupMethod(config)
    assert not method.use_attributes and set(method.stream_sizes()) == {"labelled", "unlabelled"}
    batch = method.next_batch(method.train_loader(2), "train")
    assert ATTRIBUTE_IMAGE_KEY not in batch and batch["landmarks"].shape == (2, 68, 2)
    assert "attributes" not in method.init_state(jax.random.key(0)).params
    result = train_and_evaluate(config, tmp_path)
    assert result["step"] == 2 and np.isfinite(result["common/nme"])

    # 300-W has no attributes: asking for them fails when the method is built, naming the fix.
    config = tiny_semisup_config("face300w", face300w_dir)
    config.semisup.attribute_weight = 1.0
    with pytest.raises(ValueError, match="'face300w' has no attributes: set semisup.attribute_weight=0"):
        SemiSupMethod(config)
    # CelebA has no head pose: the synthetic faces' attribute names are rejected there.
    config = tiny_semisup_config("celeba_mafl", celeba_dir)
    config.semisup.regression_attributes = ("yaw",)
    with pytest.raises(ValueError, match=r"among the attributes of data.source 'celeba_mafl'.*\['yaw'\]"):
        SemiSupMethod(config)


@pytest.mark.slow
def test_sbr_on_300w_trains_on_its_images_and_evaluates_them(tmp_path, face300w_dir):
    config = tiny_config("face300w", face300w_dir, base=sbr_config)
    config.total_steps = 2
    config.sbr.stage1_steps = 1
    config.sbr.stage2_steps = 1
    config.sbr.clip_batch_size = 0
    config.sbr.tracking_scale = 1
    config.sbr.lk.window_radius = 3
    config.data.source_size = 48
    config.data.num_train_clips = 4
    result = train_and_evaluate(config, tmp_path)
    assert result["num_examples"] == 6 and result["challenging/num_examples"] == 2
    assert "jitter" not in result and np.isfinite(result["common/nme"])
    assert isinstance(SBRMethod(config), SBRMethod)


@pytest.mark.parametrize("source", ["face300w", "celeba_mafl", "synthetic_faces"])
def test_an_unbuilt_dataset_fails_when_the_method_is_built_and_names_the_build_command(tmp_path, source):
    config = tiny_config(source, str(tmp_path / "empty"))
    expected = (
        "python -c \"from landmarkjax.data.builders import build_dataset; "
        f"build_dataset('{source}', data_dir='{tmp_path / 'empty'}'"
    )
    with pytest.raises(FileNotFoundError, match="not built") as error:
        SupervisedMethod(config)
    assert expected in str(error.value)
    if source == "face300w":
        assert "manual_dir='/path/to/300W')\"" in str(error.value)
    config.data.tfds_data_dir = None
    with pytest.raises(ValueError, match="set config.data.tfds_data_dir"):
        SupervisedMethod(config)


def test_unknown_source_and_synthetic_split_are_rejected():
    with pytest.raises(ValueError, match="config.data.source must be one of"):
        SupervisedMethod(tiny_config("300w"))
    config = tiny_config()
    config.data.eval_split = "full"
    with pytest.raises(ValueError, match="splits 'train', 'test' and 'validation'"):
        SupervisedMethod(config)
    assert face_sources.num_face_landmarks(tiny_config().data) == 68


def test_real_images_of_any_shape_crop_and_mirror_their_five_points():
    """A grey, tall photo with CelebA's 5 points: the crop is S x S RGB, and the mirror swaps the eyes and
    the mouth corners so that "left eye" stays the image-left one."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (211, 57, 3), np.uint8)
    points = np.array([[20, 90], [38, 91], [29, 105], [22, 120], [36, 121]], np.float32)
    element = {"image": image, "landmarks": points, "visibility": np.ones(5, bool),
               "face_box": np.concatenate([points.min(0), points.max(0)])}  # fmt: skip
    cropped = CropFace(32, 0.25).map(element)
    assert cropped["image"].shape == (32, 32, 3) and cropped["image"].dtype == np.uint8
    config = FaceAugmentConfig(output_size=32, margin=0.25)
    plain = augment_face(element, FaceAugmentParams(), config, as_float=False)
    mirrored = augment_face(element, FaceAugmentParams(flip=True), config, as_float=False)
    swapped = plain["landmarks"][[1, 0, 2, 4, 3]]
    np.testing.assert_allclose(mirrored["landmarks"][:, 0], 31 - swapped[:, 0], atol=1e-4)
    np.testing.assert_allclose(mirrored["landmarks"][:, 1], swapped[:, 1], atol=1e-4)
    assert mirrored["landmarks"][0, 0] < mirrored["landmarks"][1, 0]  # left eye on the image's left
    assert mirrored["landmarks"][3, 0] < mirrored["landmarks"][4, 0]
    np.testing.assert_array_equal(mirrored["image"], plain["image"][:, ::-1])

"""Which faces each split of the synthetic source holds (face_sources.face_source)."""

import numpy as np
import pytest

from landmarkjax.configs.supervised import get_config
from landmarkjax.data import face_sources
from landmarkjax.methods import build_method


def small_data():
    data = get_config().data
    data.source_size = 32
    data.num_train, data.num_test, data.num_validation = 6, 4, 5
    return data


def test_validation_faces_are_neither_training_nor_test_faces():
    data = small_data()
    splits = {split: face_sources.face_source(data, split) for split in ("train", "test", "validation")}
    assert {split: len(source) for split, source in splits.items()} == {"train": 6, "test": 4, "validation": 5}
    landmarks = {
        split: np.stack([source[i]["landmarks"] for i in range(len(source))]) for split, source in splits.items()
    }
    for other in ("train", "test"):
        # No validation face has the landmarks of a training or test face.
        distances = np.abs(landmarks["validation"][:, None] - landmarks[other][None]).max(axis=(-1, -2))
        assert distances.min() > 1.0, other


def test_the_validation_split_can_be_the_evaluated_one_with_test_alongside():
    config = get_config()
    config.data = small_data()
    config.data.eval_split = "validation"
    config.data.extra_eval_splits = ("test",)
    method = build_method(config)
    assert method.eval_splits() == {"": "validation", "test": "test"}
    assert len(list(method.eval_loader(2))) == 3  # 5 validation faces in batches of 2


def test_a_config_without_validation_fields_or_an_unknown_split_is_a_clear_error():
    data = small_data()
    del data.num_validation
    with pytest.raises(ValueError, match="num_validation"):
        face_sources.face_source(data, "validation")
    with pytest.raises(ValueError, match="'train', 'test' and 'validation'"):
        face_sources.face_source(small_data(), "val")


def test_narrow_training_coverage_keeps_only_frontal_unoccluded_sharp_closed_mouth_faces():
    from landmarkjax.data.sources import derive_seed
    from landmarkjax.data.synthetic.faces import in_coverage, render_face, sample_face, synthetic_face

    data = small_data()
    data.num_train = 12
    data.train_coverage = "narrow"
    narrow = face_sources.face_source(data, "train")
    full_data = small_data()
    full_data.num_train = 12
    full = face_sources.face_source(full_data, "train")
    attributes = np.stack([narrow[i]["attributes"] for i in range(12)])
    names = list(face_sources.face_attribute_names(data))
    assert np.all(np.abs(attributes[:, names.index("yaw")]) < 0.2)
    assert np.all(attributes[:, names.index("mouth_open")] < 0.2)
    # Each narrow face is the first draw from its record's seed chain whose parameters pass all four checks.
    passed = 0
    for index in range(12):
        seed = derive_seed(data.train_seed, index)
        parameters = sample_face(np.random.default_rng(seed), data.source_size)
        if in_coverage(parameters[1], parameters[2], "narrow"):
            passed += 1
            np.testing.assert_array_equal(narrow[index]["image"], render_face(*parameters, size=data.source_size)["image"])
        else:
            assert not np.array_equal(narrow[index]["landmarks"], full[index]["landmarks"])
    assert 0 < passed < 12  # about 12 % of the full distribution passes; the rest were redrawn
    # The full coverage is the unrestricted generator, unchanged; the other splits ignore train_coverage.
    np.testing.assert_array_equal(full[0]["image"], synthetic_face(derive_seed(data.train_seed, 0), 32)["image"])
    np.testing.assert_array_equal(
        face_sources.face_source(data, "test")[0]["image"], face_sources.face_source(small_data(), "test")[0]["image"]
    )
    data.train_coverage = "frontal"
    with pytest.raises(ValueError, match="coverage must be one of"):
        face_sources.face_source(data, "train")

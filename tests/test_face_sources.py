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

"""The synthetic people as Grain sources and as a built TFDS dataset (array_record), read back exactly."""

import pickle

import numpy as np
import pytest

from landmarkjax.data.builders import SyntheticPeopleConfig, build_dataset
from landmarkjax.data.sources import SyntheticMocapSource, SyntheticPeopleSource, derive_seed
from landmarkjax.data.synthetic.people import synthetic_mocap, synthetic_person
from landmarkjax.data.tfds_source import TfdsSource


def test_people_source_follows_the_source_conventions():
    source = SyntheticPeopleSource(3, size=16, max_occluders=1, seed=5)
    assert len(source) == 3
    assert repr(source) == (
        "SyntheticPeopleSource(num_records=3, size=16, max_occluders=1, model_seed=0, seed=5)"
    )
    element = source[2]
    expected = synthetic_person(derive_seed(5, 2), 16, max_occluders=1)
    assert set(element) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(element[key], expected[key], err_msg=key)
    copy = pickle.loads(pickle.dumps(source))
    assert repr(copy) == repr(source)
    np.testing.assert_array_equal(copy[2]["image"], element["image"])
    with pytest.raises(IndexError):
        source[3]
    with pytest.raises(ValueError, match="max_occluders"):
        SyntheticPeopleSource(3, max_occluders=-1)


def test_mocap_source_is_its_own_stream():
    mocap = SyntheticMocapSource(4, seed=5)
    people = SyntheticPeopleSource(4, size=16, max_occluders=0, seed=5)
    assert repr(pickle.loads(pickle.dumps(mocap))) == "SyntheticMocapSource(num_records=4, seed=5)"
    for i in range(4):
        np.testing.assert_array_equal(mocap[i]["pose"], synthetic_mocap(5, i)["pose"])
        assert not np.allclose(mocap[i]["pose"], people[i]["pose"], atol=1e-3)
        assert not np.allclose(mocap[i]["betas"], people[i]["betas"], atol=1e-3)
    with pytest.raises(IndexError):
        mocap[4]


def test_synthetic_people_build_reproduces_the_source_exactly(tmp_path):
    config = SyntheticPeopleConfig(name="tiny", size=32, num_train=2, num_test=1, seed=7)
    build_dataset("synthetic_people", data_dir=tmp_path, config=config)
    for split, num, seed in (("train", 2, 7), ("test", 1, 8)):
        built = TfdsSource("synthetic_people", split=split, data_dir=tmp_path, config="tiny")
        reference = SyntheticPeopleSource(num, size=32, seed=seed)
        assert len(built) == num
        for i in range(num):
            element, expected = built[i], reference[i]
            assert set(element) == set(expected)
            for key in expected:
                assert element[key].dtype == expected[key].dtype, key
                np.testing.assert_array_equal(element[key], expected[key], err_msg=key)
    names = TfdsSource("synthetic_people", split="train", data_dir=tmp_path, config="tiny").info.metadata
    assert names["keypoint_names"][:2] == ["right_ankle", "right_knee"]

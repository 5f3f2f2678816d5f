"""Grain loaders: documented batch format, determinism, checkpoint/resume, sharding by JAX process."""

import jax
import numpy as np
import pytest
from absl import flags

from landmarkjax.data.augment import CropFace, FaceAugmentConfig, RandomFaceAugment
from landmarkjax.data.pipeline import make_loader, one_pass_loader, to_model_inputs
from landmarkjax.data.sources import (
    SyntheticFaceClipSource,
    SyntheticFaceSource,
    SyntheticObjectVideoSource,
    derive_seed,
)
from landmarkjax.data.synthetic.faces import FACE_ATTRIBUTE_NAMES, synthetic_face


class IndexSource:
    """Element i carries i, so the tests can see which records a loader read."""

    def __init__(self, num_records):
        self.num_records = num_records

    def __len__(self):
        return self.num_records

    def __getitem__(self, index):
        return {"index": np.int64(index), "landmarks": np.full((2, 2), index, np.float32)}

    def __repr__(self):
        return f"IndexSource({self.num_records})"


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_face_batches_have_the_documented_keys_shapes_and_dtypes():
    source = SyntheticFaceSource(8, size=32, seed=0)
    batch = next(iter(make_loader(source, batch_size=4, seed=0)))
    expected = {
        "image": ((4, 32, 32, 3), np.float32),
        "landmarks": ((4, 68, 2), np.float32),
        "visibility": ((4, 68), np.float32),
        "attributes": ((4, len(FACE_ATTRIBUTE_NAMES)), np.float32),
        "face_box": ((4, 4), np.float32),
    }
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert set(np.unique(batch["visibility"])) <= {0.0, 1.0}


def test_unshuffled_single_epoch_reads_the_source_in_order():
    source = SyntheticFaceSource(4, size=32, seed=3)
    loader = make_loader(source, batch_size=2, seed=0, shuffle=False, num_epochs=1)
    batches = list(loader)
    assert len(batches) == 2
    for b, batch in enumerate(batches):
        for j in range(2):
            # The element itself, independently generated from its derived seed.
            face = synthetic_face(derive_seed(3, 2 * b + j), size=32)
            np.testing.assert_array_equal(batch["image"][j], face["image"] / np.float32(255.0))
            np.testing.assert_array_equal(batch["landmarks"][j], face["landmarks"])


def test_one_pass_loader_keeps_the_last_partial_batch_in_order():
    source = SyntheticFaceSource(5, size=32, seed=3)
    batches = list(one_pass_loader(source, batch_size=2, seed=0))
    assert [len(batch["image"]) for batch in batches] == [2, 2, 1]
    last = synthetic_face(derive_seed(3, 4), size=32)
    np.testing.assert_array_equal(batches[-1]["landmarks"][0], last["landmarks"])


def test_clip_and_object_video_batches():
    clips = next(iter(make_loader(SyntheticFaceClipSource(4, num_frames=3, size=32), batch_size=2, seed=0)))
    assert clips["frames"].shape == (2, 3, 32, 32, 3) and clips["frames"].dtype == np.float32
    assert clips["landmarks"].shape == (2, 3, 68, 2) and clips["visibility"].shape == (2, 3, 68)
    assert clips["visibility"].dtype == np.float32
    videos = make_loader(
        SyntheticObjectVideoSource(2, num_frames=2, size=32, num_objects=2), batch_size=2, seed=0
    )
    batch = next(iter(videos))
    assert batch["frames"].shape == (2, 2, 32, 32, 3) and batch["masks"].shape == (2, 2, 32, 32)
    assert batch["masks"].dtype == np.int32 and batch["masks"].max() <= 2


def test_same_seed_same_batches_and_another_seed_differs():
    source = SyntheticFaceSource(12, size=32)
    augment = RandomFaceAugment(FaceAugmentConfig(output_size=24, attribute_names=FACE_ATTRIBUTE_NAMES))
    first = _take(iter(make_loader(source, batch_size=3, seed=5, augment=augment)), 3)
    again = _take(iter(make_loader(source, batch_size=3, seed=5, augment=augment)), 3)
    other = _take(iter(make_loader(source, batch_size=3, seed=6, augment=augment)), 3)
    _assert_batches_equal(first, again)
    assert not np.array_equal(first[0]["landmarks"], other[0]["landmarks"])


def test_resuming_from_a_saved_state_gives_exactly_the_same_next_batches():
    source = SyntheticFaceSource(10, size=32)
    augment = [RandomFaceAugment(FaceAugmentConfig(output_size=24))]
    loader = make_loader(source, batch_size=3, seed=2, augment=augment)
    iterator = iter(loader)
    _take(iterator, 4)  # crosses an epoch boundary (10 records, 3 per batch)
    state = iterator.get_state()
    expected = _take(iterator, 3)
    resumed = iter(make_loader(source, batch_size=3, seed=2, augment=augment))
    resumed.set_state(state)
    _assert_batches_equal(_take(resumed, 3), expected)


def test_each_epoch_visits_every_record_once_in_a_new_order():
    loader = make_loader(IndexSource(12), batch_size=4, seed=0, num_epochs=2)
    indices = np.concatenate([batch["index"] for batch in loader])
    first, second = indices[:12], indices[12:]
    assert sorted(first) == list(range(12)) and sorted(second) == list(range(12))
    assert not np.array_equal(first, second)


def test_processes_read_disjoint_equal_shares(monkeypatch):
    seen = []
    for process in range(2):
        monkeypatch.setattr(jax, "process_index", lambda process=process: process)
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        loader = make_loader(IndexSource(11), batch_size=1, seed=0, num_epochs=1)
        seen.append({int(batch["index"][0]) for batch in loader})
    assert len(seen[0]) == len(seen[1]) == 5  # 11 records: one dropped so the shares stay equal
    assert not seen[0] & seen[1]
    monkeypatch.undo()
    everyone = make_loader(IndexSource(11), batch_size=1, seed=0, num_epochs=1, shard_by_process=False)
    assert len(list(everyone)) == 11


def test_incomplete_last_batch_is_kept_on_request():
    loader = make_loader(
        IndexSource(5), batch_size=2, seed=0, num_epochs=1, shuffle=False, drop_remainder=False
    )
    assert [len(b["index"]) for b in loader] == [2, 2, 1]


def test_crop_face_feeds_variable_size_images_into_fixed_batches():
    rng = np.random.default_rng(0)

    class PhotoSource(IndexSource):
        def __getitem__(self, index):
            height, width = 40 + 7 * index, 60 - 3 * index
            points = rng.uniform(10, 30, size=(68, 2)).astype(np.float32)
            return {
                "image": np.zeros((height, width, 3), np.uint8),
                "landmarks": points,
                "face_box": np.concatenate([points.min(0), points.max(0)]),
            }

    batch = next(iter(make_loader(PhotoSource(4), batch_size=4, seed=0, augment=CropFace(output_size=16))))
    assert batch["image"].shape == (4, 16, 16, 3) and batch["visibility"].shape == (4, 68)


def test_to_model_inputs_converts_dtypes():
    element = {
        "image": np.full((2, 2, 3), 255, np.uint8),
        "visibility": np.array([True, False]),
        "masks": np.ones((1, 2, 2), np.uint8),
        "file_name": "a.jpg",
    }
    out = to_model_inputs(element)
    assert out["image"].dtype == np.float32 and out["image"].max() == 1.0
    np.testing.assert_array_equal(out["visibility"], [1.0, 0.0])
    assert out["masks"].dtype == np.int32 and out["file_name"] == "a.jpg"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"num_epochs": 0}, "num_epochs"),
        ({"augment": "flip"}, "augment"),
        ({"augment": ["flip"]}, "augment"),
        ({"read_threads": -1}, "read_threads"),
    ],
)
def test_bad_arguments(kwargs, match):
    arguments = {"batch_size": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_loader(IndexSource(4), **arguments)


def test_sources_validate_their_arguments_and_indices():
    with pytest.raises(ValueError, match="num_records"):
        SyntheticFaceSource(0)
    with pytest.raises(ValueError, match="seed"):
        SyntheticFaceSource(3, seed=-1)
    with pytest.raises(IndexError):
        SyntheticFaceSource(3, size=32)[3]
    assert derive_seed(0, 1) != derive_seed(1, 0) and derive_seed(0, 1) == derive_seed(0, 1)


class FaceWithoutAttributesSource(SyntheticFaceSource):
    """Like a 300-W record: attributes float32 [0] and a text field."""

    def __getitem__(self, index):
        return {
            **super().__getitem__(index),
            "attributes": np.zeros((0,), np.float32),
            "file_name": f"{index}.png",
        }


def test_stack_batch_handles_empty_arrays_and_text():
    from landmarkjax.data.pipeline import StackBatch

    values = [
        {"a": np.full((2,), i, np.float32), "empty": np.zeros((0,), np.float32), "name": f"x{i}"}
        for i in range(3)
    ]
    batch = StackBatch()(values)
    np.testing.assert_array_equal(batch["a"], np.stack([v["a"] for v in values]))
    assert batch["empty"].shape == (3, 0) and list(batch["name"]) == ["x0", "x1", "x2"]


@pytest.fixture
def parsed_absl_flags():
    """Parsed absl flags (defaults) for this test only, as a program run under absl.app has them."""
    was_parsed = flags.FLAGS.is_parsed()
    if not was_parsed:
        flags.FLAGS(["test"])
    yield
    if not was_parsed:
        flags.FLAGS.unparse_flags()


def test_make_loader_leaves_absl_flags_unparsed():
    import landmarkjax.data.pipeline as pipeline

    if flags.FLAGS.is_parsed():
        pytest.skip("another test in this process parsed the absl flags")
    next(iter(make_loader(IndexSource(4), batch_size=2, seed=0)))
    if pipeline._grain_needs_parsed_flags():
        with pytest.raises(RuntimeError, match="absl flags are not parsed"):
            make_loader(IndexSource(4), batch_size=2, seed=0, worker_count=2)
    else:
        make_loader(IndexSource(4), batch_size=2, seed=0, worker_count=2)
    assert not flags.FLAGS.is_parsed()


@pytest.mark.slow
def test_worker_processes_are_deterministic_and_augment_each_record_as_the_main_process(parsed_absl_flags):
    source = FaceWithoutAttributesSource(8, size=32)
    augment = RandomFaceAugment(FaceAugmentConfig(output_size=24))

    def elements(worker_count):
        loader = make_loader(source, batch_size=2, seed=1, augment=augment, worker_count=worker_count)
        batches = _take(iter(loader), 4)  # one epoch
        return batches, {b["landmarks"][i].tobytes() for b in batches for i in range(2)}

    main_batches, main_elements = elements(0)
    worker_batches, worker_elements = elements(2)
    again_batches, _ = elements(2)
    _assert_batches_equal(worker_batches, again_batches)
    # Each worker batches its own share of the records, so batches differ, but every record gets the same
    # augmentation (its rng comes from the seed and its index).
    assert worker_elements == main_elements and len(main_elements) == 8
    assert worker_batches[0]["attributes"].shape == (2, 0) and worker_batches[0]["file_name"].shape == (2,)


def test_memoized_source_draws_each_record_once():
    from landmarkjax.data.sources import MemoizedSource

    calls = []

    class CountingSource:
        def __len__(self):
            return 3

        def __getitem__(self, index):
            calls.append(index)
            return {"value": np.full((2,), index)}

    source = MemoizedSource(CountingSource())
    first = [source[i] for i in (0, 1, 2)]
    again = [source[np.int64(i)] for i in (2, 1, 0)]
    assert len(source) == 3
    assert calls == [0, 1, 2]
    assert all(a is b for a, b in zip(first, reversed(again)))

"""TrainingCheckpoints: round trips with the data iterator, retention, integrity checks, fallbacks."""

from __future__ import annotations

import hashlib
import json
import os

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _checkpoint_damage import DAMAGE_KINDS, damage_checkpoint

from landmarkjax.training import checkpointing
from landmarkjax.training.checkpointing import (
    CorruptCheckpointError,
    IncompatibleCheckpointError,
    TrainingCheckpoints,
    abstract_state,
    state_fingerprint,
    state_layout,
)

# Orbax leaves some background coroutines of a failed read un-awaited; the tests provoke such reads.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning"),
]


def make_state(scale: float = 1.0):
    return {
        "params": {"w": jnp.arange(12.0).reshape(3, 4) * scale, "b": jnp.full([4], scale)},
        "step": jnp.asarray(int(scale), jnp.int32),
    }


def make_iterator():
    loader = grain.DataLoader(
        data_source=list(range(50)),
        sampler=grain.samplers.IndexSampler(
            50, shard_options=grain.sharding.NoSharding(), shuffle=True, num_epochs=None, seed=7
        ),
        operations=[grain.transforms.Batch(4)],
        worker_count=0,
    )
    return iter(loader)


class DictStateIterator:
    """An iterator whose state is a JSON-able dict (like Grain's dataset iterators)."""

    def __init__(self):
        self.position = 0

    def __next__(self):
        self.position += 1
        return self.position

    def get_state(self):
        return {"position": self.position, "name": "counter"}

    def set_state(self, state):
        self.position = state["position"]


def _assert_states_equal(actual, expected):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_round_trip_restores_state_and_data_position(tmp_path):
    iterator = make_iterator()
    for _ in range(3):
        next(iterator)
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(3, make_state(3.0), data_iterator=iterator)
        expected_next = [next(iterator).tolist() for _ in range(5)]

        fresh = make_iterator()
        restored = checkpoints.restore(3, abstract_state(make_state()), data_iterator=fresh)
    _assert_states_equal(restored, make_state(3.0))
    assert [next(fresh).tolist() for _ in range(5)] == expected_next


def test_round_trip_of_a_dict_state_iterator(tmp_path):
    iterator = DictStateIterator()
    for _ in range(11):
        next(iterator)
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state(), data_iterator=iterator)
        fresh = DictStateIterator()
        checkpoints.restore(1, abstract_state(make_state()), data_iterator=fresh)
    assert fresh.position == 11
    with open(tmp_path / "1" / "data" / "process_0-of-1.json") as file:
        assert json.load(file) == {"json": {"position": 11, "name": "counter"}}


def test_keeps_the_last_n_and_the_best(tmp_path):
    scores = {2: 0.5, 4: 0.2, 6: 0.3}
    with TrainingCheckpoints(tmp_path, keep_last=2, best_metric="nme") as checkpoints:
        for step in range(1, 8):
            metrics = {"nme": scores[step]} if step in scores else None
            checkpoints.save(step, make_state(step), metrics=metrics)
        assert checkpoints.steps == [4, 6, 7]
        assert checkpoints.best_step() == 4
        assert checkpoints.latest_step == 7
    with TrainingCheckpoints(tmp_path, keep_last=2, best_metric="nme", best_mode="max") as checkpoints:
        assert checkpoints.best_step() == 6  # only 4 and 6 still carry the metric


def test_best_step_without_metrics_is_the_latest(tmp_path):
    with TrainingCheckpoints(tmp_path, best_metric="nme") as checkpoints:
        assert checkpoints.best_step() is None and checkpoints.latest_step is None
        checkpoints.save(1, make_state())
        checkpoints.save(2, make_state())
        assert checkpoints.best_step() == 2


def test_manifest_records_layout_and_sha256(tmp_path):
    state = make_state(2.0)
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(5, state)
    with open(tmp_path / "5" / "manifest" / "manifest.json") as file:
        manifest = json.load(file)
    assert manifest["layout"] == {
        "['params']['b']": "float32[4]",
        "['params']['w']": "float32[3, 4]",
        "['step']": "int32[]",
    }
    assert manifest["sha256"] == state_fingerprint(state)
    assert state_layout(abstract_state(state)) == manifest["layout"]


def test_fingerprint_sees_every_value_and_the_structure():
    reference = hashlib.sha256()
    state = make_state()
    assert len(state_fingerprint(state)) == len(reference.hexdigest())
    changed = jax.tree.map(lambda x: x, state)
    changed["params"]["w"] = changed["params"]["w"].at[2, 3].add(1e-6)
    assert state_fingerprint(changed) != state_fingerprint(state)
    renamed = {"params": {"w": state["params"]["w"], "c": state["params"]["b"]}, "step": state["step"]}
    assert state_fingerprint(renamed) != state_fingerprint(state)
    assert state_fingerprint(jax.tree.map(np.asarray, state)) == state_fingerprint(state)


def test_values_changed_after_saving_are_detected_and_skipped(tmp_path):
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state(1.0))
        checkpoints.save(2, make_state(2.0))
    manifest_path = tmp_path / "2" / "manifest" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = state_fingerprint(make_state(9.0))  # as if the array files held other values
    manifest_path.write_text(json.dumps(manifest))

    with TrainingCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(ValueError, match="does not match its fingerprint"):
            checkpoints.restore(2, abstract_state(make_state()))
        restored = checkpoints.restore_latest(abstract_state(make_state()))
        assert restored.step == 1
        assert [s.step for s in restored.skipped] == [2]
        assert "fingerprint" in restored.skipped[0].reason
        assert checkpoints.steps == [1]
    _assert_states_equal(restored.state, make_state(1.0))
    assert os.path.isdir(restored.skipped[0].moved_to)
    assert os.path.dirname(restored.skipped[0].moved_to) == str(tmp_path) + ".corrupt"


def make_large_state(scale: float = 1.0):
    """A state whose array data is too large to be inlined in the OCDBT index: it has its own files."""
    return {"w": jnp.arange(300_000.0).reshape(300, 1000) * scale, "step": jnp.asarray(int(scale), jnp.int32)}


@pytest.mark.parametrize(
    "damage, make",
    [(kind, make_state) for kind in DAMAGE_KINDS]
    + [(kind, make_large_state) for kind in DAMAGE_KINDS if kind.endswith("_arrays")],
)
def test_damaged_latest_is_quarantined_and_the_previous_restored(tmp_path, damage, make):
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make(1.0))
        checkpoints.save(2, make(2.0))
    damage_checkpoint(tmp_path / "2", damage)

    with TrainingCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(CorruptCheckpointError, match="Checkpoint at step 2 is corrupt") as raised:
            checkpoints.restore(2, abstract_state(make()))
        if damage != "empty_directory":  # the damaged file's read error is the cause
            assert raised.value.__cause__ is not None
        restored = checkpoints.restore_latest(abstract_state(make()))
        assert checkpoints.steps == [1]
    assert restored.step == 1
    assert [s.step for s in restored.skipped] == [2]
    reason = restored.skipped[0].reason
    assert ("manifest.json" if damage.endswith(("manifest", "directory")) else "a file of it is damaged") in reason
    _assert_states_equal(restored.state, make(1.0))
    assert os.listdir(str(tmp_path) + ".corrupt") == [os.path.basename(restored.skipped[0].moved_to)]
    assert not os.path.exists(tmp_path / "2")


def _load_then_fail(error, *, when_loading):
    """A replacement for Orbax's load that does the real read of `when_loading`, then raises `error`."""
    real_load = checkpointing.ocp.training.Checkpointer.load_checkpointables

    def load(self, step, targets):
        loaded = real_load(self, step, targets)
        if when_loading in targets:
            raise error
        return loaded

    return load


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(13, "Permission denied"),
        OSError(5, "Input/output error"),  # a transient failure of the storage, not a damaged file
        ValueError("UNAVAILABLE: connection reset"),  # what TensorStore says for a transient failure
        RuntimeError("a bug"),
        TypeError("a bug"),
    ],
    ids=lambda error: type(error).__name__ + "-" + str(error).split(":")[0][:12],
)
@pytest.mark.parametrize("stage", ["manifest", "state"])
def test_an_error_that_is_not_corruption_propagates_and_nothing_is_moved(
    tmp_path, monkeypatch, error, stage
):
    saved = DictStateIterator()
    saved.position = 11
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state(1.0), data_iterator=saved)
        checkpoints.save(2, make_state(2.0), data_iterator=saved)
    monkeypatch.setattr(
        checkpointing.ocp.training.Checkpointer, "load_checkpointables", _load_then_fail(error, when_loading=stage)
    )
    fresh = DictStateIterator()
    fresh.position = 3
    with TrainingCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(type(error)) as raised:
            checkpoints.restore_latest(abstract_state(make_state()), data_iterator=fresh)
        assert raised.value is error and not isinstance(raised.value, CorruptCheckpointError)
        assert checkpoints.steps == [1, 2]
    assert fresh.position == 3  # the state stage's real read had set it to 11: put back
    assert not os.path.exists(str(tmp_path) + ".corrupt")

    monkeypatch.undo()  # the checkpoints are intact: the next attempt resumes from the latest
    with TrainingCheckpoints(tmp_path) as checkpoints:
        assert checkpoints.restore_latest(abstract_state(make_state()), data_iterator=fresh).step == 2
    assert fresh.position == 11


def test_a_damaged_file_error_from_the_read_is_corruption_even_if_the_files_look_fine(tmp_path, monkeypatch):
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state(1.0))
        checkpoints.save(2, make_state(2.0))
    data_loss = ValueError('DATA_LOSS: Error reading shard entry {0, 0}/{1, 1} in "w/c/0/0"')
    monkeypatch.setattr(
        checkpointing.ocp.training.Checkpointer,
        "load_checkpointables",
        _load_then_fail(data_loss, when_loading="state"),
    )
    with TrainingCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(CorruptCheckpointError, match="DATA_LOSS") as raised:
            checkpoints.restore(2, abstract_state(make_state()))
    assert raised.value.__cause__ is data_loss


def test_checkpoint_without_a_data_position_is_an_error_when_one_is_asked_for(tmp_path):
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state())
        with pytest.raises(IncompatibleCheckpointError, match="no data-iterator position"):
            checkpoints.restore_latest(abstract_state(make_state()), data_iterator=DictStateIterator())
        assert checkpoints.steps == [1]
    assert not os.path.exists(str(tmp_path) + ".corrupt")


def test_no_intact_checkpoint_gives_none(tmp_path):
    with TrainingCheckpoints(tmp_path) as checkpoints:
        assert checkpoints.restore_latest(abstract_state(make_state())) is None
        checkpoints.save(1, make_state())
    os.remove(tmp_path / "1" / "manifest" / "manifest.json")
    with TrainingCheckpoints(tmp_path) as checkpoints:
        assert checkpoints.restore_latest(abstract_state(make_state())) is None
        assert checkpoints.steps == []


def test_incompatible_state_is_an_error_and_nothing_is_moved(tmp_path):
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state())
        other = {"params": {"w": jnp.zeros([3, 5]), "b": jnp.zeros([4])}, "step": jnp.zeros([], jnp.int32)}
        with pytest.raises(IncompatibleCheckpointError, match=r"\['params'\]\['w'\] is float32\[3, 4\]"):
            checkpoints.restore_latest(abstract_state(other))
        missing = {"params": {"w": jnp.zeros([3, 4])}, "step": jnp.zeros([], jnp.int32)}
        with pytest.raises(IncompatibleCheckpointError, match="different state structure"):
            checkpoints.restore_latest(abstract_state(missing))
        assert checkpoints.steps == [1]
    assert not os.path.exists(str(tmp_path) + ".corrupt")


def test_checkpoint_of_another_process_count_is_an_error_and_nothing_is_moved(tmp_path):
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state(), data_iterator=DictStateIterator())
    data_dir = tmp_path / "1" / "data"
    os.rename(data_dir / "process_0-of-1.json", data_dir / "process_0-of-2.json")  # as if from 2 processes
    with TrainingCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(IncompatibleCheckpointError, match="different number of processes"):
            checkpoints.restore_latest(abstract_state(make_state()), data_iterator=DictStateIterator())
        assert checkpoints.steps == [1]


def test_checkpoint_of_another_data_pipeline_is_an_error_and_nothing_is_moved(tmp_path):
    iterator = make_iterator()
    next(iterator)
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state(), data_iterator=iterator)
    other_source = iter(
        grain.DataLoader(
            data_source=list(range(60)),  # another data source: Grain refuses the saved position
            sampler=grain.samplers.IndexSampler(
                60, shard_options=grain.sharding.NoSharding(), shuffle=True, num_epochs=None, seed=7
            ),
            operations=[grain.transforms.Batch(4)],
            worker_count=0,
        )
    )
    with TrainingCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(IncompatibleCheckpointError, match="data settings"):
            checkpoints.restore_latest(abstract_state(make_state()), data_iterator=other_source)
        assert checkpoints.steps == [1]
    assert not os.path.exists(str(tmp_path) + ".corrupt")


class TwoPartIterator:
    """Restores a first part, then fails on the second, like a MixedIterator whose clips changed."""

    def __init__(self):
        self.first, self.second = 0, 0

    def get_state(self):
        return {"first": self.first, "second": self.second}

    def set_state(self, state):
        self.first = state["first"]
        if state["second"] < 0:
            raise ValueError("second part refuses this state")
        self.second = state["second"]


def test_a_failed_restore_leaves_the_data_iterator_where_it_was(tmp_path):
    saved = TwoPartIterator()
    saved.first, saved.second = 5, -1  # its second part will refuse this on restore
    with TrainingCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, make_state(), data_iterator=saved)
        fresh = TwoPartIterator()
        with pytest.raises(IncompatibleCheckpointError):
            checkpoints.restore_latest(abstract_state(make_state()), data_iterator=fresh)
    assert (fresh.first, fresh.second) == (0, 0)  # not half-restored to the refused checkpoint


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="keep_last must be >= 1"):
        TrainingCheckpoints(tmp_path, keep_last=0)
    with pytest.raises(ValueError, match="best_mode must be 'min' or 'max'"):
        TrainingCheckpoints(tmp_path, best_mode="lowest")

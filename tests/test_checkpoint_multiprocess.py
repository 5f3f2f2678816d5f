"""Two processes restoring checkpoints together agree on what is corrupt.

Each process has 2 virtual CPU devices (tests/_multiprocess.py). They save three checkpoints of a
replicated state, each with its own data-iterator position, then one checkpoint is damaged or one
process's read fails otherwise, and both call `restore_latest`: either both fall back to the same
earlier step and exactly one directory is quarantined, or both raise and nothing is moved.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from _multiprocess import run_processes

WORKER = textwrap.dedent(
    """
    import json
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils
    from _checkpoint_damage import damage_checkpoint, damage_file
    from landmarkjax.training import checkpointing, sharding
    from landmarkjax.training.checkpointing import TrainingCheckpoints, abstract_state

    directory, outdir, damage = args
    process = jax.process_index()
    replicated = sharding.replicated_sharding(sharding.make_data_mesh())


    def make_state(step):
        state = {"w": jnp.full([4, 3], float(step)), "step": jnp.asarray(step, jnp.int32)}
        return jax.device_put(state, replicated)


    class Counter:
        def __init__(self, position):
            self.position = position

        def get_state(self):
            return {"position": self.position}

        def set_state(self, state):
            self.position = state["position"]


    with TrainingCheckpoints(directory) as checkpoints:
        for step in (1, 2, 3):
            checkpoints.save(step, make_state(step), data_iterator=Counter(10 * step + process))
    if damage == "garbage_arrays" and process == 0:
        damage_checkpoint(os.path.join(directory, "3"), damage)
    if damage == "garbage_data_of_process_1" and process == 1:  # only process 1 reads a damaged file
        damage_file(os.path.join(directory, "3", "data", "process_1-of-2.json"), "garbage")
    multihost_utils.sync_global_devices("damaged")

    if os.environ.get("LANDMARKJAX_TEST_FAIL_READ"):  # a failure that is not corruption, here only
        real_load = checkpointing.ocp.training.Checkpointer.load_checkpointables

        def failing_load(self, step, targets):
            real_load(self, step, targets)
            raise PermissionError(13, "Permission denied (injected)")

        checkpointing.ocp.training.Checkpointer.load_checkpointables = failing_load

    counter = Counter(-1)
    with TrainingCheckpoints(directory) as checkpoints:
        try:
            restored = checkpoints.restore_latest(abstract_state(make_state(0)), data_iterator=counter)
            record = {
                "step": restored.step,
                "skipped": [[s.step, s.moved_to] for s in restored.skipped],
                "w": float(np.asarray(restored.state["w"].addressable_data(0))[0, 0]),
            }
        except Exception as error:
            record = {"error": type(error).__name__, "message": str(error)}
        record.update(position=counter.position, steps=checkpoints.steps)
    with open(os.path.join(outdir, f"out{process}.json"), "w") as file:
        json.dump(record, file)
    """
)


def _run(tmp_path, damage, extra_env=None):
    directory = tmp_path / "checkpoints"
    results = run_processes(
        tmp_path / "worker.py", WORKER, [str(directory), str(tmp_path), damage], extra_env=extra_env
    )
    for returncode, log in results:
        assert returncode == 0, log[-3000:]
    return directory, [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]


@pytest.mark.parametrize("damage", ["garbage_arrays", "garbage_data_of_process_1"])
def test_both_processes_skip_a_corrupt_checkpoint_together(tmp_path, damage):
    directory, records = _run(tmp_path, damage)
    quarantined = os.listdir(str(directory) + ".corrupt")
    assert len(quarantined) == 1 and quarantined[0].startswith("3-")
    moved_to = os.path.join(str(directory) + ".corrupt", quarantined[0])
    for process, record in enumerate(records):
        assert "error" not in record, record
        assert record["step"] == 2 and record["w"] == 2.0
        assert record["skipped"] == [[3, moved_to]]
        assert record["position"] == 20 + process  # each process's own saved position
        assert record["steps"] == [1, 2]
    assert sorted(os.listdir(directory)) == ["1", "2"]


def test_an_error_that_is_not_corruption_on_one_process_stops_both_and_moves_nothing(tmp_path):
    directory, records = _run(tmp_path, "none", extra_env={1: {"LANDMARKJAX_TEST_FAIL_READ": "1"}})
    assert records[1]["error"] == "PermissionError"
    assert records[0]["error"] == "RuntimeError" and "process(es) [1]" in records[0]["message"]
    for record in records:
        assert record["position"] == -1  # the data iterators are where they were
        assert record["steps"] == [1, 2, 3]
    assert sorted(os.listdir(directory)) == ["1", "2", "3"]
    assert not os.path.exists(str(directory) + ".corrupt")

"""Two processes on localhost joined by `jax.distributed.initialize` train together.

Each process has 2 virtual CPU devices (4 in all) and loads its own half of every batch; the gloo CPU
collectives all-reduce the gradients. Both must end with the same state, and together write one
checkpoint holding both processes' data-iterator positions.
"""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest
from _multiprocess import run_processes

WORKER = textwrap.dedent(
    """
    import importlib.util, json
    workdir, outdir = args
    import jax
    import numpy as np
    from landmarkjax.training.checkpointing import TrainingCheckpoints, state_fingerprint
    from landmarkjax.training.loop import train
    from landmarkjax.training import sharding

    spec = importlib.util.spec_from_file_location("toy", os.path.join(tests_dir, "test_training_loop.py"))
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    config = toy.regression_config(total_steps=6, eval_every=3, checkpoint_every=3, num_train=48)
    method = toy.LinearRegressionMethod(config)
    result = train(method, workdir)

    mesh = sharding.make_data_mesh()
    abstract = jax.eval_shape(method.init_state, jax.random.key(0))
    replicated = sharding.replicated_sharding(mesh)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
    with TrainingCheckpoints(os.path.join(workdir, "checkpoints")) as checkpoints:
        state = checkpoints.restore(6, abstract)
    local = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)).tolist(), state.params)
    record = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "result": result,
        "fingerprint": state_fingerprint(state),
        "params": local,
    }
    with open(os.path.join(outdir, f"out{jax.process_index()}.json"), "w") as file:
        json.dump(record, file)
    """
)


@pytest.mark.slow
def test_two_processes_train_together_and_checkpoint(tmp_path):
    workdir = tmp_path / "run"
    results = run_processes(tmp_path / "worker.py", WORKER, [str(workdir), str(tmp_path)], timeout=300)
    for returncode, log in results:
        assert returncode == 0, log[-3000:]

    records = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    assert [r["process_index"] for r in records] == [0, 1]
    assert all(
        r["process_count"] == 2 and r["device_count"] == 4 and r["local_device_count"] == 2 for r in records
    )
    # Same state everywhere: identical fingerprints of the global state and identical local copies.
    assert records[0]["fingerprint"] == records[1]["fingerprint"]
    for name in ("w", "b"):
        np.testing.assert_array_equal(records[0]["params"][name], records[1]["params"][name])
    assert records[0]["result"] == records[1]["result"]
    assert records[0]["result"]["count"] == 20  # each process evaluated its half; the metrics cover all
    # Training moved the weights toward the true ones from a random start.
    assert np.abs(np.asarray(records[0]["params"]["w"]) - np.array([1.5, -2.0, 0.5])).max() < 1.5

    checkpoint_dir = workdir / "checkpoints"
    assert sorted(os.listdir(checkpoint_dir)) == ["3", "6"]
    assert sorted(os.listdir(checkpoint_dir / "6" / "data")) == [
        "commit_success.txt",
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]
    # Only process 0 writes the metrics log.
    with open(workdir / "metrics.jsonl") as file:
        train_steps = [json.loads(line)["step"] for line in file if '"split": "train"' in line]
    assert train_steps == [1, 2, 3, 4, 5, 6]

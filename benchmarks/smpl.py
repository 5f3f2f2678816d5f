"""SMPL forward-pass throughput: landmarkjax's `smpl_forward` (jit) against the PyTorch `smplx` package.

Usage:
  python benchmarks/smpl.py [--batch-sizes 1,64,1024] [--models synthetic,smpl_sized] [--seconds 2]

`smplx` and `torch` are benchmark-only dependencies (not needed by landmarkjax):
  pip install torch==2.13.0   # the CPU wheel
  pip install --no-deps smplx

Two models: `synthetic` is landmarkjax's procedural SMPL-format model (seed 0, about 4,300 vertices);
`smpl_sized` has the official SMPL model's array shapes (6,890 vertices, 13,776 faces, 10 betas) filled
with random values of a plausible scale, since the cost of the forward pass depends only on the shapes.
Both implementations get the same arrays (smplx through its `data_struct` argument) and the same random
inputs; the script first checks that they agree (max abs difference of vertices and joints) and prints one
JSON line per figure: agreement of vertices, joints and of the gradients of a vertex loss with respect to
every input, compile times (lowering and compilation of the jitted functions, separately), then for the
forward pass and for forward + backward (the gradient of the mean squared vertex coordinate with respect
to betas, pose, orientation and translation) milliseconds per call (wall clock, and the process's CPU time
over all threads) and bodies per second. Timings are medians over 7 repeats, all calls interleaved so that
they see the same machine load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.body.io import smpl_from_arrays, smpl_to_arrays
from landmarkjax.body.forward_pass import smpl_forward
from landmarkjax.body.synthetic_smpl import make_synthetic_smpl


def smpl_sized_model(seed: int = 0):
    """Random arrays with the official SMPL shapes (V = 6890, F = 13776, J = 24, 10 betas, 207 posedirs)."""
    rng = np.random.default_rng(seed)
    num_vertices, num_joints = 6890, 24
    base = make_synthetic_smpl(seed)
    weights = rng.random((num_vertices, num_joints)) ** 8  # mostly small, a few dominant joints per vertex
    j_regressor = np.zeros((num_joints, num_vertices))
    for joint in range(num_joints):
        j_regressor[joint, rng.choice(num_vertices, 30, replace=False)] = 1.0 / 30
    arrays = {
        "v_template": rng.normal(scale=0.3, size=(num_vertices, 3)),
        "shapedirs": rng.normal(scale=0.01, size=(num_vertices, 3, 10)),
        "posedirs": rng.normal(scale=0.005, size=(num_vertices, 3, 207)),
        "J_regressor": j_regressor,
        "weights": weights / weights.sum(axis=1, keepdims=True),
        "kintree_table": smpl_to_arrays(base)["kintree_table"],
        "f": rng.integers(0, num_vertices, size=(13776, 3)),
    }
    return smpl_from_arrays(arrays, source="smpl_sized")


def make_inputs(batch: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "betas": rng.normal(size=(batch, 10)).astype(np.float32),
        "body_pose": rng.normal(scale=0.3, size=(batch, 69)).astype(np.float32),
        "global_orient": rng.normal(scale=0.5, size=(batch, 3)).astype(np.float32),
        "transl": rng.normal(scale=0.1, size=(batch, 3)).astype(np.float32),
    }


def time_calls(calls: dict, seconds: float, repeats: int = 7) -> dict:
    """Median (wall seconds, process CPU seconds) per call for each named call.

    The calls are interleaved, repeat by repeat, so that each sees the same machine load."""
    per_repeat = {}
    for name, call in calls.items():
        call()
        start = time.perf_counter()
        call()
        once = max(time.perf_counter() - start, 1e-6)
        per_repeat[name] = max(1, int(seconds / repeats / once))
    walls = {name: [] for name in calls}
    cpus = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(per_repeat[name]):
                call()
            walls[name].append((time.perf_counter() - wall) / per_repeat[name])
            cpus[name].append((time.process_time() - cpu) / per_repeat[name])
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in calls}


def smplx_layer(model, batch: int):
    import smplx
    import torch
    from smplx.utils import Struct

    arrays = smpl_to_arrays(model)
    arrays["J_regressor"] = arrays["J_regressor"].astype(np.float64)
    # smplx appends 5 vertex-picked face keypoints; any valid vertex ids do for timing.
    vertex_ids = {name: index for index, name in enumerate(("nose", "reye", "leye", "rear", "lear"))}
    return smplx.SMPL(
        model_path="",
        data_struct=Struct(**arrays),
        batch_size=batch,
        vertex_ids=vertex_ids,
        use_hands=False,
        use_feet_keypoints=False,
        dtype=torch.float32,
    )


def _xla_gflop(compiled) -> float | None:
    """XLA's FLOP count of a compiled function. A while loop is counted once, not per iteration, so for the
    chunked pass this is one chunk's products plus the rest; the by-hand count is in BENCHMARKS.md."""
    try:
        analysis = compiled.cost_analysis()
        analysis = analysis[0] if isinstance(analysis, list) else analysis
        return round(float(analysis["flops"]) / 1e9, 3)
    except Exception:  # cost analysis is best-effort on some backends
        return None


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def _vertex_loss(vertices):
    """Mean squared vertex coordinate: the loss whose gradient both implementations compute."""
    return (vertices**2).mean()


def jax_calls(model, inputs: dict[str, np.ndarray], common: dict) -> tuple[dict, dict]:
    """Compiled forward and forward+backward calls, with their compile times emitted."""
    jax_inputs = {key: jnp.asarray(value) for key, value in inputs.items()}

    def loss(arguments):
        return _vertex_loss(smpl_forward(model, **arguments).vertices)

    functions = {
        "forward": jax.jit(smpl_forward).lower(model, **jax_inputs),
        "forward_backward": jax.jit(jax.grad(loss)).lower(jax_inputs),
    }
    compiled = {}
    for name, lowered in functions.items():
        start = time.perf_counter()
        compiled[name] = lowered.compile()
        emit(
            figure=f"{name}_compile_s",
            impl="landmarkjax",
            value=round(time.perf_counter() - start, 3),
            **common,
        )
        emit(figure=f"{name}_xla_gflop", impl="landmarkjax", value=_xla_gflop(compiled[name]), **common)
    outputs = {
        "forward": compiled["forward"](model, **jax_inputs),
        "gradients": compiled["forward_backward"](jax_inputs),
    }
    calls = {
        "forward": lambda: jax.block_until_ready(compiled["forward"](model, **jax_inputs).vertices),
        "forward_backward": lambda: jax.block_until_ready(compiled["forward_backward"](jax_inputs)),
    }
    return calls, outputs


def smplx_calls(model, inputs: dict[str, np.ndarray]) -> tuple[dict, dict]:
    import torch

    layer = smplx_layer(model, len(inputs["betas"]))

    def forward():
        with torch.inference_mode():
            return layer(**{key: torch.from_numpy(value) for key, value in inputs.items()})

    def forward_backward():
        leaves = {key: torch.from_numpy(value).requires_grad_() for key, value in inputs.items()}
        _vertex_loss(layer(**leaves).vertices).backward()
        return {key: leaf.grad for key, leaf in leaves.items()}

    return {"forward": forward, "forward_backward": forward_backward}, {
        "forward": forward(),
        "gradients": forward_backward(),
    }


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def floor_calls(model, batch: int) -> tuple[dict, dict]:
    """Plain `jnp.dot`s of the pass's two big products, for the FLOP floor measured in the same run:
    blend shapes [B, S + P] x [S + P, 3V] and skinning [12B, J] x [J, V]. Returns (calls, FLOPs per call)."""
    rng = np.random.default_rng(2)
    num_features = model.num_betas + model.posedirs.shape[-1]
    shapes = {
        "dot_blend": ((batch, num_features), (num_features, 3 * model.num_vertices)),
        "dot_skin": ((12 * batch, model.num_joints), (model.num_joints, model.num_vertices)),
    }
    dot = jax.jit(jnp.dot)
    calls, flops = {}, {}
    for name, (left, right) in shapes.items():
        a = jnp.asarray(rng.normal(size=left).astype(np.float32))
        b = jnp.asarray(rng.normal(size=right).astype(np.float32))
        calls[name] = lambda a=a, b=b: jax.block_until_ready(dot(a, b))
        flops[name] = 2 * left[0] * left[1] * right[1]
    return calls, flops


def run(model_name: str, model, batch_sizes: list[int], seconds: float, with_smplx: bool) -> None:
    for batch in batch_sizes:
        common = dict(
            model=model_name, vertices=model.num_vertices, batch=batch, device=jax.devices()[0].platform
        )
        inputs = make_inputs(batch)
        ours, our_outputs = jax_calls(model, inputs, common)
        calls = {("landmarkjax", kind): call for kind, call in ours.items()}
        floors, floor_flops = floor_calls(model, batch)
        calls.update({("jnp.dot", kind): call for kind, call in floors.items()})
        if with_smplx:
            theirs, their_outputs = smplx_calls(model, inputs)
            calls.update({("smplx", kind): call for kind, call in theirs.items()})
            ours_forward, their_forward = our_outputs["forward"], their_outputs["forward"]
            emit(
                figure="max_abs_diff_vs_smplx",
                vertices_abs=float(
                    np.max(np.abs(np.asarray(ours_forward.vertices) - their_forward.vertices.numpy()))
                ),
                joints_abs=float(
                    np.max(np.abs(np.asarray(ours_forward.joints) - their_forward.joints[:, :24].numpy()))
                ),
                **{
                    f"grad_{key}_relative": float(
                        np.max(np.abs(np.asarray(our_outputs["gradients"][key]) - value.numpy()))
                        / max(float(np.max(np.abs(value.numpy()))), 1e-30)
                    )
                    for key, value in their_outputs["gradients"].items()
                },
                **common,
            )
        load_before = load_average()
        for (implementation, kind), (wall, cpu) in time_calls(calls, seconds).items():
            extra = {}
            if implementation == "jnp.dot":
                extra = dict(gflop=round(floor_flops[kind] / 1e9, 3), gflop_per_s=round(floor_flops[kind] / wall / 1e9, 1))
            emit(
                figure=f"{kind}_throughput",
                impl=implementation,
                ms_per_call=round(wall * 1e3, 4),
                cpu_ms_per_call=round(cpu * 1e3, 4),
                bodies_per_s=round(batch / wall, 1),
                load_average_1min=[load_before, load_average()],
                **extra,
                **common,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-sizes", default="1,64,1024")
    parser.add_argument("--models", default="synthetic,smpl_sized")
    parser.add_argument("--seconds", type=float, default=2.0, help="approximate timing budget per figure")
    parser.add_argument("--no-smplx", action="store_true", help="time landmarkjax only")
    args = parser.parse_args()
    with_smplx = importlib.util.find_spec("smplx") is not None and not args.no_smplx
    if not with_smplx and not args.no_smplx:
        print("smplx (and torch) not installed: timing landmarkjax and the jnp.dot floor only; "
              "`pip install torch==2.13.0 && pip install --no-deps smplx` adds the peer", flush=True)
    torch_info = {}
    if with_smplx:
        import torch

        torch_info = dict(torch=torch.__version__, torch_threads=torch.get_num_threads())
    emit(
        figure="machine",
        cpu_count=os.cpu_count(),
        processor=platform.processor() or platform.machine(),
        jax=jax.__version__,
        jax_devices=[str(device) for device in jax.devices()],
        smplx_available=with_smplx,
        **torch_info,
    )
    models = {"synthetic": lambda: make_synthetic_smpl(0), "smpl_sized": smpl_sized_model}
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    for name in args.models.split(","):
        run(name, models[name](), batch_sizes, args.seconds, with_smplx)


if __name__ == "__main__":
    main()

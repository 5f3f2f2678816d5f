"""Fast HMR probes: the method's own `train_step` / `eval_step` / `summarize` on people rendered once.

Not the table (that is `run_table.py`, through `train.py`'s loop): a plain loop over cached arrays, so that
a few hundred steps take about a minute and several settings can be compared on the same people. It also
reports the TRAINING-set metrics (is the network fitting at all?) and splits the test errors by how far
the body is turned from the camera (|yaw|), with the fraction of people whose predicted hip line points the
right way (left/right, i.e. front/back, resolved).

    PYTHONPATH=$PWD python experiments/hmr/probe.py --steps=400 --set hmr.adversarial_weight=0.0
    PYTHONPATH=$PWD python experiments/hmr/probe.py --steps=400 --set model.pose_representation=6d

The people are rendered once into --cache (npz; train seed 0, test seed 1, as the config's defaults), the
discriminator's mocap bodies are `SyntheticMocapSource(4096, seed=0)`. Every person in a batch has paired 3D
(`has_3d` = 1; set --set hmr.use_3d=False for the rows without it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

KEYS = ("image", "keypoints_2d", "visibility", "joints_3d", "pose", "betas", "camera")


def cached_people(path: str, size: int, count: int, seed: int) -> dict[str, np.ndarray]:
    if os.path.exists(path):
        data = dict(np.load(path))
        if len(data["image"]) >= count and data["image"].shape[1] == size:
            return {key: value[:count] for key, value in data.items()}
    from landmarkjax.data.sources import SyntheticPeopleSource

    source = SyntheticPeopleSource(count, size, 2, 0, seed)
    records = [source[index] for index in range(count)]
    data = {key: np.stack([record[key] for record in records]) for key in KEYS}
    np.savez(path, **data)
    return data


def facing_yaw_deg(pose: np.ndarray) -> np.ndarray:
    """[N, 72] poses -> [N] degrees the body's forward axis is turned from facing the camera."""
    from scipy.spatial.transform import Rotation

    forward = Rotation.from_rotvec(pose[:, :3]).as_matrix()[:, :, 2]  # SMPL's forward axis (z) in the camera
    return np.degrees(np.arctan2(forward[:, 0], -forward[:, 2]))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_train", type=int, default=1024)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log_every", type=int, default=100)
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE (repeatable)")
    parser.add_argument("--cache", default=os.path.join("workdir", "hmr_probe"))
    args = parser.parse_args(argv)

    import jax

    from landmarkjax import metrics
    from landmarkjax.configs.hmr import get_config
    from landmarkjax.data.sources import SyntheticMocapSource
    from landmarkjax.methods.hmr import build

    config = get_config()
    config.data.image_size, config.total_steps, config.batch_size = args.size, args.steps, args.batch_size
    config.data.num_train = config.data.num_test = 8  # the method's own sources are not used
    config.data.num_mocap = 64
    config.optimizer.warmup_steps = max(1, args.steps // 20)
    config.hmr.discriminator_start = args.steps // 2
    for item in args.set:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        old = node[leaf]
        node[leaf] = (value == "True") if isinstance(old, bool) else type(old)(value)
    method = build(config)

    os.makedirs(args.cache, exist_ok=True)
    train = cached_people(os.path.join(args.cache, f"train{args.size}.npz"), args.size, args.num_train, 0)
    test = cached_people(os.path.join(args.cache, f"test{args.size}.npz"), args.size, 256, 1)
    mocap = [SyntheticMocapSource(4096, seed=0)[index] for index in range(4096)]
    mocap_pose = np.stack([record["pose"] for record in mocap])
    mocap_betas = np.stack([record["betas"] for record in mocap])

    def batch_of(data: dict, index: np.ndarray) -> dict:
        return {
            "image": data["image"][index].astype(np.float32) / 255.0,
            "keypoints_2d": data["keypoints_2d"][index],
            "visibility": data["visibility"][index].astype(np.float32),
            "joints_3d": data["joints_3d"][index],
            "pose": data["pose"][index],
            "betas": data["betas"][index],
            "has_3d": np.ones(len(index), np.float32),
        }

    frozen = method.frozen_inputs()
    state = jax.jit(method.init_state)(jax.random.key(args.seed))
    phases = [phase.name for phase in method.phases()]
    steps = {name: jax.jit(lambda s, b, r, f, name=name: method.train_step(s, b, r, f, phase=name)) for name in phases}
    rng, key = np.random.default_rng(args.seed), jax.random.key(args.seed + 100)
    start, history = time.time(), []
    for step in range(args.steps):
        adversarial = "adversarial" in phases and step >= config.hmr.discriminator_start
        phase = "adversarial" if adversarial else phases[0]
        batch = batch_of(train, rng.integers(0, len(train["image"]), args.batch_size))
        if phase == "adversarial":
            pick = rng.integers(0, len(mocap_pose), args.batch_size * config.hmr.discriminator_steps)
            batch["mocap_pose"], batch["mocap_betas"] = mocap_pose[pick], mocap_betas[pick]
        key, step_key = jax.random.split(key)
        state, step_metrics = steps[phase](state, batch, step_key, frozen)
        history.append({name: float(value) for name, value in step_metrics.items() if name.endswith("loss")})
        if (step + 1) % args.log_every == 0:
            recent = history[-args.log_every :]
            names = sorted({name for record in recent for name in record})
            means = {name: round(float(np.mean([r[name] for r in recent if name in r])), 4) for name in names}
            print(step + 1, f"{time.time() - start:.0f}s", means, flush=True)

    evaluate = jax.jit(method.eval_step)

    def outputs_of(data: dict) -> dict:
        parts = []
        for first in range(0, 256, 64):
            index = np.arange(first, min(256, len(data["image"]), first + 64))
            parts.append(jax.tree.map(np.asarray, evaluate(state, batch_of(data, index), frozen)))
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    keep = ("mpjpe", "pa_mpjpe", "pck@0.1", "pose_outside_limits", "mean_abs_betas")
    result = {}
    for split, data in (("train", train), ("test", test)):
        summary = method.summarize(outputs_of(data))
        result[split] = {name: round(summary[name], 3) for name in keep}
    out = outputs_of(test)
    pred, true = out["pred_joints_3d"] * 1000.0, out["true_joints_3d"] * 1000.0
    mpjpe = np.asarray(metrics.mpjpe(pred, true, root_joint=(2, 3)))
    pa_mpjpe = np.asarray(metrics.pa_mpjpe(pred, true))
    yaw = np.abs(facing_yaw_deg(test["pose"][: len(pred)]))
    for low, high in ((0, 45), (45, 90), (90, 135), (135, 181)):
        chosen = (yaw >= low) & (yaw < high)
        result[f"test |yaw| {low}-{high}"] = {
            "n": int(chosen.sum()), "mpjpe": round(float(mpjpe[chosen].mean()), 1),
            "pa_mpjpe": round(float(pa_mpjpe[chosen].mean()), 1),
        }
    hips_pred, hips_true = pred[:, 3] - pred[:, 2], true[:, 3] - true[:, 2]
    result["test hip line the right way"] = round(float(np.mean(np.sum(hips_pred * hips_true, -1) > 0)), 3)
    result["seconds"] = round(time.time() - start)
    print(json.dumps({"settings": args.set, "steps": args.steps, **result}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

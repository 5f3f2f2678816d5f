"""The README table of the vos method on the synthetic object videos: one JSON line per (row, seed).

Rows (same data, encoder, evaluation videos and budget; see landmarkjax/configs/vos.py):

  raw_colour       Lab pixels averaged over 4 x 4 cells as features (no learning)
  random_init      the encoder at initialisation (no training)
  pairwise         MAST's released training: one reference frame (t - 1)
  memory           multi-frame memory training (references 0, 2, 4 of a 6-frame clip)
  memory_momentum  memory training + Zhu et al.'s momentum (EMA) key encoder, m = 0.99

Run (CPU scale; each line appended to --output):

    python experiments/vos/run_table.py --seeds=0,1,2 --steps=2000
    python experiments/vos/run_table.py --rows=raw_colour --seeds=0 --num_test=2 --eval_frames=6   # a check

Each trained run keeps its workdir under --workdir_root/<row>_seed<seed>. The seed changes the encoder's
initialisation, the training videos' order and crops; the evaluation videos (data.test_seed) are the same
for every row and seed.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax

from landmarkjax.configs.vos import get_config
from landmarkjax.methods.vos import VosMethod
from landmarkjax.runs import train_and_evaluate

ROWS = {
    "raw_colour": dict(features="raw_lab"),
    "random_init": dict(),
    "pairwise": dict(mode="pairwise"),
    "memory": dict(mode="memory"),
    "memory_momentum": dict(mode="memory", momentum=0.99),
}
UNTRAINED = ("raw_colour", "random_init")


def row_config(row: str, seed: int, args: argparse.Namespace):
    config = get_config()
    config.seed = seed
    config.total_steps = args.steps
    config.eval_every = 0
    config.checkpoint_every = 0
    config.data.num_test = args.num_test
    config.data.eval_frames = args.eval_frames
    config.vos.update(ROWS[row])
    return config


def run(row: str, seed: int, args: argparse.Namespace) -> dict:
    config = row_config(row, seed, args)
    started = time.perf_counter()
    if row in UNTRAINED:
        method = VosMethod(config)
        state = jax.jit(method.init_state)(jax.random.split(jax.random.key(seed))[0])  # the loop's init key
        result = {"step": 0, **method.evaluate(state, {}, None)}
    else:
        result = train_and_evaluate(config, os.path.join(args.workdir_root, f"{row}_seed{seed}"))
    return {
        "row": row,
        "seed": seed,
        "steps": 0 if row in UNTRAINED else args.steps,
        "seconds": round(time.perf_counter() - started, 1),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows among {list(ROWS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of the trained rows")
    parser.add_argument("--num_test", type=int, default=16, help="evaluation videos")
    parser.add_argument("--eval_frames", type=int, default=12, help="frames per evaluation video")
    parser.add_argument("--workdir_root", default="./workdir/vos_table")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results.jsonl"))
    args = parser.parse_args()
    rows = args.rows.split(",")
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        raise SystemExit(f"--rows: unknown rows {unknown}; expected some of {list(ROWS)}")
    for row in rows:
        for seed in (int(s) for s in args.seeds.split(",")):
            record = run(row, seed, args)
            with open(args.output, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

"""Write a vos run's predicted masks as DAVIS results, for the official DAVIS evaluation tool.

    python scripts/write_davis_predictions.py --workdir=./workdir/vos --output_dir=./results/vos
    python scripts/write_davis_predictions.py --workdir=./workdir/vos --output_dir=./results/vos_davis \
        --config.data.source=davis2017 --config.data.tfds_data_dir=/data/tfds     # a synthetic-trained run on DAVIS
    python scripts/write_davis_predictions.py --baseline=raw_colour --output_dir=./results/raw_colour \
        --config.data.source=davis2017 --config.data.tfds_data_dir=/data/tfds
    python scripts/write_davis_predictions.py --baseline=random_init --output_dir=./results/random_init

For every evaluation video of the run's config (the synthetic object videos, or `data.eval_split` of a
built davis2017) the first frame's masks are propagated through the whole video (`VosMethod.segment_video`)
and written as `<output_dir>/<sequence>/<frame>.png`: 8-bit palette PNGs of object ids (DAVIS palette), at
the video's own resolution, frame names as in DAVIS (synthetic videos: `video_00000/00000.png`, ...).
That is the layout the official tool reads:

    python evaluation_method.py --task semi-supervised --davis_path /data/DAVIS --results_path ./results/vos

(github.com/davisvideochallenge/davis2017-evaluation; it scores frames 1..T-2 as `eval.py` does).

The trained run's own config (`<workdir>/config.json`) is used, with `--config.<field>=...` overrides on
top; `--step` picks a checkpoint (default the best). `--baseline` needs no run: `raw_colour` propagates with
Lab pixels as features (`vos.features=raw_lab`), `random_init` with the encoder at its initialisation
(the training loop's initial key for `config.seed`), both with the vos defaults (`--config=FILE` for others).
Prints one JSON line at the end.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags
from tqdm import tqdm

from landmarkjax.configs.defaults import config_path, flag_value, saved_config_path

BASELINES = ("none", "raw_colour", "random_init")


def _default_config(argv: list[str]) -> str:
    """The run's saved config when --workdir has one and --config is not given; else the vos defaults."""
    workdir = flag_value(argv, "workdir")
    saved = saved_config_path(workdir) if workdir else None
    return saved if saved is not None and flag_value(argv, "config") is None else config_path("vos")


_CONFIG = config_flags.DEFINE_config_file(
    "config", _default_config(sys.argv), "Config file; default: the run's own <workdir>/config.json."
)
_WORKDIR = flags.DEFINE_string("workdir", None, "A trained vos run (not needed with --baseline).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step; default: the best.")
_BASELINE = flags.DEFINE_enum("baseline", "none", BASELINES, "An untrained baseline instead of a run.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "The results folder to write (required).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    if _OUTPUT_DIR.value is None:
        raise app.UsageError("--output_dir is required.")
    if (_BASELINE.value == "none") == (_WORKDIR.value is None):
        raise app.UsageError("give either --workdir (a trained run) or --baseline=raw_colour|random_init.")
    import jax

    from landmarkjax.data.davis import write_davis_sequence
    from landmarkjax.methods import build_method
    from landmarkjax.runs import restore_run

    config = _CONFIG.value
    if config.method != "vos":
        raise app.UsageError(f"expected a vos run or config; got method {config.method!r}.")
    if _BASELINE.value == "none":
        run = restore_run(_WORKDIR.value, config=config, step=_STEP.value)
        method, params, step = run.method, run.state.params, run.step
    else:
        if _BASELINE.value == "raw_colour":
            config.vos.features = "raw_lab"
        method = build_method(config)
        init_rng = jax.random.split(jax.random.key(config.seed))[0]  # the training loop's initial key
        params, step = jax.jit(method.init_state)(init_rng).params, 0
    num_frames = 0
    for index in tqdm(range(method.num_eval_videos), desc="videos", unit="video"):
        video = method.predict_eval_video(params, index)
        write_davis_sequence(_OUTPUT_DIR.value, video["sequence"], video["ids"], video["frame_names"])
        num_frames += len(video["ids"])
    print(
        json.dumps(
            {
                "output_dir": os.path.abspath(_OUTPUT_DIR.value),
                "source": config.data.source,
                "split": config.data.eval_split if config.data.source == "davis2017" else "synthetic",
                "baseline": _BASELINE.value,
                "step": step,
                "num_sequences": method.num_eval_videos,
                "num_frames": num_frames,
            }
        )
    )


if __name__ == "__main__":
    app.run(main)

"""Evaluate a run's best checkpoint: writes <workdir>/eval.json and <workdir>/predictions.png.

    python eval.py                                     # the default run of `python train.py`
    python eval.py --workdir=./workdir/supervised --step=500
    python eval.py --workdir=W --config.eval.threshold=0.1    # the run's config with an override
    python eval.py --workdir=W --images='photos/*.jpg'        # landmarks on your own images

With --images the run predicts landmarks on every matching image instead (the whole image is the face
box; one face per image) and writes <output_dir>/predictions.json (points as (x, y) pixels of the
original image) and one <name>_landmarks.png overlay per image (default output_dir: <workdir>/inference).

The run's own config (`<workdir>/config.json`, written by train.py) is used, so no training flag has to
be repeated; `--config.<field>=...` overrides apply on top of it. `--config=FILE` evaluates with another
config file instead.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags
from PIL import Image
from tqdm import tqdm

from landmarkjax.configs.defaults import DEFAULT_METHOD, default_config_path, flag_value, saved_config_path
from landmarkjax.training.distributed import maybe_initialize_distributed


def _workdir(argv: list[str]) -> str:
    return flag_value(argv, "workdir") or os.path.join("workdir", DEFAULT_METHOD)


def _default_config(argv: list[str]) -> str:
    """The run's saved config when `--config` is not given and the workdir has one; else the default."""
    saved = saved_config_path(_workdir(argv))
    return saved if saved is not None and flag_value(argv, "config") is None else default_config_path()


_CONFIG = config_flags.DEFINE_config_file(
    "config", _default_config(sys.argv), "Config file; default: the run's own <workdir>/config.json."
)
_WORKDIR = flags.DEFINE_string("workdir", None, f"Run directory; default ./workdir/{DEFAULT_METHOD}.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate; default: the best.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first.")
_IMAGES = flags.DEFINE_string("images", None, "Glob of image files to predict landmarks on (quote it).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where --images writes; default <workdir>/inference.")

EVAL_FILENAME = "eval.json"
PREDICTIONS_FILENAME = "predictions.png"
IMAGE_PREDICTIONS_FILENAME = "predictions.json"


def predict_images(workdir: str, config, pattern: str, output_dir: str, step: int | None) -> list[dict]:
    """Landmarks of a restored run on every image matching `pattern`; writes JSON and overlays."""
    from landmarkjax.inference import draw_landmarks_on_image, load_image, predict_landmarks
    from landmarkjax.runs import restore_run

    paths = sorted(glob.glob(pattern))
    if not paths:
        raise app.UsageError(f"--images={pattern!r} matches no file.")
    run = restore_run(workdir, config=config, step=step)
    images = [load_image(path) for path in tqdm(paths, desc="reading", unit="image", leave=False)]
    faces = predict_landmarks(run.method, run.state.params, images)
    os.makedirs(output_dir, exist_ok=True)
    records = []
    for path, image, face in zip(paths, images, faces, strict=True):
        stem = os.path.splitext(os.path.basename(path))[0]
        overlay = os.path.join(output_dir, f"{stem}_landmarks.png")
        Image.fromarray(draw_landmarks_on_image(image, face.points)).save(overlay)
        records.append(
            {"image": path, "box": face.box.tolist(), "points": face.points.tolist(), "overlay": overlay}
        )
    with open(os.path.join(output_dir, IMAGE_PREDICTIONS_FILENAME), "w", encoding="utf-8") as file:
        json.dump({"workdir": workdir, "step": run.step, "method": config.method, "faces": records}, file)
    return records


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # keep the output readable; --verbosity=0 for INFO
    maybe_initialize_distributed(_DISTRIBUTED.value)
    import jax

    from landmarkjax.runs import evaluate_run

    config = _CONFIG.value
    workdir = _WORKDIR.value or os.path.join("workdir", DEFAULT_METHOD)
    if _IMAGES.value is not None:
        output_dir = _OUTPUT_DIR.value or os.path.join(workdir, "inference")
        records = predict_images(workdir, config, _IMAGES.value, output_dir, _STEP.value)
        for record in records:
            print(json.dumps({"image": record["image"], "overlay": record["overlay"]}))
        print(json.dumps({"predictions": os.path.join(output_dir, IMAGE_PREDICTIONS_FILENAME)}))
        return
    result = evaluate_run(workdir, config=config, step=_STEP.value)
    if jax.process_index() != 0:
        return
    record = {"step": result.step, "method": config.method, **result.metrics}
    with open(os.path.join(workdir, EVAL_FILENAME), "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2)
    Image.fromarray(result.image).save(os.path.join(workdir, PREDICTIONS_FILENAME))
    print(json.dumps(record))


if __name__ == "__main__":
    app.run(main)

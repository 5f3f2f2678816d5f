"""train.py and eval.py as a user runs them (subprocesses, tiny config overrides)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from landmarkjax.configs import sbr
from landmarkjax.configs.defaults import DEFAULT_METHOD, config_path, default_config_path, flag_value

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = [
    "--config.batch_size=8",
    "--config.eval_batch_size=8",
    "--config.log_every=2",
    "--config.checkpoint_every=2",
    "--config.eval_every=2",
    "--config.data.num_train=16",
    "--config.data.num_test=8",
    "--config.data.source_size=48",
    "--config.data.image_size=32",
    "--config.model.backbone_widths=(8,8,8)",
    "--config.model.stage_width=8",
    "--config.model.num_stages=2",
    "--config.model.stage_depth=1",
    "--config.eval.num_visualized=4",
    # The default method is SBR: two supervised steps, then two with tiny unlabelled clips (total_steps
    # follows the two stages' lengths).
    "--config.sbr.stage1_steps=2",
    "--config.sbr.stage2_steps=2",
    "--config.sbr.clip_batch_size=4",
    "--config.sbr.lk.window_radius=3",
    "--config.data.num_train_clips=8",
    "--config.data.num_eval_clips=8",
    "--config.data.eval_clip_length=3",
]


def _run(script, *args):
    env = dict(os.environ, JAX_DEFAULT_PRNG_IMPL="rbg")  # threefry compiles slowly on CPU
    env.pop("XLA_FLAGS", None)  # one CPU device, as a user has
    completed = subprocess.run(
        [sys.executable, os.path.join(REPO, script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def test_default_config_is_sbr():
    assert DEFAULT_METHOD == "sbr"
    assert default_config_path() == config_path("sbr") == os.path.abspath(sbr.__file__)
    config = sbr.get_config()
    assert config.method == "sbr" and config.data.image_size == 64
    assert config.sbr.stage1_steps > 0 and config.sbr.stage2_steps > 0  # both stages run
    assert config.total_steps == config.sbr.stage1_steps + config.sbr.stage2_steps
    assert "python train.py" in sbr.__doc__
    with pytest.raises(FileNotFoundError, match="No config file for method 'nope'"):
        config_path("nope")


def test_flag_value_reads_both_spellings_before_absl():
    argv = ["eval.py", "--workdir=runs/a", "--config", "c.py", "--step=3", "--config.seed=1"]
    assert flag_value(argv, "workdir") == "runs/a"
    assert flag_value(argv, "config") == "c.py"  # not --config.seed
    assert flag_value(argv, "step") == "3"
    assert flag_value(argv, "seed") is None
    assert flag_value(["eval.py", "--config"], "config") is None  # no value follows


def test_train_then_eval(tmp_path):
    workdir = str(tmp_path / "run")
    lines = _run("train.py", f"--workdir={workdir}", "--noprogress", *TINY)
    assert [line["step"] for line in lines if line.get("split") == "eval"] == [2, 4]
    final = lines[-1]
    assert final["split"] == "final" and final["step"] == 4 and final["workdir"] == workdir
    assert {"nme", "auc@0.08", "failure_rate@0.08"} <= set(final)

    with open(os.path.join(workdir, "config.json")) as file:
        saved = json.load(file)
    assert saved["total_steps"] == 4 and saved["model"]["backbone_widths"] == [8, 8, 8]
    # No training flag repeated: eval.py reads the run's own config.json.
    (record,) = _run("eval.py", f"--workdir={workdir}")
    with open(os.path.join(workdir, "eval.json")) as file:
        assert json.load(file) == record
    # Overrides apply on top of the saved config.
    (relaxed,) = _run("eval.py", f"--workdir={workdir}", "--config.eval.threshold=0.5")
    assert relaxed["step"] == record["step"] and relaxed["nme"] == pytest.approx(record["nme"], rel=1e-6)
    assert "auc@0.5" in relaxed and "auc@0.08" not in relaxed

    # Landmarks on a user's own photos: JSON in original pixels and an overlay per image.
    from matplotlib import cbook

    photos = tmp_path / "photos"
    photos.mkdir()
    with cbook.get_sample_data("grace_hopper.jpg") as source:
        photo = Image.open(source).convert("RGB")
    photo.save(photos / "grace.jpg")
    photo.crop((0, 0, 300, 200)).save(photos / "wide.png")
    image_lines = _run("eval.py", f"--workdir={workdir}", f"--images={photos}/*")
    with open(os.path.join(workdir, "inference", "predictions.json")) as file:
        predictions = json.load(file)
    assert predictions["step"] == record["step"] and len(predictions["faces"]) == 2
    by_name = {os.path.basename(face["image"]): face for face in predictions["faces"]}
    for name, (width, height) in {"grace.jpg": photo.size, "wide.png": (300, 200)}.items():
        face = by_name[name]
        assert np.asarray(face["points"]).shape == (68, 2)
        assert face["box"] == [0, 0, width - 1, height - 1]  # the whole image is the face box
        assert Image.open(face["overlay"]).size == (width, height)
    assert image_lines[-1]["predictions"].endswith("predictions.json")
    evals = {line["step"]: line["nme"] for line in lines if line.get("split") == "eval"}
    assert record["step"] == min(evals, key=evals.get)  # the best checkpoint by NME
    assert record["nme"] == pytest.approx(evals[record["step"]], rel=1e-5)
    image = np.asarray(Image.open(os.path.join(workdir, "predictions.png")))
    assert image.shape == (32 * 3, 4 * 32 * 3, 3)


def _train_losses(workdir):
    """Train loss per step from metrics.jsonl; a step logged before a crash and again after resuming
    keeps its last value."""
    with open(os.path.join(workdir, "metrics.jsonl")) as file:
        records = [json.loads(line) for line in file]
    return {r["step"]: r["loss"] for r in records if r["split"] == "train"}


@pytest.mark.slow
def test_sigkill_during_training_then_resume_matches_an_uninterrupted_run(tmp_path):
    args = [
        *TINY,
        "--config.sbr.stage2_steps=298",  # 300 steps in all
        "--config.log_every=1",
        "--config.checkpoint_every=20",
        "--config.eval_every=0",
    ]
    straight = str(tmp_path / "straight")
    _run("train.py", f"--workdir={straight}", "--noprogress", *args)

    killed = str(tmp_path / "killed")
    env = dict(os.environ, JAX_DEFAULT_PRNG_IMPL="rbg")
    env.pop("XLA_FLAGS", None)
    process = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "train.py"), f"--workdir={killed}", "--noprogress", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint_dir = os.path.join(killed, "checkpoints")
    deadline = time.time() + 300
    while time.time() < deadline and not (
        os.path.isdir(checkpoint_dir) and "40" in os.listdir(checkpoint_dir)
    ):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps_before = len(_train_losses(killed))
    assert 40 <= steps_before < 300, "the run must be killed part-way"

    lines = _run("train.py", f"--workdir={killed}", "--noprogress", *args)
    assert lines[-1]["step"] == 300
    with open(os.path.join(killed, "metrics.jsonl")) as file:
        train_steps = [json.loads(line)["step"] for line in file if '"split": "train"' in line]
    assert train_steps == list(range(1, 301))  # steps logged before the kill and re-trained: once each
    assert _train_losses(killed) == _train_losses(straight)
    straight_eval = _run("eval.py", f"--workdir={straight}", "--step=300", *args)[0]
    killed_eval = _run("eval.py", f"--workdir={killed}", "--step=300", *args)[0]
    assert killed_eval == straight_eval

"""The vos method on DAVIS-2017 and DAVIS results: a tiny fixture in DAVIS's official folder layout (sequences
of different lengths and sizes) is built with the repo's davis2017 builder, trained on for 2 steps and
evaluated with the DAVIS metrics; `scripts/write_davis_predictions.py` writes a run's (or a baseline's)
predictions as the palette PNGs the official DAVIS evaluation tool reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from landmarkjax.configs.vos import get_config
from landmarkjax.data.builders import build_dataset
from landmarkjax.data.davis import DAVIS_PALETTE, read_palette, read_palette_png
from landmarkjax.data.pipeline import to_model_inputs
from landmarkjax.data.sources import SyntheticObjectVideoSource
from landmarkjax.data.tfds_source import TfdsSource
from landmarkjax.methods.vos import VosMethod
from landmarkjax.runs import restore_run, train_and_evaluate
from landmarkjax.training.metric_writer import read_metrics

from _fixtures import write_davis_videos

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "write_davis_predictions.py")

# (frames, height, width) of each fixture sequence: lengths and sizes all differ, none a multiple of 4.
SEQUENCES = {
    "train": {"bear": (5, 38, 54), "boat": (4, 47, 35)},
    "val": {"car-shadow": (6, 42, 61), "dog": (4, 33, 50)},
}


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    """RBG keys compile much faster than threefry on CPU; these tests only need some random keys."""
    with jax.default_prng_impl("rbg"):
        yield


def _video(seed, num_frames, height, width):
    """A synthetic object video (2 objects) cropped to height x width: frames uint8, ids uint8."""
    video = SyntheticObjectVideoSource(1, num_frames=num_frames, size=max(height, width), num_objects=2, seed=seed)[0]
    frames, ids = video["frames"][:, :height, :width], video["masks"][:, :height, :width]
    assert ids[0].any()
    return np.ascontiguousarray(frames), np.ascontiguousarray(ids)


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    """(TFDS data dir, {sequence: (frames, ids)}) of the built fixture."""
    root = tmp_path_factory.mktemp("davis")
    videos, seed = {}, 0
    for split, sequences in SEQUENCES.items():
        videos[split] = {}
        for name, shape in sequences.items():
            videos[split][name] = _video(seed, *shape)
            seed += 1
    write_davis_videos(root / "DAVIS", videos)
    build_dataset("davis2017", data_dir=root / "tfds", manual_dir=root / "DAVIS")
    return str(root / "tfds"), {name: v for split in videos.values() for name, v in split.items()}


def davis_config(data_dir):
    config = get_config()
    config.data.source = "davis2017"
    config.data.tfds_data_dir = data_dir
    config.total_steps = 2
    config.batch_size = 4  # a multiple of the test session's 4 CPU devices
    config.log_every = 1
    config.eval_every = 0
    config.checkpoint_every = 0
    config.data.image_size = 16  # training crops: 4 x 4 feature maps
    config.model.out_features = 8
    config.optimizer.warmup_steps = 0
    config.vos.train_radius = 3
    config.vos.long_term = ()  # test-time memory t - 1 only: fewer programs to compile
    config.vos.short_term = (1,)
    return config


@pytest.fixture(scope="module")
def trained(davis, tmp_path_factory):
    """(workdir, final metrics) of a 2-step run on the fixture."""
    workdir = tmp_path_factory.mktemp("run")
    with jax.default_prng_impl("rbg"):
        result = train_and_evaluate(davis_config(davis[0]), workdir)
    return str(workdir), result


@pytest.mark.slow
def test_trains_on_davis2017_and_scores_its_val_videos_of_different_sizes(davis, trained):
    data_dir, videos = davis
    workdir, result = trained
    assert result["step"] == 2 and result["num_videos"] == 2
    # num_objects of a DAVIS record is the largest id of its sequence; every object of every video is scored.
    assert result["num_objects"] == sum(int(videos[name][1].max()) for name in SEQUENCES["val"])
    for name in ("j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay", "j_and_f_mean"):
        assert np.isfinite(result[name]), name
    assert result["j_and_f_mean"] == pytest.approx((result["j_mean"] + result["f_mean"]) / 2)
    train = read_metrics(workdir, "train")
    assert [r["step"] for r in train] == [1, 2] and all(np.isfinite(r["loss"]) for r in train)
    # Training clips are crops of the train split's videos (two sizes), at the configured crop size.
    method = VosMethod(davis_config(data_dir))
    batch = next(method.train_loader(4))
    assert batch["frames"].shape == (4, 2, 16, 16, 3)
    assert repr(method._train_source()).startswith("TfdsSource(name='davis2017', split='train'")


def test_an_unbuilt_davis2017_or_missing_data_dir_fails_before_training(tmp_path):
    config = davis_config(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="davis2017"):
        VosMethod(config)
    config.data.tfds_data_dir = None
    with pytest.raises(ValueError, match="tfds_data_dir"):
        VosMethod(config)


def _write_predictions(*args):
    env = dict(os.environ, JAX_DEFAULT_PRNG_IMPL="rbg")
    env.pop("XLA_FLAGS", None)
    completed = subprocess.run(
        [sys.executable, SCRIPT, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _check_results(output_dir, expected):
    """Every sequence folder, frame file, palette and size as DAVIS results; returns {sequence: ids}."""
    assert sorted(os.listdir(output_dir)) == sorted(expected)
    written = {}
    for sequence, (names, size) in expected.items():
        folder = os.path.join(output_dir, sequence)
        assert sorted(os.listdir(folder)) == [n + ".png" for n in names]
        ids = []
        for name in names:
            path = os.path.join(folder, name + ".png")
            np.testing.assert_array_equal(read_palette(path), DAVIS_PALETTE)
            ids.append(read_palette_png(path))
            assert ids[-1].shape == size and ids[-1].dtype == np.uint8
        written[sequence] = np.stack(ids)
    return written


@pytest.mark.slow
def test_writes_a_trained_runs_davis_predictions_for_the_official_tool(davis, trained, tmp_path):
    data_dir, videos = davis
    workdir, _ = trained
    output_dir = str(tmp_path / "results")
    summary = _write_predictions(f"--workdir={workdir}", f"--output_dir={output_dir}")
    assert summary["num_sequences"] == 2 and summary["step"] == 2 and summary["source"] == "davis2017"
    assert summary["num_frames"] == sum(SEQUENCES["val"][n][0] for n in SEQUENCES["val"])
    expected = {
        name: ([f"{t:05d}" for t in range(length)], (height, width))
        for name, (length, height, width) in SEQUENCES["val"].items()
    }
    written = _check_results(output_dir, expected)
    # The ids are the method's own argmaxed predictions from the first frame's annotation, at full size.
    run = restore_run(workdir)
    source = TfdsSource("davis2017", split="val", data_dir=data_dir)
    for index in range(len(source)):
        video = to_model_inputs(source[index])
        sequence = str(video["sequence"])
        np.testing.assert_array_equal(written[sequence][0], videos[sequence][1][0])  # the given annotation
        prediction, _ = run.method.segment_video(
            run.state.params, video["frames"], video["masks"][0], int(video["num_objects"])
        )
        np.testing.assert_array_equal(written[sequence], prediction)
        assert written[sequence].max() <= video["num_objects"]


@pytest.mark.slow
def test_writes_the_raw_colour_baseline_on_synthetic_videos(tmp_path):
    output_dir = str(tmp_path / "raw")
    overrides = ["--config.data.num_test=2", "--config.data.eval_frames=4", "--config.data.eval_size=24",
                 "--config.data.num_objects=2", "--config.vos.long_term=()", "--config.vos.short_term=(1,)"]
    summary = _write_predictions("--baseline=raw_colour", f"--output_dir={output_dir}", *overrides)
    assert summary["num_sequences"] == 2 and summary["step"] == 0 and summary["baseline"] == "raw_colour"
    names = [f"{t:05d}" for t in range(4)]
    written = _check_results(output_dir, {"video_00000": (names, (24, 24)), "video_00001": (names, (24, 24))})
    config = get_config()
    config.data.update(num_test=2, eval_frames=4, eval_size=24, num_objects=2)
    config.vos.update(features="raw_lab", long_term=(), short_term=(1,))
    method = VosMethod(config)
    source = SyntheticObjectVideoSource(2, num_frames=4, size=24, num_objects=2, seed=config.data.test_seed)
    for index in range(2):
        video = to_model_inputs(source[index])
        prediction, _ = method.segment_video(None, video["frames"], video["masks"][0], 2)
        np.testing.assert_array_equal(written[f"video_{index:05d}"], prediction)


def test_the_script_refuses_ambiguous_or_missing_arguments(tmp_path):
    completed = subprocess.run(
        [sys.executable, SCRIPT, f"--output_dir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )
    assert completed.returncode != 0 and "either --workdir" in completed.stderr

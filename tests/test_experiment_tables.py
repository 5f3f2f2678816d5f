"""experiments/: every semisup row's printed train.py command builds the config the script trains, and the
shared table statistics (experiments/table_stats.py)."""

import pathlib
import shlex
import sys

import numpy as np
from absl import flags
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "experiments" / "semisup"), str(ROOT / "experiments")]

import run_table  # noqa: E402
import table_stats  # noqa: E402


def _config_from_command(command: str, monkeypatch):
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train.py"]
    argv = ["train.py"] + [arg.replace("--config=", f"--config={ROOT}/") for arg in argv[2:]]
    monkeypatch.setattr(sys, "argv", argv)  # config_flags reads the overrides from sys.argv, as in train.py
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config", flag_values=flag_values)
    flags.DEFINE_string("workdir", None, "", flag_values=flag_values)
    flags.DEFINE_bool("progress", True, "", flag_values=flag_values)
    flag_values(argv)
    return flag_values.config


def test_every_command_builds_the_trained_config(monkeypatch):
    args = run_table.argparse.Namespace(image_size=48, widths=(8, 16, 24, 24), steps=500, batch_size=8)
    scale = run_table.scale_overrides(args)
    for row, (_, row_overrides) in run_table.table_rows().items():
        overrides = {**row_overrides, **scale, "seed": 2}
        command = run_table.command(overrides, f"workdir/{row}")
        parsed = _config_from_command(command, monkeypatch)
        assert parsed.to_dict() == run_table.make_config(overrides).to_dict(), row


def test_paired_bootstrap_interval_covers_a_constant_shift_and_orders_its_ends():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.05, 0.1, size=(3, 64))
    mean, low, high = table_stats.paired_bootstrap(b - 0.01, b, draws=500)
    np.testing.assert_allclose([mean, low, high], [-0.01, -0.01, -0.01], atol=1e-9)
    noisy = b + rng.normal(0.0, 0.01, size=b.shape)
    mean, low, high = table_stats.paired_bootstrap(noisy, b, draws=500)
    assert low < mean < high


def test_paired_t_interval_matches_the_closed_form():
    a, b = [0.30, 0.34, 0.29], [0.25, 0.27, 0.26]
    mean, low, high = table_stats.paired_t_interval(a, b)
    diff = np.subtract(a, b)  # 0.05, 0.07, 0.03: mean 0.05, sample std 0.02
    half = 4.302652729911275 * 0.02 / np.sqrt(3)  # t(0.975, 2 dof)
    np.testing.assert_allclose([mean, low, high], [diff.mean(), 0.05 - half, 0.05 + half], rtol=1e-7)


def test_load_runs_keeps_the_last_line_of_a_rerun(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"row": "a", "seed": 0, "x": 1}\n\n{"row": "a", "seed": 0, "x": 2}\n{"row": "b", "seed": 1, "x": 3}\n')
    runs = table_stats.load_runs(str(path))
    assert runs["a"][0]["x"] == 2 and runs["b"][1]["x"] == 3 and set(runs) == {"a", "b"}
    assert table_stats.mean_std([1.0, 2.0, 3.0], 2) == "2.00 +- 1.00" and table_stats.mean_std([0.5], 1) == "0.5"


def test_done_runs_lists_every_recorded_row_seed_and_scale(tmp_path):
    path = tmp_path / "results.jsonl"
    assert table_stats.done_runs(str(path)) == set()  # nothing run yet
    path.write_text('{"row": "a", "seed": 0, "scale": "s1"}\n{"row": "a", "seed": 0, "scale": "s2"}\n')
    assert table_stats.done_runs(str(path)) == {("a", 0, "s1"), ("a", 0, "s2")}


def test_every_sbr_command_builds_the_config_the_script_trains(monkeypatch):
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location("sbr_run_table", ROOT / "experiments" / "sbr" / "run_table.py")
    sbr_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sbr_table)
    args = argparse.Namespace(stage1_max=1500, patience=4, stage2=100, fraction=0.5)
    for regime in sbr_table.REGIMES:
        shared = sbr_table.cell_overrides(regime, 64, 1)
        runs = {"stage1": {**shared, **sbr_table.stage1_overrides(args)}}
        for arm in sbr_table.ARMS:
            runs[arm] = {**shared, **sbr_table.arm_overrides(arm, 1150, "workdir/B64_seed1/stage1", args)}
        for name, overrides in runs.items():
            parsed = _config_from_command(sbr_table.command(overrides, f"workdir/{name}"), monkeypatch)
            config = sbr_table.make_config(overrides)
            assert parsed.to_dict() == config.to_dict(), (regime, name)
        assert runs["S"]["sbr.registration_weight"] == 0.0 and runs["O"]["sbr.registration_targets"] == "oracle"
        assert sbr_table.make_config(runs["G"]).total_steps == 1250  # stage 2 continues after the stage-1 step


def test_every_imm_command_builds_the_config_the_script_trains(monkeypatch):
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location("imm_run_table", ROOT / "experiments" / "imm" / "run_table.py")
    imm_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(imm_table)
    args = argparse.Namespace(steps=300, supervised_steps=500, eval_every=100, workdirs="workdir/imm", tiny=False)
    trained = [row for row, (_, overrides) in imm_table.ROWS.items() if overrides is not None]
    assert {"k10_tps_pixel", "k30_tps_pixel", "k10_video_pixel", "k10_tps_vgg_random", "supervised"} <= set(trained)
    for row in trained:
        overrides = imm_table.row_overrides(row, 2, args)
        parsed = _config_from_command(imm_table.command(row, overrides, f"workdir/{row}"), monkeypatch)
        config = imm_table.make_config(row, overrides)
        assert parsed.to_dict() == config.to_dict(), row
        assert config.data.eval_split == "validation" and config.seed == 2  # checkpoints never chosen on test
    config_of = lambda row: imm_table.make_config(row, imm_table.row_overrides(row, 0, args))  # noqa: E731
    assert config_of("k30_tps_pixel").imm.num_landmarks == 30 and config_of("supervised").total_steps == 500

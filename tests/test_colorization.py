"""Self-supervised colourisation: ab bins, soft encoding, rebalancing, decoding, colourfulness against
independent numpy references; training lowers the loss; the exported VGG round-trips through
`load_vgg_params` and trains IMM; bad input gets clear errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from test_imm import tiny_config as imm_tiny_config

from landmarkjax.configs.colorization import get_config
from landmarkjax.data.image_folder import ImageFolderSource, SquareCrop, centre_square_matrix
from landmarkjax.methods import available_methods, build_method
from landmarkjax.methods.colorization import (
    ab_bins,
    annealed_mean,
    class_rebalancing_weights,
    colourfulness,
    soft_encode,
)
from landmarkjax.methods.imm import IMMMethod
from landmarkjax.models.vgg import (
    VGG,
    load_vgg_params,
    save_vgg_params,
    vgg_features,
    vgg_layer_names,
    vgg_preprocess,
)
from landmarkjax.ops.colour import lab_to_rgb, rgb_to_lab
from landmarkjax.runs import export_vgg_weights, restore_run, train_and_evaluate
from landmarkjax.training.metric_writer import read_metrics


@pytest.fixture(autouse=True)
def _fast_compiling_keys():
    with jax.default_prng_impl("rbg"):
        yield


def tiny_config():
    config = get_config()
    config.total_steps = 4
    config.batch_size = config.eval_batch_size = 4
    config.log_every = 1
    config.checkpoint_every = 0
    config.data.image_size, config.data.source_size = 32, 48
    config.data.num_train = 4  # every step sees the same 4 faces: the loss must fall
    config.data.num_test = 4
    config.colorization.prior_images = 4
    config.model.head_width = 8
    config.optimizer.warmup_steps = 0
    config.optimizer.learning_rate = 1e-3
    return config


# ---- pure functions against numpy references ------------------------------------------------------------
def test_ab_bins_are_grid_cells_that_hold_an_srgb_colour():
    centres = ab_bins()
    assert centres.shape == (262, 2) and centres.dtype == np.float32
    assert np.all(np.mod(centres, 10) == 0) and np.abs(centres).max() <= 110
    assert len({tuple(c) for c in centres.tolist()}) == len(centres)
    # Every sRGB colour's ab lies in a kept cell (its nearest centre is within half a cell per axis).
    rng = np.random.default_rng(0)
    ab = np.asarray(rgb_to_lab(rng.uniform(size=(5000, 3)).astype(np.float32)))[:, 1:]
    nearest = centres[np.argmin(((ab[:, None] - centres[None]) ** 2).sum(-1), axis=1)]
    assert np.all(np.abs(ab - nearest) <= 5.0 + 1e-3)
    # An extreme corner of the plane holds no sRGB colour.
    assert [-110.0, -110.0] not in centres.tolist()


def test_soft_encode_matches_a_numpy_reference():
    centres = ab_bins()
    rng = np.random.default_rng(1)
    ab = rng.uniform(-60, 60, size=(7, 2)).astype(np.float32)
    got = np.asarray(soft_encode(ab, centres, neighbours=5, sigma=5.0))
    for row, value in zip(got, ab):
        distances = ((centres - value) ** 2).sum(-1).astype(np.float64)
        nearest = np.argsort(distances)[:5]
        expected = np.zeros(len(centres))
        expected[nearest] = np.exp(-distances[nearest] / 50.0)
        np.testing.assert_allclose(row, expected / expected.sum(), atol=1e-6)


def test_rebalancing_weights_follow_zhangs_formula():
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [100.0, 100.0]], np.float32)
    counts = np.array([6.0, 3.0, 1.0])
    # No smoothing: w = 1 / (0.5 p + 0.5 / 3), normalised so that sum p w = 1.
    p = counts / 10
    raw = 1.0 / (0.5 * p + 0.5 / 3)
    np.testing.assert_allclose(class_rebalancing_weights(counts, centres, sigma=0.0), raw / (p * raw).sum(), rtol=1e-6)
    # Smoothing spreads each bin's mass by exp(-d^2 / (2 sigma^2)), column-normalised (mass is kept).
    kernel = np.exp(-np.array([[0, 100, 20000], [100, 0, 18100], [20000, 18100, 0]], float) / (2 * 25.0))
    smooth = (kernel / kernel.sum(0)) @ p
    raw = 1.0 / (0.5 * smooth + 0.5 / 3)
    expected = raw / (smooth * raw).sum()
    np.testing.assert_allclose(class_rebalancing_weights(counts, centres, sigma=5.0), expected, rtol=1e-5)
    # Rare colours weigh more; lambda = 1 is no rebalancing.
    weights = class_rebalancing_weights(counts, centres, sigma=0.0)
    assert weights[2] > weights[1] > weights[0]
    np.testing.assert_allclose(class_rebalancing_weights(counts, centres, mix=1.0), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="counts"):
        class_rebalancing_weights(np.zeros(3), centres)


def test_annealed_mean_interpolates_between_mean_and_mode():
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 40.0]], np.float32)
    logits = np.log(np.array([[0.5, 0.3, 0.2]], np.float32))
    np.testing.assert_allclose(annealed_mean(logits, centres, 1.0), [[6.0, 8.0]], atol=1e-4)
    annealed = np.array([0.5, 0.3, 0.2]) ** (1 / 0.38)
    annealed /= annealed.sum()
    np.testing.assert_allclose(annealed_mean(logits, centres, 0.38), [annealed @ centres], atol=1e-4)
    np.testing.assert_allclose(annealed_mean(logits, centres, 1e-3), [[0.0, 0.0]], atol=1e-3)


def test_colourfulness_matches_hasler_suesstrunk():
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(3, 8, 6, 3)).astype(np.float32)
    r, g, b = (255.0 * images.astype(np.float64)).transpose(3, 0, 1, 2)
    rg, yb = (r - g).reshape(3, -1), (0.5 * (r + g) - b).reshape(3, -1)
    expected = np.sqrt(rg.std(1) ** 2 + yb.std(1) ** 2) + 0.3 * np.sqrt(rg.mean(1) ** 2 + yb.mean(1) ** 2)
    np.testing.assert_allclose(colourfulness(images), expected, rtol=1e-4)
    assert float(colourfulness(np.full((1, 4, 4, 3), 0.3, np.float32))[0]) == pytest.approx(0.0, abs=1e-3)


def test_colorization_preset_sees_only_lightness():
    rng = np.random.default_rng(3)
    images = rng.uniform(0.05, 0.95, size=(2, 16, 16, 3)).astype(np.float32)
    lab = np.asarray(rgb_to_lab(images))
    inputs = np.asarray(vgg_preprocess(images, "colorization"))
    np.testing.assert_allclose(inputs, np.repeat((lab[..., :1] - 50.0) / 50.0, 3, axis=-1), atol=1e-5)
    # The grey image of the same L* gives the same features.
    grey = np.asarray(lab_to_rgb(np.concatenate([lab[..., :1], np.zeros_like(lab[..., 1:])], -1)))
    params = VGG(16, ("conv1_2",)).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    a = vgg_features(params, images, ["conv1_2"], preprocess="colorization")["conv1_2"]
    b = vgg_features(params, np.clip(grey, 0, 1), ["conv1_2"], preprocess="colorization")["conv1_2"]
    np.testing.assert_allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match=r"expects images in \[0, 1\]"):
        vgg_preprocess(images * 255.0, "colorization")


def test_save_vgg_params_round_trips_and_checks(tmp_path):
    rng = np.random.default_rng(5)
    params = {"params": {}}
    channels = 3
    for name in vgg_layer_names(16):
        width = {"1": 64, "2": 128, "3": 256}.get(name[4], 512)
        params["params"][name] = {
            "kernel": rng.normal(size=(3, 3, channels, width)).astype(np.float32),
            "bias": rng.normal(size=width).astype(np.float32),
        }
        channels = width
    path = save_vgg_params(params, tmp_path / "vgg.npz")
    with np.load(path) as data:
        assert data["features.0.weight"].shape == (64, 3, 3, 3) and data["features.28.bias"].shape == (512,)
        np.testing.assert_array_equal(
            data["features.2.weight"], np.transpose(params["params"]["conv1_2"]["kernel"], (3, 2, 0, 1))
        )
    jax.tree.map(np.testing.assert_array_equal, load_vgg_params(path), params)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    with pytest.raises(ValueError, match="depth=19"):
        load_vgg_params(path, depth=19)
    with pytest.raises(ValueError, match="conv5_3"):
        save_vgg_params({"params": {k: v for k, v in params["params"].items() if k != "conv5_3"}}, tmp_path / "x.npz")
    with pytest.raises(ValueError, match=".npz"):
        save_vgg_params(params, tmp_path / "vgg.pth")


# ---- data --------------------------------------------------------------------------------------------------
def test_image_folder_split_and_square_crops(tmp_path):
    rng = np.random.default_rng(4)
    for index in range(5):
        Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(tmp_path / "5.png")  # grey file
    source = ImageFolderSource(str(tmp_path / "*.png"), stop=-2)
    assert len(source) == 4 and source[0]["image"].shape == (20, 40, 3)
    assert ImageFolderSource(str(tmp_path / "*.png"), start=-2)[1]["image"].shape == (12, 12, 3)
    # Same-size crop: exactly the central square of the image.
    image = source[1]["image"]
    np.testing.assert_array_equal(SquareCrop(20).map({"image": image})["image"], image[:, 10:30])
    # Halving: output pixel (0, 0) is centred on input (10.5, 0.5), the centre of its 2x2 block.
    np.testing.assert_allclose(centre_square_matrix(20, 40, 10) @ [10.5, 0.5, 1.0], [0.0, 0.0], atol=1e-12)
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        ImageFolderSource(str(tmp_path / "nothing_here/*.jpg"))


def test_config_errors_are_clear(tmp_path):
    assert "colorization" in available_methods()
    for field, value, message in [
        ("source", "webcam", "data.source"),
        ("image_size", 40, "multiple of 16"),
    ]:
        config = tiny_config()
        config.data[field] = value
        with pytest.raises(ValueError, match=message):
            build_method(config)
    config = tiny_config()
    config.model.vgg_depth = 11
    with pytest.raises(ValueError, match="vgg_depth"):
        build_method(config)
    config = tiny_config()
    config.data.source = "images"
    with pytest.raises(ValueError, match="image_glob"):
        build_method(config)
    config.data.image_glob = str(tmp_path / "*.jpg")
    with pytest.raises(FileNotFoundError, match=r"\*\.jpg"):
        build_method(config)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="matches 1 files"):
        build_method(config)
    with pytest.raises(ValueError, match="variant"):
        get_config("256")


# ---- training, export, IMM -----------------------------------------------------------------------------------
# The two tests below share one 4-step run of the full-width VGG-16 (the export must be a real VGG-16);
# together about 70 s of CPU on 2 cores, mostly compiling the train and eval steps, hence `slow`.
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("colorization")
    with jax.default_prng_impl("rbg"):
        result = train_and_evaluate(tiny_config(), workdir)
    return workdir, result


@pytest.mark.slow
def test_training_lowers_the_loss_and_evaluates(trained_run):
    workdir, result = trained_run
    losses = [record["loss"] for record in read_metrics(workdir, "train")]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert result["step"] == 4 and result["num_examples"] == 4
    for key in ("ab_error", "zero_ab_error", "bin_accuracy", "colourfulness", "true_colourfulness"):
        assert np.isfinite(result[key]) and result[key] >= 0
    assert result["true_colourfulness"] > 0


@pytest.mark.slow
def test_exported_trunk_round_trips_and_trains_imm(trained_run, tmp_path):
    workdir, _ = trained_run
    path = export_vgg_weights(workdir, tmp_path / "vgg16_colorization.npz")
    restored = restore_run(workdir)
    trunk = {"params": jax.tree.map(np.asarray, restored.state.params["vgg"])}
    jax.tree.map(np.testing.assert_array_equal, load_vgg_params(path, depth=16), trunk)
    with pytest.raises(ValueError, match="depth=19"):
        load_vgg_params(path, depth=19)
    with pytest.raises(FileNotFoundError):
        export_vgg_weights(tmp_path / "no_run", tmp_path / "x.npz")

    # IMM with the exported network: two jitted train steps (the end-to-end IMM run is tests/test_imm.py's).
    config = imm_tiny_config("vgg_file")
    config.imm.vgg_weights_path = str(path)
    config.imm.vgg_preprocess = "colorization"
    method = IMMMethod(config)
    frozen = method.frozen_inputs()
    jax.tree.map(np.testing.assert_array_equal, frozen["vgg"]["params"]["conv1_2"], trunk["params"]["conv1_2"])
    state = method.init_state(jax.random.key(0))
    data = method.train_loader(4)
    step = jax.jit(lambda s, b, r: method.train_step(s, b, r, frozen, phase="train"))
    for index in range(2):
        state, step_metrics = step(state, next(data), jax.random.key(index))
        assert np.isfinite(float(step_metrics["loss"])) and float(step_metrics["grad_norm"]) > 0
    assert int(state.step) == 2

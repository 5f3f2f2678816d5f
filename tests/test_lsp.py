"""LSP / LSP-extended readers on tiny fixtures written in the official layouts (scipy.io.savemat)."""

import pickle

import numpy as np
import pytest
import scipy.io
from PIL import Image

from landmarkjax.body import COCOPLUS_JOINT_NAMES
from landmarkjax.data.lsp import LSP_JOINT_NAMES, LspSource, lsp_to_cocoplus, read_lsp_joints


def _write(root, variant, num, rng):
    """An LSP-layout fixture; returns (keypoints [N, 14, 2], visible [N, 14], images)."""
    keypoints = rng.uniform(0.0, 30.0, (num, 14, 2)).round(2)
    visible = rng.random((num, 14)) < 0.7
    if variant == "lsp":  # [3, 14, N]; third row 1 = occluded
        joints = np.concatenate([keypoints.transpose(2, 1, 0), (~visible).T[None].astype(float)])
        name = "im{:04d}.jpg"
    else:  # [14, 3, N]; third column 1 = visible
        joints = np.concatenate([keypoints.transpose(1, 2, 0), visible.T[:, None].astype(float)], axis=1)
        name = "im{:05d}.jpg"
    (root / "images").mkdir(parents=True)
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    images = []
    for i in range(num):
        pixels = rng.integers(0, 256, (24 + i, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / name.format(i + 1), quality=95)
        with Image.open(root / "images" / name.format(i + 1)) as image:
            images.append(np.asarray(image.convert("RGB")))
    return keypoints, visible, images


@pytest.mark.parametrize("variant", ["lsp", "lsp_extended"])
def test_reader_recovers_the_annotations_and_their_visibility(tmp_path, variant):
    keypoints, visible, images = _write(tmp_path, variant, 3, np.random.default_rng(0))
    read, visibility, found = read_lsp_joints(tmp_path / "joints.mat")
    assert found == variant
    np.testing.assert_allclose(read, keypoints, atol=1e-4)
    np.testing.assert_array_equal(visibility, visible)
    source = LspSource(tmp_path, variant=variant)
    assert len(source) == 3
    for i in range(3):
        element = source[i]
        np.testing.assert_array_equal(element["image"], images[i])
        assert element["keypoints_2d"].shape == (19, 2) and element["visibility"].shape == (19,)
        np.testing.assert_allclose(element["keypoints_2d"][:14], keypoints[i], atol=1e-4)
        np.testing.assert_array_equal(element["visibility"][:14], visible[i])
        assert not element["visibility"][14:].any()
    copy = pickle.loads(pickle.dumps(source))
    expected = f"LspSource(root={str(tmp_path)!r}, split='all', variant={variant!r})"
    assert repr(copy) == repr(source) == expected
    np.testing.assert_array_equal(copy[1]["image"], images[1])


def test_lsp_joint_order_is_cocoplus_first_14():
    assert LSP_JOINT_NAMES == COCOPLUS_JOINT_NAMES[:14]
    assert LSP_JOINT_NAMES[0] == "right_ankle" and LSP_JOINT_NAMES[13] == "head_top"
    points, visible = lsp_to_cocoplus(np.ones((2, 14, 2)), np.ones((2, 14), bool))
    assert points.shape == (2, 19, 2) and np.all(points[:, 14:] == 0) and visible.sum() == 28


def test_lsp_splits_and_bad_layouts(tmp_path):
    _write(tmp_path / "lsp", "lsp", 3, np.random.default_rng(1))
    assert len(LspSource(tmp_path / "lsp", split="train")) == 3  # the first 1000 are training
    assert len(LspSource(tmp_path / "lsp", split="test")) == 0
    _write(tmp_path / "ext", "lsp_extended", 2, np.random.default_rng(2))
    with pytest.raises(ValueError, match="no test split"):
        LspSource(tmp_path / "ext", split="test")
    with pytest.raises(ValueError, match=r"\[3, 14, N\]"):
        read_lsp_joints(tmp_path / "ext" / "joints.mat", variant="lsp")
    scipy.io.savemat(tmp_path / "bad.mat", {"joints": np.zeros((2, 14, 3))})
    with pytest.raises(ValueError, match="must have shape"):
        read_lsp_joints(tmp_path / "bad.mat")
    with pytest.raises(FileNotFoundError, match="joints.mat"):
        read_lsp_joints(tmp_path / "missing" / "joints.mat")

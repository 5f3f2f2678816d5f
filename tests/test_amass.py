"""AMASS-style pose files (np.savez fixtures in the AMASS layout) as a mocap source for the prior."""

import pickle

import numpy as np
import pytest

from landmarkjax.data.amass import AmassPoseSource, read_amass_poses


def test_smplh_file_keeps_the_shared_body_joints_and_zeroes_smpl_hands(tmp_path):
    rng = np.random.default_rng(0)
    poses, betas = rng.normal(0, 0.3, (5, 156)), rng.normal(0, 1, 16)
    trans = np.zeros((5, 3))
    np.savez(tmp_path / "seq_poses.npz", poses=poses, betas=betas, trans=trans, mocap_framerate=120.0)
    read = read_amass_poses(tmp_path / "seq_poses.npz")
    assert read["pose"].shape == (5, 72) and read["betas"].shape == (5, 10)
    np.testing.assert_allclose(read["pose"][:, :66], poses[:, :66], rtol=1e-6)
    assert np.all(read["pose"][:, 66:] == 0)
    np.testing.assert_allclose(read["betas"], np.tile(betas[:10], (5, 1)), rtol=1e-6)
    strided = read_amass_poses(tmp_path / "seq_poses.npz", stride=2)["pose"]
    np.testing.assert_allclose(strided, read["pose"][::2])


def test_source_concatenates_files_and_pickles(tmp_path):
    rng = np.random.default_rng(1)
    first, second = rng.normal(0, 0.3, (3, 72)), rng.normal(0, 0.3, (2, 72))
    np.savez(tmp_path / "a.npz", poses=first, betas=rng.normal(0, 1, (3, 10)))
    np.savez(tmp_path / "b.npz", poses=second, betas=rng.normal(0, 1, 10))
    source = AmassPoseSource([tmp_path / "a.npz", tmp_path / "b.npz"])
    assert len(source) == 5
    np.testing.assert_allclose(source[4]["pose"], second[1], rtol=1e-6)
    assert source[0]["pose"].dtype == np.float32 and source[0]["betas"].shape == (10,)
    copy = pickle.loads(pickle.dumps(source))
    assert repr(copy) == repr(source)
    np.testing.assert_array_equal(copy[3]["pose"], source[3]["pose"])
    with pytest.raises(IndexError):
        source[5]


def test_bad_pose_files_fail_clearly(tmp_path):
    np.savez(tmp_path / "narrow.npz", poses=np.zeros((4, 69)), betas=np.zeros(10))
    with pytest.raises(ValueError, match=r"narrow.npz: 'poses' must have shape \[N, 72\]"):
        read_amass_poses(tmp_path / "narrow.npz")
    np.savez(tmp_path / "few_betas.npz", poses=np.zeros((4, 72)), betas=np.zeros(8))
    with pytest.raises(ValueError, match="'betas' must have shape"):
        read_amass_poses(tmp_path / "few_betas.npz")
    np.savez(tmp_path / "no_betas.npz", poses=np.zeros((4, 72)))
    with pytest.raises(ValueError, match="missing \\['betas'\\]"):
        read_amass_poses(tmp_path / "no_betas.npz")
    with pytest.raises(FileNotFoundError):
        read_amass_poses(tmp_path / "absent.npz")

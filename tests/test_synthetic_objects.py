"""Synthetic multi-object videos: masks match the drawn objects, ids persist, occlusion, determinism."""

import numpy as np
import pytest
from scipy import ndimage

from landmarkjax.data.synthetic.objects import synthetic_object_video

SIZE = 64


@pytest.fixture(scope="module")
def videos():
    return [synthetic_object_video(seed, num_frames=8, size=SIZE, num_objects=3, return_layers=True)
            for seed in range(4)]


def test_output_contract(videos):
    for video in videos:
        assert video["frames"].shape == (8, SIZE, SIZE, 3) and video["frames"].dtype == np.uint8
        assert video["masks"].shape == (8, SIZE, SIZE) and video["masks"].dtype == np.uint8
        assert video["masks"].max() <= 3
        # The first frame's mask is the query: it shows every object.
        np.testing.assert_array_equal(np.unique(video["masks"][0]), [0, 1, 2, 3])
        assert sorted(video["depth_order"].tolist()) == [1, 2, 3]


def test_masks_cover_the_drawn_objects(videos):
    for video in videos:
        frames = video["frames"].astype(np.float64)
        difference = np.abs(frames - video["backgrounds"].astype(np.float64)).max(axis=-1)
        labelled = video["masks"] > 0
        # Leave out a one-pixel band around object edges, where pixels are partly covered.
        edge = np.stack([ndimage.binary_dilation(m, iterations=1) & ~ndimage.binary_erosion(m, iterations=1)
                         for m in labelled])
        background = ~labelled & ~edge
        objects = labelled & ~edge
        # Outside the masks the frame is the background (up to sensor noise) ...
        assert np.mean(difference[background] > 30) < 0.002
        # ... and inside them something else was drawn.
        assert np.mean(difference[objects] > 30) > 0.5
        assert difference[objects].mean() > 5 * difference[background].mean()


def test_masks_follow_depth_order(videos):
    for video in videos:
        silhouettes = video["object_masks"]  # [T, N, H, W]
        expected = np.zeros(video["masks"].shape, np.uint8)
        for object_id in video["depth_order"]:  # farthest first: nearer objects overwrite
            expected[silhouettes[:, object_id - 1]] = object_id
        np.testing.assert_array_equal(video["masks"], expected)


def test_some_frame_has_occlusion(videos):
    occluded = 0
    for video in videos:
        silhouettes = video["object_masks"]
        for i in range(3):
            visible = (video["masks"] == i + 1).sum(axis=(1, 2))
            occluded += np.sum(visible < silhouettes[:, i].sum(axis=(1, 2)) - 3)
    assert occluded > 0


def test_instance_ids_persist_across_frames(videos):
    checked = 0
    for video in videos:
        masks, silhouettes = video["masks"], video["object_masks"]
        for t in range(len(masks) - 1):
            for i in range(1, 4):
                current, following = masks[t] == i, masks[t + 1] == i
                unoccluded = all(
                    m.sum() >= 30 and m.sum() >= 0.8 * s.sum()
                    for m, s in ((current, silhouettes[t, i - 1]), (following, silhouettes[t + 1, i - 1])))
                if not unoccluded:
                    continue
                checked += 1
                overlaps = [np.sum(current & (masks[t + 1] == j)) / np.sum(current | (masks[t + 1] == j))
                            for j in range(1, 4)]
                assert int(np.argmax(overlaps)) + 1 == i
                assert overlaps[i - 1] > 0.3
    assert checked > 20


def test_objects_leave_the_frame():
    video = synthetic_object_video(3, num_frames=24, size=SIZE, num_objects=3, return_layers=True)
    area = video["object_masks"].sum(axis=(2, 3))  # [T, N]
    assert np.all(area[0] > 0)
    assert np.any(area == 0)


def test_deterministic_per_seed():
    first = synthetic_object_video(9, num_frames=3, size=32, num_objects=2)
    again = synthetic_object_video(9, num_frames=3, size=32, num_objects=2)
    other = synthetic_object_video(10, num_frames=3, size=32, num_objects=2)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["frames"], other["frames"])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_objects"):
        synthetic_object_video(0, num_objects=0)
    with pytest.raises(ValueError, match="size"):
        synthetic_object_video(0, size=4)
    with pytest.raises(ValueError, match="seed"):
        synthetic_object_video(-3)

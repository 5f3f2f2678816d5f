"""Landmarks on a user's own images: crops as evaluation crops, and points mapped back to the original
pixels. The geometry is checked with fake methods whose predictions are known, then a tiny real model runs
on matplotlib's sample portrait."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from matplotlib import cbook

from landmarkjax.configs.supervised import get_config
from landmarkjax.data.augment import CropFace
from landmarkjax.inference import (
    FaceLandmarks,
    crop_faces,
    draw_landmarks_on_image,
    load_image,
    predict_landmarks,
)
from landmarkjax.methods.supervised import SupervisedMethod


class _FakeMethod:
    """A face method whose `predict` is a given function of the crops [B, S, S, 3]."""

    def __init__(self, predict_points, image_size=64, crop_margin=0.25):
        data = {"image_size": image_size, "crop_margin": crop_margin}
        self.config = ml_collections.ConfigDict({"data": data})
        self._predict_points = predict_points

    def predict(self, params, images):
        return self._predict_points(images), None


def _brightness_centroid(images):
    """[B, 1, 2] (x, y) brightness-weighted centroid of the red channel (a blob on black)."""
    weights = images[..., 0]
    rows, cols = jnp.mgrid[0 : images.shape[1], 0 : images.shape[2]]
    total = jnp.sum(weights, axis=(1, 2))
    x = jnp.sum(weights * cols, axis=(1, 2)) / total
    y = jnp.sum(weights * rows, axis=(1, 2)) / total
    return jnp.stack([x, y], axis=-1)[:, None, :]


def _blob_image(height, width, centre, sigma, as_float=False):
    rows, cols = np.mgrid[0:height, 0:width]
    blob = np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma**2))
    image = np.zeros((height, width, 3), np.float32)
    image[..., 0] = blob
    return image if as_float else np.round(image * 255).astype(np.uint8)


# (height, width, box or None for the whole image, blob centre (x, y)): tall, wide, large and small
# images; boxes smaller than, larger than and partly outside the image.
_CASES = [
    (48, 48, None, (20.3, 27.6)),
    (37, 121, (40.0, 2.0, 90.0, 30.0), (63.4, 17.2)),
    (150, 40, None, (18.7, 80.1)),
    (300, 260, (60.0, 80.0, 220.0, 250.0), (131.2, 170.9)),
    (90, 70, (-10.0, 20.0, 75.0, 95.0), (33.3, 58.8)),
]


def test_crop_points_map_back_to_the_original_pixels():
    """Fixed crop-pixel predictions land where the crop geometry says: the crop is centred on the box
    centre and spans max(w, h) * (1 + margin) original pixels over S crop pixels."""
    size, margin = 64, 0.25
    crop_points = np.array([[0.0, 0.0], [63.0, 63.0], [31.5, 31.5], [10.25, 50.75]], np.float32)
    method = _FakeMethod(lambda images: jnp.broadcast_to(crop_points, (len(images), 4, 2)), size, margin)
    images = [np.zeros((h, w, 3), np.uint8) for h, w, _, _ in _CASES]
    boxes = [box for _, _, box, _ in _CASES]
    faces = predict_landmarks(method, None, images, boxes)
    assert len(faces) == len(images) and all(isinstance(face, FaceLandmarks) for face in faces)
    for face, (height, width, box, _) in zip(faces, _CASES):
        box = np.array([0, 0, width - 1, height - 1] if box is None else box, np.float64)
        centre = (box[:2] + box[2:]) / 2
        side = max(box[2] - box[0], box[3] - box[1]) * (1 + margin)
        expected = centre + (crop_points - (size - 1) / 2) * side / size
        assert face.points.shape == (4, 2) and face.points.dtype == np.float32
        np.testing.assert_allclose(face.points, expected, atol=1e-3)
        np.testing.assert_array_equal(face.box, box.astype(np.float32))


@pytest.mark.parametrize("as_float", [False, True])
def test_a_bright_blob_is_found_where_it_is_in_the_original_image(as_float):
    """The fake model finds the blob in the crop; mapped back, it is within 0.1 px of the true centre for
    every size, aspect ratio and box (so the crop really is the map that the points are inverted with)."""
    size = 64
    method = _FakeMethod(_brightness_centroid, image_size=size)
    images, boxes = [], []
    for height, width, box, centre in _CASES:
        extent = max(width, height) if box is None else max(box[2] - box[0], box[3] - box[1])
        sigma = 2.5 * extent * 1.25 / size  # 2.5 crop pixels
        images.append(_blob_image(height, width, centre, sigma, as_float))
        boxes.append(box)
    faces = predict_landmarks(method, None, images, boxes)
    for face, (_, _, _, centre) in zip(faces, _CASES):
        np.testing.assert_allclose(face.points[0], centre, atol=0.1)  # measured: at most 0.034 px


def test_crops_are_the_evaluation_crops():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (83, 59, 3), np.uint8)
    box = np.array([10.0, 20.0, 40.0, 61.0], np.float32)
    crops, matrices, boxes = crop_faces([image], [box], 32, 0.25)
    expected = CropFace(32, 0.25).map(
        {"image": image, "landmarks": np.zeros((5, 2), np.float32), "face_box": box}
    )["image"]
    np.testing.assert_array_equal(crops[0], expected.astype(np.float32) / 255)
    assert crops.dtype == np.float32 and matrices.shape == (1, 2, 3) and boxes.shape == (1, 4)
    grey = crop_faces([image[..., 0]], None, 32, 0.25)[0]
    assert grey.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="boxes: expected one box"):
        crop_faces([image, image], [box], 32, 0.25)
    with pytest.raises(ValueError, match=r"images\[0\]"):
        crop_faces([np.zeros((4, 4, 2), np.uint8)], None, 32, 0.25)


def test_a_tiny_model_on_a_real_photo():
    config = get_config()
    config.data.image_size = 32
    config.model.backbone_widths = (8, 8, 8)
    config.model.stage_width = 8
    config.model.num_stages = 1
    config.model.stage_depth = 1
    # An untrained map's global softmax sits near the crop's centre, so the points land inside the photo;
    # its argmax (the configs' local read-out) may be at the crop's edge, which lies outside the photo.
    config.eval.locator = "soft_argmax"
    method = SupervisedMethod(config)
    with jax.default_prng_impl("rbg"):
        params = method.init_state(jax.random.key(0)).params
    photo = load_image(cbook.get_sample_data("grace_hopper.jpg"))
    height, width = photo.shape[:2]
    face_box = (130.0, 120.0, 390.0, 420.0)
    faces = predict_landmarks(method, params, [photo, photo[::2, ::3]], [face_box, None])
    for face, (h, w) in zip(faces, [(height, width), (-(-height // 2), -(-width // 3))]):
        assert face.points.shape == (68, 2) and np.all(np.isfinite(face.points))
        assert np.all(face.points >= -0.5) and np.all(face.points <= np.array([w, h]) - 0.5)
    np.testing.assert_array_equal(faces[0].box, face_box)
    picture = draw_landmarks_on_image(photo, faces[0].points)
    assert picture.shape == photo.shape and picture.dtype == np.uint8
    assert np.any(picture != photo)

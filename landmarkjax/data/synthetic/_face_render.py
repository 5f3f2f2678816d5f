"""Synthetic faces, private: rendering a face image from its parameters (draw, light, camera effects).

The public names are re-exported by `landmarkjax.data.synthetic.faces`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from landmarkjax.data.synthetic import _face_shape as geometry
from landmarkjax.data.synthetic import _textures as textures
from landmarkjax.data.synthetic._face_drawing import (
    SUPERSAMPLE,
    Projected,
    covered,
    draw_body,
    draw_brows,
    draw_eye,
    draw_head,
    draw_mouth,
    draw_nose,
    draw_occluder,
    project_face,
)
from landmarkjax.data.synthetic._face_params import FaceIdentity, FaceScene, FaceState, check_size
from landmarkjax.data.synthetic._raster import Painter, downsample, new_mask
from landmarkjax.face_layout import LEFT_EYE, NUM_FACE_LANDMARKS, RIGHT_EYE

__all__ = ["face_geometry", "render_face", "render_background", "render_with_background"]

# Head-frame ellipsoid used for per-pixel shading of the whole head (skull and face together).
_HEAD_SHADING_CENTER = np.array([0.0, 0.2, -0.75])
_HEAD_SHADING_RADII = np.array([1.08, 1.6, 1.15])


def face_geometry(identity: FaceIdentity, state: FaceState, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks without rendering: (landmarks float32 [68, 2] (x, y) pixels, facing bool [68]).

    facing is False for landmarks turned away from the camera; it ignores occluders and the image bounds.
    """
    check_size(size)
    projected = project_face(identity, state)
    return projected.landmarks.astype(np.float32), projected.facing


def render_face(
    identity: FaceIdentity, state: FaceState, scene: FaceScene, size: int = 128
) -> dict[str, np.ndarray]:
    """Render one face image with explicit parameters.

    Args:
      identity, state, scene: see their classes (or `sample_face`).
      size: output height = width in pixels (>= 16).

    Returns:
      dict with image uint8 [size, size, 3]; landmarks float32 [68, 2] (x, y) pixels, pixel centres at
      integers; visibility bool [68]; attributes float32 [A] (FACE_ATTRIBUTE_NAMES order); face_box
      float32 [4] (x0, y0, x1, y1) pixels, the bounding box of all 68 landmarks.
    """
    check_size(size)
    background = render_background(scene.background_seed, size)
    return render_with_background(identity, state, scene, size, background)


def render_with_background(
    identity: FaceIdentity, state: FaceState, scene: FaceScene, size: int, background: Image.Image
) -> dict[str, np.ndarray]:
    """render_face on a given supersampled background canvas (copied, not modified), for reuse in clips."""
    projected = project_face(identity, state)
    canvas = background.copy()
    painter = Painter(canvas, SUPERSAMPLE)
    head_mask, head_draw = new_mask(canvas)
    hair_mask, hair_draw = new_mask(canvas)

    draw_body(painter, identity, projected)
    draw_head(painter, identity, projected, head_draw, hair_draw)
    draw_nose(painter, identity, projected, scene)
    draw_brows(painter, identity, projected)
    for eye in (LEFT_EYE, RIGHT_EYE):
        draw_eye(painter, identity, state, projected, eye, scene)
    draw_mouth(painter, identity, projected)

    occluded = np.zeros(NUM_FACE_LANDMARKS, bool)
    if scene.occluder is not None:
        occluder_mask = draw_occluder(painter, scene.occluder, projected)
        head_mask.paste(0, (0, 0, *canvas.size), occluder_mask)
        hair_mask.paste(0, (0, 0, *canvas.size), occluder_mask)
        occluded = covered(occluder_mask, projected.landmarks)

    image = downsample(canvas, SUPERSAMPLE)
    image = _shade(
        image,
        downsample(head_mask, SUPERSAMPLE),
        downsample(hair_mask, SUPERSAMPLE),
        identity,
        projected,
        scene,
        size,
    )
    image = _camera_effects(image, scene)

    landmarks = projected.landmarks
    inside = np.all((landmarks >= 0.0) & (landmarks <= size - 1), axis=-1)
    return {
        "image": image,
        "landmarks": landmarks.astype(np.float32),
        "visibility": inside & projected.facing & ~occluded,
        "attributes": state.attributes(),
        "face_box": np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)]).astype(np.float32),
    }


def render_background(seed: int, size: int) -> Image.Image:
    return textures.cluttered_background(np.random.default_rng(seed), size, size, SUPERSAMPLE)


def _shade(
    image: np.ndarray,
    head: np.ndarray,
    hair: np.ndarray,
    identity: FaceIdentity,
    p: Projected,
    scene: FaceScene,
    size: int,
) -> np.ndarray:
    """Light the head: Lambert + Blinn-Phong on ellipsoid normals, with textures fixed to the surface."""
    coords = np.arange(size, dtype=np.float32)
    normals, surface = geometry.ellipsoid_surface(
        _HEAD_SHADING_CENTER, _HEAD_SHADING_RADII, p.rotation, p.center, p.scale, coords, coords
    )
    light = scene.light_direction.astype(np.float32)
    half = light + np.float32([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    diffuse = np.maximum(normals @ light, 0.0)
    shade = scene.ambient + (1.0 - scene.ambient) * diffuse
    specular = scene.specular * np.maximum(normals @ half, 0.0) ** 20
    skin_texture, hair_texture = _surface_textures(identity.texture_seed, surface)
    gain = shade * (skin_texture + hair * (hair_texture - skin_texture)) - 1.0
    return image + (image * (head * gain)[..., None] + (head * specular)[..., None])


def _surface_textures(seed: int, surface: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skin mottling and hair streaks ([H, W] gains about 1) as functions of the head-frame surface point.

    Each is a sum of a few random plane waves over head (x, y): smooth blotches for skin, waves much
    finer across than along for hair strands.
    """
    rng = np.random.default_rng(seed)
    x, y = surface[..., 0], surface[..., 1]
    skin = np.ones_like(x)
    for amplitude, frequency in ((0.03, 6.0), (0.025, 11.0), (0.015, 23.0)):
        fx, fy = (frequency / np.sqrt(2.0) * rng.normal(0.0, 1.0, 2)).astype(np.float32)
        skin += np.float32(amplitude) * np.sin(fx * x + fy * y + np.float32(rng.uniform(0.0, 2.0 * np.pi)))
    hair = np.ones_like(x)
    for amplitude, frequency in ((0.1, 25.0), (0.08, 47.0), (0.05, 90.0)):
        fx, fy = np.float32(frequency), np.float32(frequency * rng.normal(0.0, 0.15))
        hair += np.float32(amplitude) * np.sin(fx * x + fy * y + np.float32(rng.uniform(0.0, 2.0 * np.pi)))
    return skin, hair


def _camera_effects(image: np.ndarray, scene: FaceScene) -> np.ndarray:
    size = image.shape[0]
    ramp = np.linspace(-0.15, 0.15, size, dtype=np.float32)
    gradient = 1.0 + scene.light_direction[0] * ramp[None, :] + scene.light_direction[1] * ramp[:, None]
    image = image * (gradient[..., None] * scene.tint.astype(np.float32))
    if scene.blur_sigma > 0.0:
        image = ndimage.gaussian_filter(
            image, sigma=(scene.blur_sigma, scene.blur_sigma, 0.0), mode="nearest"
        )
    if scene.noise_sigma > 0.0:
        noise = np.random.default_rng(scene.noise_seed).standard_normal(image.shape, dtype=np.float32)
        image += np.float32(scene.noise_sigma) * noise
    image *= 255.0
    image += 0.5
    return np.clip(image, 0.0, 255.0, out=image).astype(np.uint8)

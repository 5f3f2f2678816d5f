"""Pure `jax.numpy` operations: no Flax, no configuration, safe under `jit`, `vmap` and `grad`.

Lucas-Kanade tracking (`lk_track`, `forward_backward_check`) is one jit-compiled function batched over
landmarks and frame pairs. `propagate_labels` carries colours or masks from memory frames to a query frame
through a local (or global) feature affinity, in bounded memory (MAST / Zhu et al. video segmentation);
`memory_frames` picks the reference frames of each query frame.

Conventions: images `[..., H, W, C]` float32 in [0, 1]; points `[..., K, 2]` as (x, y) in pixels with pixel
centres at integer coordinates (OpenCV); heatmaps `[..., H, W, K]`. Each function documents its shapes.
"""

from landmarkjax.ops.heatmaps import (
    soft_argmax,
    marginal_soft_argmax,
    local_soft_argmax,
    render_gaussian_heatmaps,
    heatmap_to_image_coords,
    image_to_heatmap_coords,
    LOCATORS,
    locate_landmarks,
)
from landmarkjax.ops.sampling import (
    bilinear_sample,
    extract_patches,
)
from landmarkjax.ops.warps import (
    affine_matrix,
    invert_affine,
    random_affine,
    affine_warp_points,
    affine_warp_image,
    source_pixels_valid,
    pixel_grid,
)
from landmarkjax.ops.tps import (
    ThinPlateSpline,
    tps_fit,
    tps_warp_points,
    tps_invert_points,
    pixels_to_normalized,
    normalized_to_pixels,
    tps_warp_image,
    tps_carry_points,
    control_grid,
    random_tps,
    IMM_TARGET_TPS,
    IMM_SOURCE_TPS,
    tps_image_pair,
)
from landmarkjax.ops.pyramid import (
    pyramid_downsample,
    gaussian_pyramid,
)
from landmarkjax.ops.lucas_kanade import (
    lk_track,
    forward_backward_check,
)
from landmarkjax.ops.colour import (
    rgb_to_lab,
    lab_to_rgb,
)
from landmarkjax.ops.geometry import (
    rodrigues,
    similarity_procrustes,
    apply_similarity,
    weak_perspective_project,
)
from landmarkjax.ops.rotations import (
    rotation_6d_to_matrix,
    matrix_to_rotation_6d,
    matrix_to_axis_angle,
)
from landmarkjax.ops.ema import (
    momentum_update,
    momentum_schedule,
)
from landmarkjax.ops.correspondence import (
    propagate_labels,
    memory_frames,
)

__all__ = [
    "soft_argmax",
    "marginal_soft_argmax",
    "local_soft_argmax",
    "render_gaussian_heatmaps",
    "heatmap_to_image_coords",
    "image_to_heatmap_coords",
    "LOCATORS",
    "locate_landmarks",
    "bilinear_sample",
    "extract_patches",
    "affine_matrix",
    "invert_affine",
    "random_affine",
    "affine_warp_points",
    "affine_warp_image",
    "source_pixels_valid",
    "pixel_grid",
    "ThinPlateSpline",
    "tps_fit",
    "tps_warp_points",
    "tps_invert_points",
    "pixels_to_normalized",
    "normalized_to_pixels",
    "tps_warp_image",
    "tps_carry_points",
    "control_grid",
    "random_tps",
    "IMM_TARGET_TPS",
    "IMM_SOURCE_TPS",
    "tps_image_pair",
    "pyramid_downsample",
    "gaussian_pyramid",
    "lk_track",
    "forward_backward_check",
    "rgb_to_lab",
    "lab_to_rgb",
    "rodrigues",
    "similarity_procrustes",
    "apply_similarity",
    "weak_perspective_project",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "matrix_to_axis_angle",
    "momentum_update",
    "momentum_schedule",
    "propagate_labels",
    "memory_frames",
]

"""Guards the public surface: adding, removing or renaming a public name must be a deliberate change here."""

import importlib
import inspect

import pytest

EXPECTED_PUBLIC_API = {
    "landmarkjax.ops": {
        # heatmaps
        "soft_argmax", "marginal_soft_argmax", "local_soft_argmax", "render_gaussian_heatmaps",
        "heatmap_to_image_coords", "image_to_heatmap_coords", "LOCATORS", "locate_landmarks",
        # sampling
        "bilinear_sample", "extract_patches",
        # affine warps
        "affine_matrix", "invert_affine", "random_affine", "affine_warp_points", "affine_warp_image",
        "source_pixels_valid", "pixel_grid",
        # thin-plate splines
        "ThinPlateSpline", "tps_fit", "tps_warp_points", "tps_invert_points", "pixels_to_normalized",
        "normalized_to_pixels", "tps_warp_image", "tps_carry_points", "control_grid", "random_tps",
        "IMM_TARGET_TPS", "IMM_SOURCE_TPS", "tps_image_pair",
        # pyramids and Lucas-Kanade tracking
        "pyramid_downsample", "gaussian_pyramid", "lk_track", "forward_backward_check",
        # colour, geometry, momentum
        "rgb_to_lab", "lab_to_rgb",
        "rodrigues", "similarity_procrustes", "apply_similarity", "weak_perspective_project",
        "rotation_6d_to_matrix", "matrix_to_rotation_6d", "matrix_to_axis_angle",
        "momentum_update", "momentum_schedule",
        # label propagation through a feature affinity (video object segmentation)
        "propagate_labels", "memory_frames",
    },
    "landmarkjax.metrics": {
        "NME_NORMALIZERS", "nme", "cumulative_error_distribution", "auc", "failure_rate", "pck", "mpjpe",
        "pa_mpjpe", "region_jaccard", "boundary_f", "davis_statistics", "jitter",
    },
    "landmarkjax.methods.vos": {
        "STRIDE", "VosMethod", "VosState", "build", "channel_dropout", "davis_summary", "normalized_lab",
        "training_references",
        # the propagation protocol on any feature extractor (DINO-style evaluation of other JAX models)
        "propagate_video", "propagation_window",
    },
    "landmarkjax.data.davis": {
        "DAVIS_PALETTE", "read_palette_png", "decode_palette_png", "write_palette_png", "read_palette",
        "write_davis_sequence",
    },
    "landmarkjax.inference": {
        "FaceLandmarks", "crop_faces", "draw_landmarks_on_image", "load_image", "predict_landmarks",
    },
    "landmarkjax.losses": {
        "heatmap_mse", "multi_stage_heatmap_mse", "heatmap_targets",
        "point_distance_loss", "point_l1_loss",
        "registration_point_mask", "registration_distance", "registration_loss", "oracle_registration_loss",
        "perceptual_loss", "IMM_PERCEPTUAL_LAYERS", "IMM_INITIAL_AVERAGES",
        "keypoint_2d_l1_loss", "align_by_pelvis", "joints_3d_loss", "smpl_parameter_loss", "HMR_LOSS_WEIGHTS",
        "COCOPLUS_HIP_INDICES", "SMPL_ROOT_INDICES",
        "lsgan_discriminator_loss", "lsgan_generator_loss",
        "spatial_softmax_nll", "equivariance_loss", "elt_matrix", "random_elt_transform",
        "attribute_cross_entropy", "attribute_squared_error",
    },
    "landmarkjax.body": {
        "SMPLModel", "SMPLOutput", "SMPL_JOINT_NAMES", "SMPL_PARENTS", "COCOPLUS_JOINT_NAMES", "REQUIRED_KEYS",
        "load_smpl", "save_smpl", "smpl_from_arrays", "smpl_to_arrays", "read_official_pickle",
        "dumps_official_pickle", "forward_kinematics", "rest_to_posed_transforms", "linear_blend_skinning",
        "smpl_forward", "pose_to_rotations", "make_synthetic_smpl", "synthetic_smpl_arrays", "write_synthetic_smpl",
        "validate_parents", "COCOPLUS_REGRESSOR_KEY", "SMPL_TO_COCOPLUS", "cocoplus_from_smpl_joints",
        "cocoplus_keypoints",
    },
}


@pytest.mark.parametrize("module_name", sorted(EXPECTED_PUBLIC_API))
def test_all_lists_exactly_the_expected_names(module_name):
    module = importlib.import_module(module_name)
    assert set(module.__all__) == EXPECTED_PUBLIC_API[module_name]
    assert len(module.__all__) == len(set(module.__all__)), "duplicate names in __all__"


@pytest.mark.parametrize("module_name", sorted(EXPECTED_PUBLIC_API))
def test_every_public_name_resolves_and_documents_itself(module_name):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"

"""SMPL body model: the model pytree, loaders for the official .pkl and .npz files, forward kinematics,
linear blend skinning, the full forward pass, and a procedural SMPL-format model.

Pure JAX functions, safe under `jax.jit`, `jax.vmap` and `jax.grad`; no Flax. Typical use:

    from landmarkjax.body import load_smpl, make_synthetic_smpl, smpl_forward

    model = make_synthetic_smpl(seed=0)          # or load_smpl("SMPL_NEUTRAL.pkl"), no chumpy needed
    output = smpl_forward(model, betas, body_pose, global_orient, transl)
    output.vertices, output.joints               # [B, V, 3], [B, 24, 3]
    keypoints, valid = cocoplus_keypoints(output)  # HMR's 19 joints [B, 19, 3], [19]
"""

from landmarkjax.body.io import REQUIRED_KEYS, load_smpl, save_smpl, smpl_from_arrays, smpl_to_arrays
from landmarkjax.body.kinematics import forward_kinematics, linear_blend_skinning, rest_to_posed_transforms
from landmarkjax.body.official_pickle import dumps_official_pickle, read_official_pickle
from landmarkjax.body.forward_pass import SMPLOutput, pose_to_rotations, smpl_forward
from landmarkjax.body.keypoints import (
    COCOPLUS_REGRESSOR_KEY,
    SMPL_TO_COCOPLUS,
    cocoplus_from_smpl_joints,
    cocoplus_keypoints,
)
from landmarkjax.body.smpl_model import SMPL_JOINT_NAMES, SMPL_PARENTS, SMPLModel, validate_parents
from landmarkjax.body.synthetic_smpl import (
    COCOPLUS_JOINT_NAMES,
    make_synthetic_smpl,
    synthetic_smpl_arrays,
    write_synthetic_smpl,
)

__all__ = [
    "COCOPLUS_JOINT_NAMES",
    "COCOPLUS_REGRESSOR_KEY",
    "SMPL_TO_COCOPLUS",
    "cocoplus_from_smpl_joints",
    "cocoplus_keypoints",
    "REQUIRED_KEYS",
    "SMPLModel",
    "SMPLOutput",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "dumps_official_pickle",
    "forward_kinematics",
    "linear_blend_skinning",
    "load_smpl",
    "make_synthetic_smpl",
    "pose_to_rotations",
    "read_official_pickle",
    "rest_to_posed_transforms",
    "save_smpl",
    "smpl_forward",
    "smpl_from_arrays",
    "smpl_to_arrays",
    "synthetic_smpl_arrays",
    "validate_parents",
    "write_synthetic_smpl",
]

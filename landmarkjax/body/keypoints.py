"""HMR's 19 cocoplus keypoints from an SMPL forward pass.

HMR supervises 19 "cocoplus" joints (`COCOPLUS_JOINT_NAMES`: the 14 LSP joints, then nose, eyes and ears),
regressed from the posed vertices by its `cocoplus_regressor` [19, V]. The synthetic model carries one, and
so does HMR's `neutral_smpl_with_cocoplus_reg.pkl`; SMPL's own model files do not. For those,
`SMPL_TO_COCOPLUS` maps 13 of the 19 keypoints to SMPL's kinematic joints of the same name; head top, nose,
eyes and ears have no SMPL joint and come back invalid (to be masked out of the 2D loss through its
visibility). The mapping is an approximation: SMPL's joint centres are not where LSP annotators click (the
hips, for instance, sit a few centimetres off), so prefer the regressor where the model has one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from landmarkjax.body.forward_pass import SMPLOutput
from landmarkjax.body.smpl_model import SMPL_JOINT_NAMES
from landmarkjax.body.synthetic_smpl import COCOPLUS_JOINT_NAMES

__all__ = ["COCOPLUS_REGRESSOR_KEY", "SMPL_TO_COCOPLUS", "cocoplus_from_smpl_joints", "cocoplus_keypoints"]

# The name of the cocoplus regressor in `SMPLModel.extra_regressors` and `SMPLOutput.extra_joints`.
COCOPLUS_REGRESSOR_KEY = "cocoplus_regressor"

# For each cocoplus keypoint, the index of the SMPL joint of the same name, or -1 where SMPL has none.
SMPL_TO_COCOPLUS: tuple[int, ...] = tuple(
    SMPL_JOINT_NAMES.index(name) if name in SMPL_JOINT_NAMES else -1 for name in COCOPLUS_JOINT_NAMES
)


def cocoplus_from_smpl_joints(joints: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cocoplus keypoints from SMPL's 24 kinematic joints (`SMPL_TO_COCOPLUS`).

    Args:
      joints: [..., 24, 3] SMPL joints (`SMPLOutput.joints`; metres for SMPL), in `SMPL_JOINT_NAMES` order.

    Returns:
      keypoints: [..., 19, 3] in `COCOPLUS_JOINT_NAMES` order, same unit; zeros where SMPL has no joint.
      valid: [19] bool, False for head top, nose, eyes and ears (no SMPL joint).
    """
    joints = jnp.asarray(joints)
    if joints.ndim < 2 or joints.shape[-2:] != (len(SMPL_JOINT_NAMES), 3):
        raise ValueError(f"joints must have shape [..., {len(SMPL_JOINT_NAMES)}, 3], got {joints.shape}")
    indices = jnp.asarray([max(index, 0) for index in SMPL_TO_COCOPLUS])
    valid = jnp.asarray([index >= 0 for index in SMPL_TO_COCOPLUS])
    keypoints = jnp.where(valid[:, None], joints[..., indices, :], 0.0)
    return keypoints, valid


def cocoplus_keypoints(output: SMPLOutput) -> tuple[jax.Array, jax.Array]:
    """HMR's 19 cocoplus keypoints of a posed body: the model's cocoplus regressor if it has one, else the
    13 that map to SMPL joints (`cocoplus_from_smpl_joints`).

    Args:
      output: `smpl_forward`'s result; `output.extra_joints["cocoplus_regressor"]` is [..., 19, 3] when the
        model carries the regressor.

    Returns:
      keypoints: [..., 19, 3] in `COCOPLUS_JOINT_NAMES` order, the unit of the model (metres for SMPL).
      valid: [19] bool, which keypoints are defined (all True with the regressor).
    """
    regressed = output.extra_joints.get(COCOPLUS_REGRESSOR_KEY)
    if regressed is None:
        return cocoplus_from_smpl_joints(output.joints)
    if regressed.shape[-2] != len(COCOPLUS_JOINT_NAMES):
        raise ValueError(
            f"the model's {COCOPLUS_REGRESSOR_KEY} gives {regressed.shape[-2]} joints; expected "
            f"{len(COCOPLUS_JOINT_NAMES)} ({', '.join(COCOPLUS_JOINT_NAMES)})"
        )
    return regressed, jnp.ones(len(COCOPLUS_JOINT_NAMES), bool)

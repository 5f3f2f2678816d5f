"""HMR (Kanazawa et al., CVPR 2018): image encoder, iterative error feedback regressor, factorised
discriminator.

* `ResNet`: an image encoder ending in global average pooling. `resnet50()` is the paper's layout (ResNet-50,
  [3, 4, 6, 3] bottleneck blocks, 2048 features); `small_resnet()` is a narrow basic-block variant that
  trains on a CPU. GroupNorm replaces BatchNorm, so the model has parameters only (no mutable
  `batch_stats`) and behaves the same in training and evaluation.
* `IEFRegressor`: Theta = [camera (3), pose, shape (10)], starting from a (trainable) mean Theta and
  refined `num_iterations` times (paper: 3) by one shared MLP, fc 1024 - dropout - fc 1024 - dropout -
  fc |Theta|, that sees [image features, current Theta] and outputs a residual. The pose is axis-angle
  (24 x 3 = 72, |Theta| = 85, the paper) or the continuous 6-D representation (24 x 6 = 144,
  |Theta| = 157; `landmarkjax.ops.rotation_6d_to_matrix`).
* `HMR`: encoder + regressor.
* `FactorisedDiscriminator`: the adversarial body prior. One head per body joint on its rotation matrix:
  the 9 entries of each of the 23 joints go through two 1x1 convolutions of width 32 shared by all
  joints, then a joint-specific linear output; one head over all joints (their shared 32-wide features,
  two fc 1024, linear output); one head on the shape (fc 10 - fc 5 - linear output). 23 + 1 + 1 = 25
  least-squares GAN scores, with no sigmoid (HMR's official code, `Discriminator_separable_rotations`).

Units and conventions: images `[B, H, W, 3]` float32 in [0, 1] (mapped to [-1, 1] inside, as the official
code feeds the encoder); the camera is HMR's weak perspective [s, tx, ty] (`ops.weak_perspective_project`,
normalised image coordinates in [-1, 1]); poses are radians (axis-angle) or unitless 6-D; rotation
matrices act on column vectors (`R @ p`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from landmarkjax.ops.geometry import rodrigues
from landmarkjax.ops.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix

__all__ = [
    "POSE_REPRESENTATIONS",
    "ResNet",
    "resnet50",
    "small_resnet",
    "IEFRegressor",
    "HMR",
    "hmr_resnet50",
    "hmr_small",
    "FactorisedDiscriminator",
    "theta_size",
    "mean_theta",
    "split_theta",
    "pose_to_rotation_matrices",
]

# Values per joint of each pose representation.
POSE_REPRESENTATIONS = {"axis_angle": 3, "6d": 6}
_CAMERA_SIZE = 3
_NUM_JOINTS = 24
_NUM_BETAS = 10

# The official regressor's last layer: Xavier-uniform scaled by 0.01, so the first residuals are tiny and
# IEF starts near the mean Theta.
small_xavier_init = nn.initializers.variance_scaling(0.01, "fan_avg", "uniform")
_conv_init = nn.initializers.kaiming_normal()


def _pose_size(pose_representation: str) -> int:
    if pose_representation not in POSE_REPRESENTATIONS:
        raise ValueError(
            f"pose_representation must be one of {sorted(POSE_REPRESENTATIONS)}, got {pose_representation!r}"
        )
    return POSE_REPRESENTATIONS[pose_representation]


def theta_size(
    pose_representation: str = "axis_angle", num_joints: int = _NUM_JOINTS, num_betas: int = _NUM_BETAS
) -> int:
    """|Theta| = 3 (camera) + num_joints * (3 or 6) (pose) + num_betas (shape): 85 for HMR, 157 with 6-D."""
    return _CAMERA_SIZE + num_joints * _pose_size(pose_representation) + num_betas


def mean_theta(
    pose_representation: str = "axis_angle",
    num_joints: int = _NUM_JOINTS,
    num_betas: int = _NUM_BETAS,
    camera: Sequence[float] = (0.9, 0.0, 0.0),
    global_orient: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """The starting Theta of IEF: a camera, a global rotation, rest pose for every body joint, mean shape.

    HMR starts from the SMPL mean pose of its `neutral_smpl_mean_params.h5` with camera scale 0.9; without
    that file the default here is the rest pose (identity rotations), zero shape and camera [0.9, 0, 0].
    HMR's mean global rotation is pi about x (SMPL is y-up, images y-down): pass
    `global_orient=(np.pi, 0, 0)` for a model in SMPL's official frame.

    Args:
      pose_representation: "axis_angle" or "6d".
      num_joints: J pose joints, the root included (24 for SMPL).
      num_betas: shape coefficients (10).
      camera: [s, tx, ty] weak-perspective camera (unitless scale; translation in model units).
      global_orient: [3] axis-angle (radians) of the root joint.

    Returns:
      [theta_size(...)] float32 as [camera, pose of joint 0..J-1 (flattened), betas].
    """
    _pose_size(pose_representation)
    camera = np.asarray(camera, np.float32)
    global_orient = np.asarray(global_orient, np.float32)
    if camera.shape != (_CAMERA_SIZE,):
        raise ValueError(f"camera must be [s, tx, ty], got shape {camera.shape}")
    if global_orient.shape != (3,):
        raise ValueError(f"global_orient must be one axis-angle vector [3], got shape {global_orient.shape}")
    if pose_representation == "axis_angle":
        pose = np.zeros((num_joints, 3), np.float32)
        pose[0] = global_orient
    else:
        # Evaluated now even while a module is traced under jit: the mean is a constant.
        with jax.ensure_compile_time_eval():
            root = np.asarray(matrix_to_rotation_6d(rodrigues(jnp.asarray(global_orient))))
        pose = np.tile(np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], np.float32), (num_joints, 1))
        pose[0] = root
    return np.concatenate([camera, pose.reshape(-1), np.zeros(num_betas, np.float32)]).astype(np.float32)


def split_theta(
    theta: jnp.ndarray, pose_representation: str = "axis_angle", num_betas: int = _NUM_BETAS
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Splits Theta into camera, pose and shape.

    Args:
      theta: [..., 3 + J * D + num_betas], D = 3 (axis-angle) or 6 (6-D).
      pose_representation: "axis_angle" or "6d".
      num_betas: shape coefficients at the end of Theta.

    Returns:
      camera [..., 3] as [s, tx, ty]; pose [..., J, D] (radians or unitless 6-D); betas [..., num_betas].
    """
    values_per_joint = _pose_size(pose_representation)
    theta = jnp.asarray(theta)
    pose_length = theta.shape[-1] - _CAMERA_SIZE - num_betas
    if pose_length <= 0 or pose_length % values_per_joint:
        raise ValueError(
            f"theta must have shape [..., 3 + J * {values_per_joint} + {num_betas}] for "
            f"{pose_representation!r}, got {theta.shape}"
        )
    camera = theta[..., :_CAMERA_SIZE]
    pose = theta[..., _CAMERA_SIZE : _CAMERA_SIZE + pose_length]
    pose = pose.reshape(pose.shape[:-1] + (pose_length // values_per_joint, values_per_joint))
    return camera, pose, theta[..., _CAMERA_SIZE + pose_length :]


def pose_to_rotation_matrices(pose: jnp.ndarray, pose_representation: str = "axis_angle") -> jnp.ndarray:
    """[..., J, 3] axis-angle (radians) or [..., J, 6] 6-D -> [..., J, 3, 3] rotation matrices."""
    values_per_joint = _pose_size(pose_representation)
    pose = jnp.asarray(pose)
    if pose.ndim < 1 or pose.shape[-1] != values_per_joint:
        raise ValueError(
            f"pose must have shape [..., J, {values_per_joint}] for {pose_representation!r}, got {pose.shape}"
        )
    return rodrigues(pose) if pose_representation == "axis_angle" else rotation_6d_to_matrix(pose)


def _conv(features: int, kernel: tuple[int, int], strides: tuple[int, int] = (1, 1), **kwargs) -> nn.Conv:
    return nn.Conv(features, kernel, strides, padding="SAME", use_bias=False, kernel_init=_conv_init, **kwargs)


def _group_norm(channels: int, max_groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=math.gcd(channels, max_groups))


class _ResidualBlock(nn.Module):
    """A basic (two 3x3) or bottleneck (1x1 - 3x3 - 1x1, 4x expansion) residual block with GroupNorm."""

    width: int
    stride: int
    bottleneck: bool
    max_groups: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        out_channels = self.width * 4 if self.bottleneck else self.width
        strides = (self.stride, self.stride)
        if self.bottleneck:
            y = _conv(self.width, (1, 1))(x)
            y = nn.relu(_group_norm(self.width, self.max_groups)(y))
            y = _conv(self.width, (3, 3), strides)(y)
            y = nn.relu(_group_norm(self.width, self.max_groups)(y))
            y = _conv(out_channels, (1, 1))(y)
        else:
            y = _conv(self.width, (3, 3), strides)(x)
            y = nn.relu(_group_norm(self.width, self.max_groups)(y))
            y = _conv(out_channels, (3, 3))(y)
        # Zero-initialised last scale: each block starts as the identity (Goyal et al. 2017).
        groups = math.gcd(out_channels, self.max_groups)
        y = nn.GroupNorm(num_groups=groups, scale_init=nn.initializers.zeros)(y)
        if x.shape[-1] != out_channels or self.stride != 1:
            x = _conv(out_channels, (1, 1), strides, name="projection")(x)
            x = _group_norm(out_channels, self.max_groups)(x)
        return nn.relu(x + y)


class ResNet(nn.Module):
    """A ResNet image encoder with GroupNorm, ending in global average pooling.

    Stem: 7x7 convolution of `width` channels at stride 2, GroupNorm, ReLU, 3x3 max pool at stride 2; then
    one stage per entry of `stage_sizes`, stage i of width `width * 2**i` (x4 output channels for
    bottleneck blocks), the first block of every stage after the first at stride 2.

    Attributes:
      stage_sizes: residual blocks per stage ((3, 4, 6, 3) for ResNet-50).
      width: channels of the stem and of the first stage's blocks (64 for ResNet-50).
      bottleneck: bottleneck blocks (ResNet-50 and deeper) or basic blocks (ResNet-18/34).
      max_groups: GroupNorm uses gcd(channels, max_groups) groups (32 by default, as Wu & He 2018).
    """

    stage_sizes: Sequence[int] = (3, 4, 6, 3)
    width: int = 64
    bottleneck: bool = True
    max_groups: int = 32

    @property
    def num_features(self) -> int:
        """Channels of the pooled output (2048 for ResNet-50)."""
        last = self.width * 2 ** (len(self.stage_sizes) - 1)
        return last * 4 if self.bottleneck else last

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        """[B, H, W, 3] float32 in [0, 1] -> [B, num_features] pooled features (stride 32 for 4 stages)."""
        if images.ndim != 4:
            raise ValueError(f"images must have shape [B, H, W, C], got {images.shape}")
        x = images * 2.0 - 1.0
        x = _conv(self.width, (7, 7), (2, 2))(x)
        x = nn.relu(_group_norm(self.width, self.max_groups)(x))
        x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
        for stage, num_blocks in enumerate(self.stage_sizes):
            for block in range(num_blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                x = _ResidualBlock(self.width * 2**stage, stride, self.bottleneck, self.max_groups)(x)
        return jnp.mean(x, axis=(1, 2))


def resnet50() -> ResNet:
    """HMR's encoder: ResNet-50 (bottleneck blocks [3, 4, 6, 3], width 64, 2048 features), GroupNorm."""
    return ResNet(stage_sizes=(3, 4, 6, 3), width=64, bottleneck=True)


def small_resnet(width: int = 8) -> ResNet:
    """A CPU-sized encoder: basic blocks [1, 1, 1, 1] from `width` channels (8 * width features)."""
    return ResNet(stage_sizes=(1, 1, 1, 1), width=width, bottleneck=False, max_groups=8)


class IEFRegressor(nn.Module):
    """Iterative error feedback: Theta_{t+1} = Theta_t + MLP([features, Theta_t]), from a mean Theta.

    The MLP (fc `hidden` + ReLU - dropout - fc `hidden` + ReLU - dropout - fc |Theta|) is shared by all
    iterations. The starting Theta is a parameter `mean_theta` (trainable, as in the official code),
    initialised to `mean_theta(pose_representation, num_joints, num_betas, initial_camera,
    initial_global_orient)`.

    Attributes:
      num_iterations: refinement steps (paper: 3).
      hidden: width of the two hidden layers (paper: 1024).
      dropout_rate: dropout after each hidden layer (official code: 0.5).
      pose_representation: "axis_angle" (|Theta| = 85, the paper) or "6d" (|Theta| = 157).
      num_joints: J pose joints including the root (24).
      num_betas: shape coefficients (10).
      initial_camera: [s, tx, ty] of the mean Theta.
      initial_global_orient: axis-angle (radians) of the mean Theta's root rotation.
      final_kernel_init: initialiser of the last layer's kernel (official: Xavier x 0.01; zeros make every
        iteration return the mean exactly at initialisation).
    """

    num_iterations: int = 3
    hidden: int = 1024
    dropout_rate: float = 0.5
    pose_representation: str = "axis_angle"
    num_joints: int = _NUM_JOINTS
    num_betas: int = _NUM_BETAS
    initial_camera: Sequence[float] = (0.9, 0.0, 0.0)
    initial_global_orient: Sequence[float] = (0.0, 0.0, 0.0)
    final_kernel_init: Callable[..., Any] = small_xavier_init

    @property
    def theta_size(self) -> int:
        """|Theta|: 85 for axis-angle SMPL, 157 for 6-D."""
        return theta_size(self.pose_representation, self.num_joints, self.num_betas)

    @nn.compact
    def __call__(self, features: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        """Regresses Theta.

        Args:
          features: [B, F] image features.
          deterministic: False applies dropout and needs a "dropout" PRNG key in `apply(..., rngs=...)`.

        Returns:
          [num_iterations, B, |Theta|] Theta after each iteration (the last is the prediction), each as
          [camera (3), pose (J * 3 or J * 6), betas]; see `split_theta`.
        """
        if features.ndim != 2:
            raise ValueError(f"features must have shape [B, F], got {features.shape}")
        if self.num_iterations < 1:
            raise ValueError(f"num_iterations must be >= 1, got {self.num_iterations}")
        initial = mean_theta(
            self.pose_representation,
            self.num_joints,
            self.num_betas,
            self.initial_camera,
            self.initial_global_orient,
        )
        mean = self.param("mean_theta", lambda _: jnp.asarray(initial))
        layers = [
            nn.Dense(self.hidden, name="fc1"),
            nn.Dense(self.hidden, name="fc2"),
            nn.Dense(self.theta_size, kernel_init=self.final_kernel_init, name="fc3"),
        ]
        dropout = nn.Dropout(self.dropout_rate, deterministic=deterministic)
        theta = jnp.broadcast_to(mean, (features.shape[0], self.theta_size)).astype(features.dtype)
        thetas = []
        for _ in range(self.num_iterations):
            x = jnp.concatenate([features, theta], axis=-1)
            x = dropout(nn.relu(layers[0](x)))
            x = dropout(nn.relu(layers[1](x)))
            theta = theta + layers[2](x)
            thetas.append(theta)
        return jnp.stack(thetas)


class HMR(nn.Module):
    """Image -> Theta by a ResNet encoder and the IEF regressor.

    Attributes:
      encoder: the image encoder (`resnet50()` for the paper).
      regressor: the IEF regressor.
    """

    encoder: ResNet
    regressor: IEFRegressor

    @nn.compact
    def __call__(self, images: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        """[B, H, W, 3] float32 in [0, 1] -> [num_iterations, B, |Theta|] (see `IEFRegressor`)."""
        return self.regressor(self.encoder(images), deterministic=deterministic)


def hmr_resnet50(pose_representation: str = "axis_angle") -> HMR:
    """The paper's network: ResNet-50 (GroupNorm) + IEF with 3 iterations, fc 1024, dropout 0.5."""
    return HMR(resnet50(), IEFRegressor(pose_representation=pose_representation))


def hmr_small(pose_representation: str = "axis_angle", width: int = 8, hidden: int = 64) -> HMR:
    """A CPU-sized HMR: `small_resnet(width)` + IEF with 3 iterations and `hidden`-wide layers."""
    return HMR(small_resnet(width), IEFRegressor(hidden=hidden, pose_representation=pose_representation))


class FactorisedDiscriminator(nn.Module):
    """HMR's factorised adversarial prior over body-joint rotations and shape (least squares, no sigmoid).

    Attributes:
      joint_width: width of the two shared 1x1 convolutions over each joint's 9 rotation entries (32).
      pose_hidden: width of the two fc layers of the whole-pose head (1024).
      shape_widths: fc layers of the shape head (10, 5).
    """

    joint_width: int = 32
    pose_hidden: int = 1024
    shape_widths: Sequence[int] = (10, 5)

    @nn.compact
    def __call__(self, rotations: jnp.ndarray, betas: jnp.ndarray) -> jnp.ndarray:
        """Scores bodies: real (mocap) ones should score 1, regressed ones 0 (least-squares GAN).

        Args:
          rotations: [B, K, 3, 3] rotation matrices of the body joints relative to their parents, the root
            excluded (K = 23 for SMPL: pose joints 1..23).
          betas: [B, S] shape coefficients (S = 10).

        Returns:
          [B, K + 2] unbounded scores: one per joint (columns 0..K-1, joint order of `rotations`), the whole
          pose (column K), the shape (column K + 1).
        """
        if rotations.ndim != 4 or rotations.shape[-2:] != (3, 3):
            raise ValueError(f"rotations must have shape [B, K, 3, 3], got {rotations.shape}")
        if betas.ndim != 2 or betas.shape[0] != rotations.shape[0]:
            raise ValueError(f"betas must have shape [B, S] with B = {rotations.shape[0]}, got {betas.shape}")
        batch, num_joints = rotations.shape[:2]
        x = rotations.reshape(batch, num_joints, 9)
        # 1x1 convolutions over the joint axis: one set of weights for every joint.
        x = nn.relu(nn.Conv(self.joint_width, (1,), name="joint_conv1")(x))
        x = nn.relu(nn.Conv(self.joint_width, (1,), name="joint_conv2")(x))
        joint_kernel = self.param(
            "joint_heads_kernel",
            nn.initializers.lecun_normal(in_axis=-1, out_axis=-2),
            (num_joints, self.joint_width),
        )
        joint_bias = self.param("joint_heads_bias", nn.initializers.zeros, (num_joints,))
        joint_scores = jnp.einsum("bkc,kc->bk", x, joint_kernel) + joint_bias

        pose = x.reshape(batch, num_joints * self.joint_width)
        pose = nn.relu(nn.Dense(self.pose_hidden, name="pose_fc1")(pose))
        pose = nn.relu(nn.Dense(self.pose_hidden, name="pose_fc2")(pose))
        pose_score = nn.Dense(1, name="pose_out")(pose)

        shape = betas
        for index, width in enumerate(self.shape_widths):
            shape = nn.relu(nn.Dense(width, name=f"shape_fc{index + 1}")(shape))
        shape_score = nn.Dense(1, name="shape_out")(shape)
        return jnp.concatenate([joint_scores, pose_score, shape_score], axis=-1)

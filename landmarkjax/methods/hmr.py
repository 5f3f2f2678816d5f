"""HMR: end-to-end recovery of human shape and pose (Kanazawa, Black, Jacobs, Malik; CVPR 2018).

Model (`landmarkjax.models.hmr`): an image encoder (a small ResNet on CPU, ResNet-50 as the paper) and the
IEF regressor give Theta = [camera s, tx, ty; pose of SMPL's 24 joints (axis-angle, or 6-D with
`model.pose_representation="6d"`); 10 betas], refined `model.num_iterations` times from the mean Theta
(rest pose turned by pi about x so that the body stands upright in the image's y-down camera frame, zero
betas, camera [0.9, 0, 0]). The body model (a frozen input, `frozen_inputs()["smpl"]`) poses the mesh;
its 19 cocoplus keypoints are projected by the weak-perspective camera into normalised image coordinates
(-1 / +1 at the first / last pixel centre, `ops.pixels_to_normalized`).

Training streams (`Streams`): "images", synthetic people (`SyntheticPeopleSource`: image, 19 cocoplus 2D
keypoints with visibility, 3D joints, SMPL pose and betas, and `has_3d`, 1 for the first
`hmr.paired_3d_fraction` of the images when `hmr.use_3d`); "mocap", the discriminator's real bodies
(`SyntheticMocapSource`, its own seed stream, or `AmassPoseSource` when `data.mocap_path` names .npz
files), never the images' poses. Two optimisers in one `TrainState`, keyed "generator" (encoder +
regressor) and "discriminator".

Losses, on the last IEF iteration, weighted as the paper (`losses.HMR_LOSS_WEIGHTS`):
  * keypoints_2d_loss: `losses.keypoint_2d_l1_loss` in normalised image units, visibility-weighted (a
    keypoint the body model cannot produce, e.g. the face points of a model without the cocoplus
    regressor, counts as invisible); x `hmr.keypoint_weight` (60);
  * joints_3d_loss: `losses.joints_3d_loss` on the 14 LSP joints (pelvis = mean of the hips, metres^2),
    and smpl_loss:
    `losses.smpl_parameter_loss` (24 rotation matrices + 10 betas) on the images with has_3d; x
    `hmr.joints_3d_weight` and `hmr.smpl_weight` (60 each, as the official training command);
  * adversarial_loss: `losses.lsgan_generator_loss` of the discriminator's 25 scores of the predicted
    body (`pose_to_rotation_matrices(pose)[:, 1:]`, the 23 body joints, and betas); x
    `hmr.adversarial_weight` (1; 0 removes the prior and the discriminator's updates);
  * discriminator_loss: `losses.lsgan_discriminator_loss`, mocap bodies real, the encoder's bodies (its
    gradient stopped) fake; x `hmr.discriminator_weight` (1), `hmr.discriminator_steps` updates per step,
    each on its own mocap batch, from the bodies the encoder predicted before its own update (as HMR's
    simultaneous update).
`loss` is the encoder's objective (the weighted sum of the first four). Phases: "encoder" (no prior) for
`hmr.discriminator_start` steps, then "adversarial"; a run without the prior has the one phase "encoder".

Evaluation (`data.source`): "synthetic" held-out people, or "h36m" (`landmarkjax.data.h36m`).
  * mpjpe: MPJPE in millimetres on the 14 LSP joints (the first 14 cocoplus keypoints, as HMR evaluates),
    both skeletons translated so that their pelvis (mean of the two hips) is at the origin. On h36m this
    is protocol 1 (`protocol1_mpjpe`);
  * pa_mpjpe: MPJPE in millimetres after the similarity Procrustes alignment of the 14 joints (HMR's
    reconstruction error; h36m protocol 2, `protocol2_pa_mpjpe`);
  * pck@0.1: the fraction of the visible LSP joints whose projection lies within 0.1 x the larger side of
    the bounding box of the true 14 joints' 2D positions (pixels);
  * body plausibility: pose_outside_limits, the fraction of the 23 x 3 predicted body-joint axis-angle
    components (each rotation taken with its angle in [0, pi]) outside the synthetic pose sampler's joint
    limits (`data.synthetic.people.BODY_POSE_LIMITS`; every true pose lies inside); pose_limit_excess_deg,
    the mean distance outside those limits in degrees (0 inside); mean_abs_betas, the mean |beta| (the
    synthetic shapes are standard normals cut at 2.5: mean |beta| about 0.79).
The body model's unit is metres (the synthetic model and SMPL); the metrics multiply by 1000.
"""

from __future__ import annotations

import glob
import math
from typing import Any, Iterable, Mapping

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from landmarkjax import losses, metrics
from landmarkjax.body import SMPLModel, cocoplus_keypoints, load_smpl, make_synthetic_smpl, smpl_forward
from landmarkjax.data.amass import AmassPoseSource
from landmarkjax.data.h36m import H36mSource
from landmarkjax.data.pipeline import make_loader, one_pass_loader
from landmarkjax.data.sources import MemoizedSource, SyntheticMocapSource, SyntheticPeopleSource
from landmarkjax.data.synthetic.people import BODY_POSE_LIMITS, rasterize_triangles
from landmarkjax.data.visualize import contact_sheet
from landmarkjax.models.hmr import (
    HMR,
    POSE_REPRESENTATIONS,
    FactorisedDiscriminator,
    IEFRegressor,
    pose_to_rotation_matrices,
    resnet50,
    small_resnet,
    split_theta,
)
from landmarkjax.ops.geometry import rodrigues, weak_perspective_project
from landmarkjax.ops.rotations import matrix_to_axis_angle
from landmarkjax.ops.tps import normalized_to_pixels, pixels_to_normalized
from landmarkjax.training.method import (
    Method,
    Phase,
    TrainState,
    apply_gradients,
    init_optimizer_states,
    mean_over_axis,
)
from landmarkjax.training.optimizers import make_optimizer
from landmarkjax.training.streams import Streams

__all__ = [
    "EVAL_SOURCES",
    "HMRMethod",
    "NUM_KEYPOINTS",
    "NUM_EVAL_JOINTS",
    "PersonExample",
    "build",
    "pck_normalizer",
    "pose_limit_violation",
]

NUM_KEYPOINTS = 19  # HMR's cocoplus keypoints
NUM_EVAL_JOINTS = 14  # the LSP joints, the first 14 cocoplus keypoints
EVAL_SOURCES = ("synthetic", "h36m")
ENCODERS = ("small", "resnet50")
_HIPS = (2, 3)
_MOCAP_POSE, _MOCAP_BETAS = "mocap_pose", "mocap_betas"
# The mean Theta's root rotation: pi about x turns SMPL's y-up rest body upright in the y-down camera frame.
_UPRIGHT = (math.pi, 0.0, 0.0)


class _PairedFlag:
    """A random-access source whose records gain `has_3d` (float32 1 for the first `num_paired`, else 0)."""

    def __init__(self, source: Any, num_paired: int):
        self.source, self.num_paired = source, int(num_paired)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.source[index], "has_3d": np.float32(int(index) < self.num_paired)}

    def __repr__(self) -> str:
        return f"_PairedFlag({self.source!r}, num_paired={self.num_paired})"


class PersonExample(grain.transforms.Map):
    """Grain transform: a person record -> the arrays HMR trains or evaluates on.

    Keeps image (uint8, converted to float32 by the loader), keypoints_2d float32 [19, 2] (x, y) pixels,
    visibility float32 [19], joints_3d float32 [J, 3] metres, and when present pose float32 [72], betas
    float32 [10], has_3d float32 []. Raises ValueError when keypoints_2d is not [19, 2] (HMR's cocoplus
    keypoints) or visibility not [19].
    """

    _OPTIONAL = ("pose", "betas", "has_3d")

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        keypoints = np.asarray(element["keypoints_2d"], np.float32)
        visibility = np.asarray(element["visibility"])
        if keypoints.shape != (NUM_KEYPOINTS, 2) or visibility.shape != (NUM_KEYPOINTS,):
            raise ValueError(
                f"keypoints_2d must be [{NUM_KEYPOINTS}, 2] (x, y) pixels in cocoplus order and visibility "
                f"[{NUM_KEYPOINTS}]; got {keypoints.shape} and {visibility.shape}"
            )
        out = {
            "image": element["image"],
            "keypoints_2d": keypoints,
            "visibility": visibility.astype(np.float32),
            "joints_3d": np.asarray(element["joints_3d"], np.float32),
        }
        for key in self._OPTIONAL:
            if key in element:
                out[key] = np.asarray(element[key], np.float32)
        return out

    def __repr__(self) -> str:
        return "PersonExample()"


def pck_normalizer(keypoints: np.ndarray) -> np.ndarray:
    """[..., K, 2] true 2D joints (pixels) -> [...] the larger side of their bounding box (pixels)."""
    keypoints = np.asarray(keypoints, np.float64)
    return np.max(keypoints.max(axis=-2) - keypoints.min(axis=-2), axis=-1)


def pose_limit_violation(body_pose: np.ndarray, limits: np.ndarray = BODY_POSE_LIMITS) -> np.ndarray:
    """How far each axis-angle component lies outside the joint limits.

    Args:
      body_pose: [..., 23, 3] axis-angle radians of the body joints (relative to their parents).
      limits: [23, 3, 2] radians, [low, high] per component (default: the synthetic pose sampler's).

    Returns:
      [..., 23, 3] radians: max(low - x, x - high, 0).
    """
    body_pose = np.asarray(body_pose, np.float64)
    low, high = limits[..., 0].astype(np.float64), limits[..., 1].astype(np.float64)
    return np.maximum(np.maximum(low - body_pose, body_pose - high), 0.0)


class HMRMethod(Method):
    """HMR (see the module docstring). Built by `build(config)`."""

    name = "hmr"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        model, hmr, data = config.model, config.hmr, config.data
        if model.pose_representation not in POSE_REPRESENTATIONS:
            raise ValueError(
                f"model.pose_representation must be one of {sorted(POSE_REPRESENTATIONS)}; got "
                f"{model.pose_representation!r}."
            )
        if int(model.num_iterations) != model.num_iterations or model.num_iterations < 1:
            raise ValueError(f"model.num_iterations (IEF) must be an integer >= 1; got {model.num_iterations!r}.")
        if model.encoder not in ENCODERS:
            raise ValueError(f"model.encoder must be one of {ENCODERS}; got {model.encoder!r}.")
        if hmr.adversarial_weight < 0 or hmr.discriminator_weight <= 0:
            raise ValueError(
                "hmr.adversarial_weight must be >= 0 (0 = no prior) and hmr.discriminator_weight > 0; got "
                f"{hmr.adversarial_weight} and {hmr.discriminator_weight}."
            )
        if int(hmr.discriminator_steps) != hmr.discriminator_steps or hmr.discriminator_steps < 1:
            raise ValueError(f"hmr.discriminator_steps must be an integer >= 1; got {hmr.discriminator_steps!r}.")
        if int(hmr.discriminator_start) != hmr.discriminator_start or hmr.discriminator_start < 0:
            raise ValueError(f"hmr.discriminator_start must be an integer >= 0; got {hmr.discriminator_start!r}.")
        if hmr.adversarial_weight > 0 and hmr.discriminator_start >= config.total_steps:
            raise ValueError(
                f"hmr.discriminator_start ({hmr.discriminator_start}) must be below total_steps "
                f"({config.total_steps}) with the prior on, or the prior never starts; set it lower (e.g. "
                "total_steps // 2) or hmr.adversarial_weight=0."
            )
        if not 0.0 <= hmr.paired_3d_fraction <= 1.0:
            raise ValueError(f"hmr.paired_3d_fraction must be in [0, 1]; got {hmr.paired_3d_fraction}.")
        if data.source not in EVAL_SOURCES:
            raise ValueError(f"data.source (the evaluation set) must be one of {EVAL_SOURCES}; got {data.source!r}.")
        if data.source == "h36m" and not data.h36m_dir:
            raise ValueError("data.source='h36m' needs data.h36m_dir (see landmarkjax/data/h36m.py for the layout).")
        self.representation = model.pose_representation
        self.adversarial = hmr.adversarial_weight > 0
        self._smpl = self._load_body_model()
        encoder = small_resnet(model.width) if model.encoder == "small" else resnet50()
        self.model = HMR(
            encoder,
            IEFRegressor(
                num_iterations=int(model.num_iterations),
                hidden=model.hidden,
                dropout_rate=model.dropout,
                pose_representation=self.representation,
                num_joints=self._smpl.num_joints,
                initial_global_orient=_UPRIGHT,
            ),
        )
        self.discriminator = FactorisedDiscriminator(
            joint_width=model.discriminator_joint_width, pose_hidden=model.discriminator_pose_hidden
        )
        self.optimizers = {
            "generator": make_optimizer(config.optimizer, config.total_steps),
            "discriminator": make_optimizer(config.discriminator_optimizer, config.total_steps),
        }
        self._sources: dict[str, Any] = {}
        self._mocap_source()  # a missing or malformed pose file fails here, before any training
        self._eval_source()

    # ---- the body model (a frozen input) ---------------------------------------------------------------
    def _load_body_model(self) -> SMPLModel:
        body = self.config.body
        model = make_synthetic_smpl(int(body.model_seed)) if not body.model_path else load_smpl(body.model_path)
        return jax.tree.map(np.asarray, model)

    def frozen_inputs(self) -> Any:
        """{"smpl": the body model} (arrays; its kinematic tree is static)."""
        return {"smpl": self._smpl}

    # ---- state and phases ------------------------------------------------------------------------------
    def init_state(self, rng: jax.Array) -> TrainState:
        size = self.config.data.image_size
        generator_key, discriminator_key = jax.random.split(rng)
        images = jnp.zeros([1, size, size, 3], jnp.float32)
        rotations = jnp.tile(jnp.eye(3), (1, self._smpl.num_joints - 1, 1, 1))
        params = {
            "generator": self.model.init(generator_key, images)["params"],
            "discriminator": self.discriminator.init(discriminator_key, rotations, jnp.zeros([1, 10]))["params"],
        }
        return TrainState(
            step=jnp.zeros([], jnp.int32), params=params, opt_state=init_optimizer_states(self.optimizers, params)
        )

    def phases(self) -> tuple[Phase, ...]:
        """("encoder",) without the prior; else "encoder" for `hmr.discriminator_start` steps (if > 0), then
        "adversarial"."""
        if not self.adversarial:
            return (Phase("encoder"),)
        start = int(self.config.hmr.discriminator_start)
        return ((Phase("encoder", start),) if start else ()) + (Phase("adversarial"),)

    # ---- the forward pass ------------------------------------------------------------------------------
    def predict_thetas(self, params: Any, images: jax.Array, rng: jax.Array | None = None) -> jax.Array:
        """[num_iterations, B, |Theta|] for images [B, H, W, 3] in [0, 1] (dropout when `rng` is given)."""
        if rng is None:
            return self.model.apply({"params": params}, images)
        return self.model.apply({"params": params}, images, deterministic=False, rngs={"dropout": rng})

    def body(self, smpl: SMPLModel, theta: jax.Array, image_size: int, with_vertices: bool = False) -> dict:
        """The posed body of Theta [B, |Theta|].

        Returns:
          dict: camera [B, 3]; rotations [B, 24, 3, 3]; betas [B, 10]; joints_3d [B, 19, 3] cocoplus
          keypoints in the camera frame (metres, no translation); keypoints_norm [B, 19, 2] projected,
          normalised image units; keypoints_2d [B, 19, 2] (x, y) pixels of an image of side `image_size`;
          keypoint_valid [19] bool (keypoints the model produces); with `with_vertices` vertices [B, V, 3].
        """
        camera, pose, betas = split_theta(theta, self.representation)
        rotations = pose_to_rotation_matrices(pose, self.representation)
        output = smpl_forward(smpl, betas, rotations[:, 1:], rotations[:, 0])
        joints, valid = cocoplus_keypoints(output)
        projected = weak_perspective_project(joints, camera)
        out = {
            "camera": camera,
            "rotations": rotations,
            "betas": betas,
            "joints_3d": joints,
            "keypoints_norm": projected,
            "keypoints_2d": normalized_to_pixels(projected, image_size, image_size),
            "keypoint_valid": valid,
        }
        if with_vertices:
            out["vertices"] = output.vertices
        return out

    # ---- losses ----------------------------------------------------------------------------------------
    def generator_loss(
        self,
        generator_params: Any,
        discriminator_params: Any,
        batch: Mapping[str, jax.Array],
        rng: jax.Array | None,
        smpl: SMPLModel,
        adversarial: bool,
    ) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict[str, jax.Array]]]:
        """(the encoder's objective, (its parts, the predicted bodies' rotations [B, 23, 3, 3] and betas))."""
        hmr = self.config.hmr
        images = batch["image"]
        size = images.shape[1]
        if batch["keypoints_2d"].shape[-2:] != (NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoints_2d must be [B, {NUM_KEYPOINTS}, 2]; got {batch['keypoints_2d'].shape}.")
        theta = self.predict_thetas(generator_params, images, rng)[-1]
        body = self.body(smpl, theta, size)
        visibility = batch["visibility"] * body["keypoint_valid"].astype(batch["visibility"].dtype)
        target = pixels_to_normalized(batch["keypoints_2d"], size, size)
        keypoint_loss = losses.keypoint_2d_l1_loss(body["keypoints_norm"], target, visibility)
        has_3d = batch["has_3d"] * float(bool(hmr.use_3d))
        # The 14 LSP joints, as HMR's 3D loss (its 3D datasets have no face keypoints).
        joints_loss = losses.joints_3d_loss(
            body["joints_3d"][:, :NUM_EVAL_JOINTS], batch["joints_3d"][:, :NUM_EVAL_JOINTS], has_3d, _HIPS
        )
        target_rotations = rodrigues(batch["pose"].reshape(batch["pose"].shape[0], -1, 3))
        smpl_loss = losses.smpl_parameter_loss(
            body["rotations"], target_rotations, body["betas"], batch["betas"], has_3d
        )
        total = hmr.keypoint_weight * keypoint_loss + hmr.joints_3d_weight * joints_loss + hmr.smpl_weight * smpl_loss
        parts = {"keypoints_2d_loss": keypoint_loss, "joints_3d_loss": joints_loss, "smpl_loss": smpl_loss}
        fake = {"rotations": body["rotations"][:, 1:], "betas": body["betas"]}
        if adversarial:
            scores = self.discriminator.apply({"params": discriminator_params}, fake["rotations"], fake["betas"])
            adversarial_loss = losses.lsgan_generator_loss(scores)
            total = total + hmr.adversarial_weight * adversarial_loss
            parts["adversarial_loss"] = adversarial_loss
        return total, (parts, jax.lax.stop_gradient(fake))

    def discriminator_loss(
        self, params: Any, fake: Mapping[str, jax.Array], real_pose: jax.Array, real_betas: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(weighted LSGAN loss, {real_score, fake_score}) with mocap poses [M, 72] and betas [M, 10] real."""
        real_rotations = rodrigues(real_pose.reshape(real_pose.shape[0], -1, 3))[:, 1:]
        real = self.discriminator.apply({"params": params}, real_rotations, real_betas)
        fake_scores = self.discriminator.apply({"params": params}, fake["rotations"], fake["betas"])
        loss = self.config.hmr.discriminator_weight * losses.lsgan_discriminator_loss(real, fake_scores)
        return loss, {"real_score": jnp.mean(real), "fake_score": jnp.mean(fake_scores)}

    def generator_update(
        self, state: TrainState, batch: Mapping[str, jax.Array], rng: jax.Array | None, smpl: SMPLModel,
        adversarial: bool, axis_name: str | None = None,
    ) -> tuple[TrainState, dict[str, jax.Array], dict[str, jax.Array]]:
        """One step of the "generator" optimiser (encoder + regressor) on `generator_loss`; the
        discriminator's parameters are read, never changed. Returns (state, metrics, the predicted bodies'
        rotations and betas with their gradient stopped). The step counter is left alone."""
        grad_fn = jax.value_and_grad(self.generator_loss, has_aux=True)
        (loss, (parts, fake)), grads = grad_fn(
            state.params["generator"], state.params["discriminator"], batch, rng, smpl, adversarial
        )
        grads = mean_over_axis(grads, axis_name)
        state = apply_gradients(state, grads, self.optimizers["generator"], part="generator")
        step_metrics = mean_over_axis({"loss": loss, **parts}, axis_name)
        step_metrics["generator_grad_norm"] = optax.tree.norm(grads)
        return state, step_metrics, fake

    def discriminator_update(
        self, state: TrainState, fake: Mapping[str, jax.Array], real_pose: jax.Array, real_betas: jax.Array,
        axis_name: str | None = None,
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """One step of the "discriminator" optimiser on `discriminator_loss` (mocap poses [M, 72] and betas
        [M, 10] real, `fake` from `generator_update`); the generator's parameters are not changed."""
        d_grad_fn = jax.value_and_grad(self.discriminator_loss, has_aux=True)
        (loss, scores), grads = d_grad_fn(state.params["discriminator"], fake, real_pose, real_betas)
        grads = mean_over_axis(grads, axis_name)
        state = apply_gradients(state, grads, self.optimizers["discriminator"], part="discriminator")
        step_metrics = mean_over_axis(
            {
                "discriminator_loss": loss,
                "discriminator_real_score": scores["real_score"],
                "discriminator_fake_score": scores["fake_score"],
            },
            axis_name,
        )
        step_metrics["discriminator_grad_norm"] = optax.tree.norm(grads)
        return state, step_metrics

    def train_step(
        self,
        state: TrainState,
        batch: Mapping[str, jax.Array],
        rng: jax.Array,
        frozen: Any,
        *,
        phase: str,
        axis_name: str | None = None,
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """`generator_update`, then in the "adversarial" phase `hmr.discriminator_steps` x
        `discriminator_update` (each on its share of the batch's mocap bodies; the logged discriminator
        metrics are their mean)."""
        adversarial = phase == "adversarial"
        new_state, step_metrics, fake = self.generator_update(
            state, batch, rng, frozen["smpl"], adversarial, axis_name
        )
        if adversarial:
            steps = int(self.config.hmr.discriminator_steps)
            real_pose = batch[_MOCAP_POSE].reshape(steps, -1, batch[_MOCAP_POSE].shape[-1])
            real_betas = batch[_MOCAP_BETAS].reshape(steps, -1, batch[_MOCAP_BETAS].shape[-1])
            updates = []
            for index in range(steps):
                new_state, d_metrics = self.discriminator_update(
                    new_state, fake, real_pose[index], real_betas[index], axis_name
                )
                updates.append(d_metrics)
            step_metrics.update(jax.tree.map(lambda *values: jnp.mean(jnp.stack(values)), *updates))
        return new_state.replace(step=state.step + 1), step_metrics

    # ---- data ------------------------------------------------------------------------------------------
    def _memoized(self, key: str, make: Any) -> Any:
        if key not in self._sources:
            self._sources[key] = make()
        return self._sources[key]

    def _train_source(self) -> Any:
        data, hmr = self.config.data, self.config.hmr
        people = SyntheticPeopleSource(
            data.num_train, data.image_size, data.max_occluders, self.config.body.model_seed, data.train_seed
        )
        paired = math.floor(hmr.paired_3d_fraction * len(people) + 0.5) if hmr.use_3d else 0
        return self._memoized("train", lambda: _PairedFlag(MemoizedSource(people), paired))

    def mocap_paths(self) -> list[str]:
        """The AMASS-style files of `data.mocap_path` (a glob or comma-separated list), [] when unset.

        Raises:
          FileNotFoundError: if the pattern matches no file.
        """
        pattern = self.config.data.mocap_path
        if not pattern:
            return []
        paths = []
        for part in str(pattern).split(","):
            found = sorted(glob.glob(part.strip()))
            if not found:
                raise FileNotFoundError(f"data.mocap_path: no AMASS-style .npz file matches {part.strip()!r}")
            paths += found
        return paths

    def _mocap_source(self) -> Any:
        data = self.config.data

        def make():
            paths = self.mocap_paths()
            if paths:
                return AmassPoseSource(paths, stride=data.mocap_stride)
            return MemoizedSource(SyntheticMocapSource(data.num_mocap, seed=data.mocap_seed))

        return self._memoized("mocap", make)

    def _eval_source(self) -> Any:
        data = self.config.data
        if data.source == "h36m":
            cameras = None if data.h36m_cameras is None else tuple(data.h36m_cameras)
            return self._memoized(
                "h36m", lambda: H36mSource(data.h36m_dir, data.image_size, data.h36m_crop_scale, cameras)
            )
        people = SyntheticPeopleSource(
            data.num_test, data.image_size, data.max_occluders, self.config.body.model_seed, data.test_seed
        )
        return self._memoized("test", lambda: MemoizedSource(people))

    def train_loader(self, batch_size: int) -> Streams:
        """Streams "images" (batches of `batch_size` people) and, with the prior, "mocap" (batches of
        `batch_size` x `hmr.discriminator_steps` poses and shapes)."""
        streams = {
            "images": iter(
                make_loader(self._train_source(), batch_size=batch_size, seed=self.config.seed, augment=PersonExample())
            )
        }
        if self.adversarial:
            streams["mocap"] = iter(
                make_loader(
                    self._mocap_source(),
                    batch_size=batch_size * int(self.config.hmr.discriminator_steps),
                    seed=self.config.seed + 1,
                )
            )
        return Streams(**streams)

    def next_batch(self, data: Streams, phase: str) -> dict[str, np.ndarray]:
        """The people batch; in the "adversarial" phase also mocap_pose [M, 72] and mocap_betas [M, 10]."""
        batch = dict(data.next("images"))
        if phase == "adversarial":
            mocap = data.next("mocap")
            batch[_MOCAP_POSE], batch[_MOCAP_BETAS] = mocap["pose"], mocap["betas"]
        return batch

    def eval_loader(self, batch_size: int) -> Iterable[dict[str, np.ndarray]]:
        """One pass over the evaluation people: image, keypoints_2d [B, 19, 2] px, visibility [B, 19],
        joints_3d [B, J, 3] metres (J = 19 synthetic, 14 h36m)."""
        source = self._eval_source()
        return one_pass_loader(source, batch_size=batch_size, seed=self.config.seed, augment=PersonExample())

    # ---- evaluation ------------------------------------------------------------------------------------
    def eval_step(self, state: TrainState, batch: Mapping[str, jax.Array], frozen: Any) -> dict[str, jax.Array]:
        """Per person: predicted and true 14 LSP joints (3D metres, 2D pixels), visibility, the predicted
        body pose as canonical axis-angle [B, 23, 3] and betas [B, 10]."""
        images = batch["image"]
        theta = self.predict_thetas(state.params["generator"], images)[-1]
        body = self.body(frozen["smpl"], theta, images.shape[1])
        return {
            "pred_joints_3d": body["joints_3d"][:, :NUM_EVAL_JOINTS],
            "true_joints_3d": batch["joints_3d"][:, :NUM_EVAL_JOINTS],
            "pred_keypoints_2d": body["keypoints_2d"][:, :NUM_EVAL_JOINTS],
            "true_keypoints_2d": batch["keypoints_2d"][:, :NUM_EVAL_JOINTS],
            "visibility": batch["visibility"][:, :NUM_EVAL_JOINTS],
            "body_pose": matrix_to_axis_angle(body["rotations"][:, 1:]),
            "betas": body["betas"],
        }

    def summarize(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """mpjpe and pa_mpjpe (mm, 14 joints), pck@T, pose_outside_limits, pose_limit_excess_deg,
        mean_abs_betas, num_examples (module docstring); on h36m also protocol1_mpjpe, protocol2_pa_mpjpe."""
        pred = np.asarray(outputs["pred_joints_3d"], np.float64) * 1000.0
        true = np.asarray(outputs["true_joints_3d"], np.float64) * 1000.0
        mpjpe = np.asarray(metrics.mpjpe(pred, true, root_joint=_HIPS))
        pa_mpjpe = np.asarray(metrics.pa_mpjpe(pred, true))
        threshold = float(self.config.eval.pck_threshold)
        true_2d = np.asarray(outputs["true_keypoints_2d"], np.float64)
        distances = np.linalg.norm(np.asarray(outputs["pred_keypoints_2d"], np.float64) - true_2d, axis=-1)
        visible = np.asarray(outputs["visibility"]) > 0
        correct = distances <= threshold * pck_normalizer(true_2d)[:, None]
        violation = pose_limit_violation(outputs["body_pose"])
        summary = {
            "mpjpe": float(np.mean(mpjpe)),
            "pa_mpjpe": float(np.mean(pa_mpjpe)),
            f"pck@{threshold:g}": float(np.sum(correct & visible) / max(int(np.sum(visible)), 1)),
            "pose_outside_limits": float(np.mean(violation > 0)),
            "pose_limit_excess_deg": float(np.degrees(np.mean(violation))),
            "mean_abs_betas": float(np.mean(np.abs(outputs["betas"]))),
            "num_examples": int(len(pred)),
        }
        if self.config.data.source == "h36m":
            summary["protocol1_mpjpe"] = summary["mpjpe"]
            summary["protocol2_pa_mpjpe"] = summary["pa_mpjpe"]
        return summary

    # ---- pictures --------------------------------------------------------------------------------------
    def visualize(self, state: TrainState, batch: Mapping[str, Any], frozen: Any) -> np.ndarray:
        """Top row: the recovered meshes (shaded, 60 % opaque) over up to `eval.num_visualized` images;
        bottom row: the same images with the true (green) and predicted (red) 14 LSP joints, lines joining
        each pair. Rendered at `eval.visualize_scale` x the image size."""
        count = min(int(self.config.eval.num_visualized), len(batch["image"]))
        images = np.asarray(batch["image"][:count], np.float32)
        if images.max() > 1.0:
            images = images / 255.0
        scale = int(self.config.eval.visualize_scale)
        size = images.shape[1]
        smpl = frozen["smpl"]

        @jax.jit
        def predict(params, images):
            theta = self.predict_thetas(params, images)[-1]
            return self.body(smpl, theta, size, with_vertices=True)

        body = jax.tree.map(np.asarray, predict(state.params["generator"], jnp.asarray(images)))
        faces = np.asarray(smpl.faces, np.int64)

        def enlarge(points: np.ndarray) -> np.ndarray:  # pixels of the image -> pixels of the enlarged image
            return (np.asarray(points, np.float64) + 0.5) * scale - 0.5

        big = np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)
        meshes = []
        for index, image in enumerate(big):
            camera = body["camera"][index].astype(np.float64)
            vertices = body["vertices"][index].astype(np.float64)
            # The vertices through the same weak-perspective camera as the keypoints.
            normalised = camera[0] * (vertices[:, :2] + camera[1:])
            points = enlarge((normalised + 1.0) * (size - 1) / 2.0)
            meshes.append(_overlay_mesh(image, points, vertices, faces))
        true = enlarge(np.asarray(batch["keypoints_2d"][:count])[:, :NUM_EVAL_JOINTS])
        pred = enlarge(body["keypoints_2d"][:, :NUM_EVAL_JOINTS])
        joints = [_draw_pairs(image, t, p) for image, t, p in zip(big, true, pred)]
        return contact_sheet(np.concatenate([np.stack(meshes), np.stack(joints)]), ncols=count, scale=1)


def _overlay_mesh(image: np.ndarray, points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The mesh (vertex pixels [V, 2], camera-frame vertices [V, 3] for depth and normals) rasterised over
    `image` (float [S, S, 3]), shaded by each triangle's angle to the viewing direction, 60 % opaque."""
    size = image.shape[0]
    face_index, _ = rasterize_triangles(points, vertices[:, 2], faces, size, size)
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    colour = np.array([0.55, 0.75, 1.0]) * (0.3 + 0.7 * np.abs(normals[:, 2]))[:, None]
    out = image.astype(np.float64).copy()
    covered = face_index >= 0
    out[covered] = 0.4 * out[covered] + 0.6 * colour[face_index[covered]]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _draw_pairs(image: np.ndarray, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The image (float [S, S, 3] in [0, 1]) with true (green) and predicted (red) points and a grey line
    from each true point to its prediction."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for (tx, ty), (px, py) in zip(true, pred):
        draw.line([(tx, ty), (px, py)], fill=(200, 200, 200), width=1)
    for points, colour in ((true, (40, 220, 40)), (pred, (240, 40, 40))):
        for x, y in points:
            draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=colour)
    return np.asarray(canvas, np.float32) / 255.0


def build(config: ml_collections.ConfigDict) -> HMRMethod:
    """The HMR method for `config` (see `landmarkjax/configs/hmr.py`)."""
    return HMRMethod(config)

"""Procedural data with exact ground truth: faces with 68 landmarks (images and clips), multi-object
videos and posed, rendered SMPL bodies with HMR's labels."""

from landmarkjax.data.synthetic.faces import (
    FACE_ATTRIBUTE_NAMES,
    FaceIdentity,
    FaceScene,
    FaceState,
    Occluder,
    face_geometry,
    mirror_face,
    render_face,
    sample_face,
    synthetic_face,
    synthetic_face_clip,
    synthetic_faces,
)
from landmarkjax.data.synthetic.objects import OBJECT_KINDS, synthetic_object_video
from landmarkjax.data.synthetic.people import (
    BODY_POSE_LIMITS,
    render_person,
    synthetic_mocap,
    synthetic_person,
)

__all__ = [
    "BODY_POSE_LIMITS",
    "FACE_ATTRIBUTE_NAMES",
    "FaceIdentity",
    "FaceScene",
    "FaceState",
    "OBJECT_KINDS",
    "Occluder",
    "face_geometry",
    "mirror_face",
    "render_face",
    "render_person",
    "sample_face",
    "synthetic_face",
    "synthetic_face_clip",
    "synthetic_faces",
    "synthetic_mocap",
    "synthetic_object_video",
    "synthetic_person",
]

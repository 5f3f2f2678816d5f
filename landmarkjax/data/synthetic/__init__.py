"""Procedural data with exact ground truth: faces with 68 landmarks (images and clips) and multi-object videos."""

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

__all__ = [
    "FACE_ATTRIBUTE_NAMES",
    "FaceIdentity",
    "FaceScene",
    "FaceState",
    "OBJECT_KINDS",
    "Occluder",
    "face_geometry",
    "mirror_face",
    "render_face",
    "sample_face",
    "synthetic_face",
    "synthetic_face_clip",
    "synthetic_faces",
    "synthetic_object_video",
]

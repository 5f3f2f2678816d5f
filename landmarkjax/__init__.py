"""landmarkjax: learning landmarks and keypoints with little or no labelling, in JAX/Flax."""

__version__ = "0.1.0"

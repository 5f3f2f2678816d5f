"""TFDS builders (array_record, no TensorFlow) for synthetic and real landmark and video datasets.

Importing this package registers the builders with TFDS, so `tfds.builder('face300w', ...)` and
`tfds.data_source(...)` find them. Build with `build_dataset(name, data_dir=..., manual_dir=...)` and read
with `landmarkjax.data.tfds_source.TfdsSource`.
"""

from landmarkjax.data.builders.build import build_dataset
from landmarkjax.data.builders.celeba_mafl import CelebaMafl
from landmarkjax.data.builders.davis2017 import Davis2017
from landmarkjax.data.builders.face300w import Face300w
from landmarkjax.data.builders.synthetic_faces import SyntheticFaces, SyntheticFacesConfig
from landmarkjax.data.builders.synthetic_objects import SyntheticObjects, SyntheticObjectsConfig
from landmarkjax.data.builders.synthetic_people import SyntheticPeople, SyntheticPeopleConfig

__all__ = [
    "CelebaMafl",
    "Davis2017",
    "Face300w",
    "SyntheticFaces",
    "SyntheticFacesConfig",
    "SyntheticObjects",
    "SyntheticObjectsConfig",
    "SyntheticPeople",
    "SyntheticPeopleConfig",
    "build_dataset",
]

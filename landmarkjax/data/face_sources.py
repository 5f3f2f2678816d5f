"""Face-landmark data for the face methods: procedural faces or a built TFDS dataset, chosen by the config.

`config.data.source` (see `landmarkjax/configs/supervised.py`) names the data:

| source | landmarks | train split | evaluation split | extra evaluation splits |
| --- | --- | --- | --- | --- |
| `synthetic` (default) | 68 (iBUG order) | `train` (`num_train` faces) | `test` (`num_test` faces) | none |
| `synthetic_faces` | 68 | `train` | `test` | none |
| `face300w` | 68 | `train` | `full` | `common`, `challenging` |
| `celeba_mafl` | 5 (eyes, nose, mouth corners) | `train` | `test` | none |

Every source except `synthetic` is a TFDS dataset built by `landmarkjax.data.builders.build_dataset` into
`config.data.tfds_data_dir`; `config.data.eval_split` / `config.data.extra_eval_splits` left at None take
the table's defaults. The synthetic faces also have a `validation` split (`data.num_validation` faces drawn
from `data.validation_seed`, never training, test or SBR clip faces) for choosing weights and lengths without
touching the test faces: `--config.data.eval_split=validation` evaluates (and ranks checkpoints) on it, and
`--config.data.extra_eval_splits='("test",)'` reports the test faces alongside. `data.train_coverage="narrow"`
restricts the synthetic training faces to near-frontal, unoccluded, sharp, closed-mouth ones (a coverage gap:
`landmarkjax.data.synthetic.faces.FACE_COVERAGES`); the other splits keep the full distribution. Nothing is
downloaded: an unbuilt dataset is a `FileNotFoundError` naming the command that builds it.

`face_source(data_config, split)` returns a Grain random-access source of face elements: `image` uint8
[H, W, 3] RGB (any size), `landmarks` float32 [K, 2] (x, y) pixels, `visibility` bool [K], `face_box`
float32 [4] (x0, y0, x1, y1; for the real datasets the tight box around the landmarks) and, where the
dataset has them, `attributes` float32 [A]. Text fields of the records (file names) are left out, so
every field batches into a numeric array.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections
import numpy as np

from landmarkjax.data.sources import SyntheticFaceSource
from landmarkjax.data.synthetic import FACE_ATTRIBUTE_NAMES
from landmarkjax.data.tfds_source import TfdsSource
from landmarkjax.face_layout import CELEBA_ATTRIBUTE_NAMES

__all__ = [
    "FACE_DATASETS",
    "FACE_FIELDS",
    "SYNTHETIC",
    "FaceDataset",
    "FaceFields",
    "build_command",
    "eval_split",
    "extra_eval_splits",
    "face_dataset",
    "face_attribute_names",
    "face_source",
    "num_face_landmarks",
    "source_name",
]

#: The source name of the procedural faces generated on the fly (no TFDS dataset).
SYNTHETIC = "synthetic"

#: The fields of a face element that the face methods use; text fields and empty arrays are dropped.
FACE_FIELDS = ("image", "landmarks", "visibility", "face_box", "attributes")


@dataclasses.dataclass(frozen=True)
class FaceDataset:
    """What the face methods need to know about one face dataset.

    Attributes:
      num_landmarks: K, the points per face.
      eval_split: the split evaluated by default (its metrics get the plain names).
      extra_eval_splits: splits also evaluated by default (their metrics get the split name as a prefix).
      manual_dir: what `build_dataset`'s manual_dir must hold (for the build command in error messages);
        None for a dataset built without one.
      attribute_names: the names of the elements' `attributes` [A], in order; () for a dataset without
        attributes.
    """

    num_landmarks: int
    eval_split: str
    extra_eval_splits: tuple[str, ...] = ()
    manual_dir: str | None = None
    attribute_names: tuple[str, ...] = ()


FACE_DATASETS: dict[str, FaceDataset] = {
    SYNTHETIC: FaceDataset(68, "test", attribute_names=FACE_ATTRIBUTE_NAMES),
    "synthetic_faces": FaceDataset(68, "test", attribute_names=FACE_ATTRIBUTE_NAMES),
    "face300w": FaceDataset(68, "full", ("common", "challenging"), manual_dir="/path/to/300W"),
    "celeba_mafl": FaceDataset(
        5, "test", manual_dir="/path/to/celeba", attribute_names=CELEBA_ATTRIBUTE_NAMES
    ),
}


def source_name(data: ml_collections.ConfigDict) -> str:
    """`data.source`; 'synthetic' for a config written before the field existed."""
    return data.get("source") or SYNTHETIC


def face_dataset(name: str) -> FaceDataset:
    """The `FACE_DATASETS` entry of `name`, or a ValueError listing the known sources."""
    if name not in FACE_DATASETS:
        raise ValueError(f"config.data.source must be one of {sorted(FACE_DATASETS)}; got {name!r}.")
    return FACE_DATASETS[name]


def num_face_landmarks(data: ml_collections.ConfigDict) -> int:
    """K, the number of landmarks per face that `data.source` provides (68 or 5)."""
    return face_dataset(source_name(data)).num_landmarks


def face_attribute_names(data: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The names of the `attributes` [A] that `data.source` provides, in order; () if it has none."""
    return face_dataset(source_name(data)).attribute_names


def eval_split(data: ml_collections.ConfigDict) -> str:
    """`data.eval_split`, or the dataset's default evaluation split when it is None."""
    split = data.get("eval_split")
    return face_dataset(source_name(data)).eval_split if split is None else split


def extra_eval_splits(data: ml_collections.ConfigDict) -> tuple[str, ...]:
    """`data.extra_eval_splits`, or the dataset's default extra splits when it is None."""
    splits = data.get("extra_eval_splits")
    return face_dataset(source_name(data)).extra_eval_splits if splits is None else tuple(splits)


def build_command(name: str, data_dir: str | os.PathLike | None, config: str | None = None) -> str:
    """The shell command that builds dataset `name` into `data_dir` (placeholders where unknown)."""
    spec = face_dataset(name)
    arguments = [repr(name), f"data_dir={os.fspath(data_dir or 'DIR')!r}"]
    if spec.manual_dir is not None:
        arguments.append(f"manual_dir={spec.manual_dir!r}")
    if config is not None:
        arguments.append(f"config={config!r}")
    return (
        'python -c "from landmarkjax.data.builders import build_dataset; '
        f'build_dataset({", ".join(arguments)})"'
    )


class FaceFields:
    """A face source restricted to `FACE_FIELDS` (text fields and empty arrays, such as 300-W's [0]
    attributes, are dropped), so its elements batch into numeric arrays for the model.

    Args:
      source: a random-access source of face elements (e.g. a `TfdsSource`).
    """

    def __init__(self, source: Any):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        element = self.source[index]
        return {
            key: element[key] for key in FACE_FIELDS if key in element and np.asarray(element[key]).size
        }

    def __repr__(self) -> str:
        return f"FaceFields({self.source!r})"


def face_source(data: ml_collections.ConfigDict, split: str) -> Any:
    """The face elements of `split` of the dataset `data.source` (see the module docstring).

    Args:
      data: a face config's `data` section (`source`, `tfds_data_dir`, `tfds_config`; for `synthetic` also
        `num_train` / `train_seed`, `num_test` / `test_seed` and `source_size`).
      split: 'train', the evaluation split, or (TFDS) any split or split expression of the dataset.

    Returns:
      a `SyntheticFaceSource` (split 'train', 'test' or 'validation'), or a `FaceFields` over a `TfdsSource`.

    Raises:
      ValueError: unknown source, a synthetic split other than 'train' / 'test' / 'validation', or a TFDS source without
        `data.tfds_data_dir`.
      FileNotFoundError: the dataset is not built in `data.tfds_data_dir`; the message gives the command
        that builds it.
    """
    name = source_name(data)
    face_dataset(name)
    if name == SYNTHETIC:
        if split == "train":
            coverage = data.get("train_coverage") or "full"
            return SyntheticFaceSource(data.num_train, size=data.source_size, seed=data.train_seed, coverage=coverage)
        if split == "test":
            return SyntheticFaceSource(data.num_test, size=data.source_size, seed=data.test_seed)
        if split == "validation":
            count, seed = data.get("num_validation"), data.get("validation_seed")
            if count is None or seed is None:
                raise ValueError(
                    "the synthetic 'validation' split needs config.data.num_validation and config.data.validation_seed."
                )
            return SyntheticFaceSource(count, size=data.source_size, seed=seed)
        raise ValueError(
            f"the synthetic faces have the splits 'train', 'test' and 'validation'; got split {split!r}."
        )
    data_dir, config = data.get("tfds_data_dir"), data.get("tfds_config")
    if not data_dir:
        raise ValueError(
            f"config.data.source={name!r} reads a built TFDS dataset: set config.data.tfds_data_dir to the "
            f"folder it was built into, e.g. with {build_command(name, None, config)}"
        )
    try:
        source = TfdsSource(name, split=split, data_dir=data_dir, config=config)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"config.data.source={name!r}: the dataset is not built in config.data.tfds_data_dir="
            f"{os.fspath(data_dir)!r}. Build it with: {build_command(name, data_dir, config)}"
        ) from None
    return FaceFields(source)

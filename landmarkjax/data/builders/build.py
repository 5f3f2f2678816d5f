"""Building a landmarkjax TFDS dataset into a data folder, without TensorFlow."""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

__all__ = ["build_dataset"]


def build_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike,
    manual_dir: str | os.PathLike | None = None,
    config: str | tfds.core.BuilderConfig | None = None,
    progress: bool = False,
) -> tfds.core.DatasetBuilder:
    """Builds (or finds already built) a landmarkjax dataset as array_record files.

    Args:
      name: 'synthetic_faces', 'synthetic_objects', 'face300w', 'celeba_mafl' or 'davis2017'.
      data_dir: the TFDS data folder to write into; the dataset lands in
        `data_dir/name/config/version/`, written to a temporary folder first and renamed at the end, so a
        failed build leaves no version folder behind.
      manual_dir: the folder holding the real dataset's files (real datasets only; see each builder's
        MANUAL_DOWNLOAD_INSTRUCTIONS). Defaults to `data_dir/downloads/manual`.
      config: a config name, or a `BuilderConfig` instance (e.g. a small synthetic config).
      progress: show TFDS's progress bars while building. TFDS's process-wide progress-bar setting
        (`tfds.display_progress_bar`) is set for the build and is on again afterwards, TFDS's default.

    Returns:
      the prepared builder: `builder.as_data_source(split)` reads it, or use
      `landmarkjax.data.tfds_source.TfdsSource(name, split=..., data_dir=..., config=...)`.

    Raises:
      FileNotFoundError: naming the file or folder that was expected, when manual_dir is incomplete.
      ValueError: naming the file, when one is malformed.
    """
    import landmarkjax.data.builders  # noqa: F401  (registers the builders with TFDS)

    builder = tfds.builder(name, data_dir=os.fspath(data_dir), config=config, file_format="array_record")
    download_config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir)
    )
    tfds.display_progress_bar(progress)
    try:
        builder.download_and_prepare(download_config=download_config)
    finally:
        # TFDS's public API can set this process-wide setting but not read it: back to TFDS's default.
        tfds.enable_progress_bar()
    return builder

"""Tiny fixtures in the official file layouts of the real datasets, shared by the test modules.

`write_300w` writes the 300-W / iBUG release layout (images with .pts files beside them), `write_celeba`
the CelebA aligned images, annotation tables and MAFL lists, and `write_davis` / `write_davis_videos` the
DAVIS-2017 480p layout (JPEG frames, palette PNG annotations, ImageSets/2017 lists). Imported as
`from _fixtures import ...` (pytest puts the tests folder on sys.path).
"""

import os

import numpy as np
from PIL import Image

FACE300W_FOLDERS = {
    "lfpw/trainset": ".png",
    "lfpw/testset": ".png",
    "helen/trainset": ".jpg",
    "helen/testset": ".jpg",
    "afw": ".jpg",
    "ibug": ".jpg",
}


def random_image(rng, height, width):
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def pts_text(points_1based):
    lines = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points_1based)
    return f"version: 1\nn_points:  {len(points_1based)}\n{{\n{lines}\n}}\n"


def write_300w(root, rng, per_folder=2):
    """A 300-W folder: images with .pts files (1-based, 3 decimals like the release). Returns
    {relative image path: 0-based landmarks}."""
    truth = {}
    for folder, extension in FACE300W_FOLDERS.items():
        os.makedirs(root / folder)
        for i in range(per_folder):
            name = f"image_{i:04d}"
            image = random_image(rng, 24 + i, 32)
            if extension == ".png":
                Image.fromarray(image).save(root / folder / (name + extension))
            else:  # a greyscale JPEG too, as some HELEN/LFPW images are
                Image.fromarray(image[..., 0] if i == 1 else image).save(root / folder / (name + extension))
            points = np.round(rng.uniform(1, 30, size=(68, 2)), 3)
            (root / folder / (name + ".pts")).write_text(pts_text(points))
            truth[f"{folder}/{name}{extension}"] = (points - 1).astype(np.float32)
    return truth


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
)


def write_celeba(root, rng, num_images=6, anno_subfolders=False):
    """CelebA aligned images + the two annotation tables + MAFL lists (test = the last two images)."""
    names = [f"{i:06d}.jpg" for i in range(1, num_images + 1)]
    image_dir = root / ("Img/img_align_celeba" if anno_subfolders else "img_align_celeba")
    anno_dir = root / "Anno" if anno_subfolders else root
    mafl_dir = root / "MAFL" if anno_subfolders else root
    for directory in (image_dir, anno_dir, mafl_dir):
        os.makedirs(directory, exist_ok=True)
    landmarks = rng.integers(60, 160, size=(num_images, 10))
    attributes = rng.choice([-1, 1], size=(num_images, 40))
    for name in names:
        Image.fromarray(random_image(rng, 218, 178)).save(image_dir / name, quality=90)
    rows = [f"{name} " + " ".join(f"{v:4d}" for v in row) for name, row in zip(names, landmarks)]
    header = (
        "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    )
    (anno_dir / "list_landmarks_align_celeba.txt").write_text(
        f"{num_images}\n{header}\n" + "\n".join(rows) + "\n"
    )
    rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attributes)]
    (anno_dir / "list_attr_celeba.txt").write_text(f"{num_images}\n{CELEBA_ATTRIBUTES}\n" + "\n".join(rows) + "\n")
    (mafl_dir / "training.txt").write_text("\n".join(names[:3]) + "\n")
    (mafl_dir / "testing.txt").write_text("\n".join(names[-2:]) + "\n")
    return names, landmarks.reshape(-1, 5, 2).astype(np.float32), attributes


def tiny_detector_config(config, *, total_steps, batch_size, log_every=1, checkpoint_every=0):
    """`config` (a face-detector config) shrunk to run in seconds: 32 px faces, an 8-wide 2-stage CPM,
    no warm-up, evaluation only at the end. Returns the same ConfigDict."""
    config.total_steps = total_steps
    config.batch_size = batch_size
    config.eval_batch_size = batch_size
    config.log_every = log_every
    config.eval_every = 0
    config.checkpoint_every = checkpoint_every
    config.data.image_size = 32
    config.model.backbone_widths = (8, 8, 8)
    config.model.stage_width = 8
    config.model.num_stages = 2
    config.model.stage_depth = 1
    config.eval.num_visualized = 4
    config.optimizer.warmup_steps = 0
    return config


def write_davis_videos(root, videos):
    """The DAVIS-2017 trainval layout: JPEGImages/480p/<seq>/00000.jpg, palette-PNG (DAVIS palette)
    Annotations/480p/<seq>/00000.png, ImageSets/2017/<split>.txt.

    Args:
      root: the DAVIS folder to write (a pathlib.Path).
      videos: {split: {sequence: (frames uint8 [T, H, W, 3], ids uint8 [T, H, W])}}; sequences may differ
        in length and size.

    Returns:
      {sequence: (JPEG paths, ids)}.
    """
    from landmarkjax.data.davis import DAVIS_PALETTE

    truth = {}
    os.makedirs(root / "ImageSets/2017", exist_ok=True)
    for split, sequences in videos.items():
        (root / f"ImageSets/2017/{split}.txt").write_text("\n".join(sequences) + "\n")
        for name, (frames, ids) in sequences.items():
            os.makedirs(root / "JPEGImages/480p" / name)
            os.makedirs(root / "Annotations/480p" / name)
            paths = []
            for t, (frame, frame_ids) in enumerate(zip(frames, ids)):
                path = root / "JPEGImages/480p" / name / f"{t:05d}.jpg"
                Image.fromarray(frame).save(path, quality=95)
                mask = Image.fromarray(np.asarray(frame_ids, np.uint8))
                mask.putpalette(DAVIS_PALETTE.reshape(-1).tolist())
                mask.save(root / "Annotations/480p" / name / f"{t:05d}.png")
                paths.append(path)
            truth[name] = (paths, np.asarray(ids, np.uint8))
    return truth


def write_davis(root, rng, sequences, num_frames=3, size=(20, 28)):
    """`write_davis_videos` of random frames and random ids in 0..2 ({split: [sequence names]})."""
    videos = {
        split: {
            name: (
                np.stack([random_image(rng, *size) for _ in range(num_frames)]),
                rng.integers(0, 3, size=(num_frames, *size)).astype(np.uint8),
            )
            for name in names
        }
        for split, names in sequences.items()
    }
    return write_davis_videos(root, videos)

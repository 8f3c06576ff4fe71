"""Where dlib cuts its face chip inside an mfr-aligned crop, and dlib's net as an mfr model.

1. For every ``--every``-th full face of an aligned LFW folder (training identities), runs what
   dlib's descriptor runs on an aligned crop (5-point predictor on the whole-crop rectangle,
   ``get_face_chip_details(size=150, padding=0.25)``) and prints the mean and spread of the chip
   box (centre, side, angle) in 112-pixel units: ``mfr.nets.dlib_resnet.CHIP_BOX_112``.
2. With ``--checkpoint PATH``, writes dlib's weights as an untrained ``dlib-resnet`` mfr
   checkpoint (the fixed box instead of dlib's per-face landmarks), for ``mfr embed``/``eval``.

    .venv/bin/python benchmarks/dlib_chip_box.py runs/data/lfw-top300-max8-112 \
        --checkpoint runs/distill/dlib-resnet-untrained.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def chip_boxes(folder: Path, every: int) -> np.ndarray:
    """(N, 4) chip centre x, centre y, side (pixels scaled to a 112 crop) and angle (rad)."""
    import dlib

    from mfr.data.images import read_image
    from mfr.embedders.dlib import DlibEmbedder

    embedder = DlibEmbedder()
    rows = []
    for path in sorted(folder.glob("*/*.png"))[::every]:
        image = read_image(path)
        scale = 112.0 / image.shape[1]
        rectangle, _ = embedder.face_rectangle(image, detect=False)
        chip = dlib.get_face_chip_details(embedder.predictor(image, rectangle), 150, 0.25)
        box = chip.rect
        centre = ((box.left() + box.right()) / 2, (box.top() + box.bottom()) / 2)
        rows.append([centre[0] * scale, centre[1] * scale, box.width() * scale, chip.angle])
    return np.array(rows)


def save_untrained(path: Path) -> None:
    from mfr.embedders.checkpoint import dlib_resnet_model
    from mfr.train.checkpoint import save_checkpoint

    model, meta = dlib_resnet_model()
    save_checkpoint(path, **meta, model=model.state_dict(), config={"backbone": meta["backbone"],
                    "init": "dlib"})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="aligned LFW folder (<id>/<image>.png)")
    parser.add_argument("--every", type=int, default=8)
    parser.add_argument("--checkpoint", type=Path)
    args = parser.parse_args()
    boxes = chip_boxes(args.folder, args.every)
    mean, std = boxes.mean(0), boxes.std(0)
    print(f"{len(boxes)} crops: centre ({mean[0]:.2f}, {mean[1]:.2f}) ± ({std[0]:.2f}, "
          f"{std[1]:.2f}) px, side {mean[2]:.2f} ± {std[2]:.2f} px, angle {mean[3]:.3f} ± "
          f"{std[3]:.3f} rad (112-px crop)")  # fmt: skip
    if args.checkpoint:
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        save_untrained(args.checkpoint)
        print(f"wrote {args.checkpoint}")


if __name__ == "__main__":
    main()

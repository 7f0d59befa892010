"""The full-resolution pose plate: the photo's own texture (`inference.plate.fill_plate`) against the smooth
push-pull fill (`models.composite.fill_background`). Milliseconds per plate (once per set of references) on
real photos with mediapipe's person mask, at the photo's size and upscaled to 1024 px; `--out` writes
photo | smooth | patches as PNG. Prints JSON. `--photo NAME=PATH` adds a photo (OpenCV's `messi5.jpg`, a
footballer on grass before a stadium crowd, is the hard case: `apt-get download opencv-doc`).

    OMP_NUM_THREADS=1 python benchmarks/plate.py --out bench-out [--photo messi=messi5.jpg]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def photos(extra: list[str]) -> dict[str, np.ndarray]:
    import skimage.data

    from fewshotv2v.video import read_image

    camera = skimage.data.camera()
    found = {"astronaut": skimage.data.astronaut(), "cameraman": np.repeat(camera[..., None], 3, axis=2)}
    for item in extra:
        name, _, path = item.partition("=")
        found[name] = read_image(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--photo", action="append", default=[], metavar="NAME=PATH", help="another photo")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from fewshotv2v.inference.compose import image_to_tensor, tensor_to_image
    from fewshotv2v.inference.plate import fill_plate
    from fewshotv2v.models.composite import fill_background
    from fewshotv2v.semantics.backends import get_backend
    from fewshotv2v.video import resize_image, write_image

    detector = get_backend("mediapipe", static_image_mode=True)
    report = {"threads": args.threads, "photos": {}}
    for name, photo in photos(args.photo).items():
        mask = detector.detect(photo)[0].mask
        for side in (max(photo.shape[:2]), 1024):
            h, w = photo.shape[:2]
            k = side / max(h, w)
            img = resize_image(photo, round(w * k), round(h * k)) if k != 1 else photo
            m = torch.from_numpy(mask)[None, None].float()
            m = torch.nn.functional.interpolate(m, size=img.shape[:2], mode="bilinear", align_corners=False)
            image = image_to_tensor(img)[None]
            dilate = max(2, round(0.01 * side))
            times = {"smooth": [], "patches": []}
            for _ in range(args.repeats):  # interleaved: the machine is shared
                t0 = time.perf_counter()
                smooth = fill_background(image, m, dilate=dilate)
                times["smooth"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                patches = fill_plate(image, m, dilate=dilate)
                times["patches"].append(time.perf_counter() - t0)
            hole = float((torch.nn.functional.max_pool2d(m, 2 * dilate + 1, 1, dilate) > 0.5).float().mean())
            report["photos"][f"{name}_{side}"] = {
                "size": list(img.shape[:2]),
                "hole_fraction": round(hole, 3),
                "ms": {key: round(1000 * float(np.median(v)), 1) for key, v in times.items()},
            }
            if args.out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                row = np.concatenate([img, tensor_to_image(smooth), tensor_to_image(patches)], axis=1)
                write_image(args.out / f"plate_{name}_{side}.png", row)
    detector.close()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

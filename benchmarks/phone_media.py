"""What a phone's photos and videos cost to read, printed as JSON (CPU; milliseconds unless said).

A phone records 4K, HDR (10-bit HEVC, BT.2020, HLG) and photographs in Display P3. This times, on the
skimage astronaut scaled up, interleaved `--repeats` times (the median is printed):

- `drive_read_ms_*`: one frame of a 4K driving video read at full size against at `DRIVE_MAX_SIZE`
  (what `fsv2v synth` reads), for SDR H.264 and HDR HLG HEVC;
- `synth_s_*`: `Pipeline.synthesize` (`keypoint-warp-face`, the astronaut, `--max-frames 8`) driven by each
  4K clip, with the driving frames read at full size (`DRIVE_MAX_SIZE` set to None here) and capped;
- `hdr_to_sdr_ms_1080p`: the HLG tone mapping alone (`video.hdr`), one 1080p frame;
- `reference_pick_s_*`: picking one reference frame from the 4K HLG clip (`pick_reference_frames`, its
  three candidates detected) converting every frame up to the last candidate at full size, against
  converting only the candidates at the output size (`only=`, `max_size=1024`);
- `icc_to_srgb_s_12mp`: a 12 MP Display P3 photo converted to sRGB (`video.icc`).

    python benchmarks/phone_media.py --threads 1 --frames 24 --out /tmp/phone-media

The clips are written under --out (libx265 for HEVC: a minute or so the first time, reused after).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the HDR and ICC test writers


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=24, help="frames in each 4K clip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out/phone-media"))
    args = parser.parse_args()

    import skimage.data
    import torch

    torch.set_num_threads(args.threads)
    from fewshotv2v import Pipeline
    from fewshotv2v.inference import driving
    from fewshotv2v.inference.driving import DRIVE_MAX_SIZE
    from fewshotv2v.inference.references import largest, pick_reference_frames
    from fewshotv2v.semantics.backends.mediapipe_backend import MediaPipeBackend
    from fewshotv2v.video import read_frames, resize_image, write_test_video
    from fewshotv2v.video.hdr import HLG, hdr_to_sdr
    from fewshotv2v.video.icc import to_srgb
    from hdr_files import write_hdr_video
    from icc_files import matrix_profile

    args.out.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.astronaut()
    uhd = resize_image(photo, 3840, 2160)
    sdr = args.out / "4k_sdr.mp4"
    if not sdr.exists():
        write_test_video(sdr, iter([uhd] * args.frames), fps=30, tone_hz=0)
    quick = {"fps": 30, "x265": "crf=22:preset=ultrafast"}
    hlg = args.out / "4k_hlg.mov"
    if not hlg.exists():
        write_hdr_video(hlg, uhd, HLG, frames=args.frames, **quick)
    fhd = args.out / "1080p_hlg.mov"
    if not fhd.exists():
        write_hdr_video(fhd, resize_image(photo, 1920, 1080), HLG, frames=1, **quick)

    import av

    with av.open(str(fhd)) as f:
        hlg_frame = next(f.decode(video=0))
    backend = MediaPipeBackend(static_image_mode=True)

    def detect(image):
        return largest(backend.detect(image))

    def pick_all_converted():  # before `only=`: every frame up to the last candidate, at full size
        wanted = {int((c + 0.5) * args.frames / 3) for c in range(3)}  # pick_reference_frames' k = 1 slots
        for frame in read_frames(hlg):
            if frame.index in wanted:
                detect(frame.image)
            if frame.index >= max(wanted):
                break

    p3 = np.random.default_rng(0).integers(0, 256, (3024, 4032, 3), dtype=np.uint8)
    pipe = Pipeline.from_pretrained("keypoint-warp-face", device="cpu")

    def synth(path, cap):
        driving.DRIVE_MAX_SIZE = cap
        try:
            out = args.out / "out.mp4"
            pipe.synthesize(ref=[photo], drive=path, output=out, max_frames=8, overwrite=True)
        finally:
            driving.DRIVE_MAX_SIZE = DRIVE_MAX_SIZE

    runs: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so a busy neighbour slows A and B alike
        for name, path in (("sdr", sdr), ("hlg", hlg)):
            for label, size in (("full", None), ("capped", DRIVE_MAX_SIZE)):
                dt = _timed(lambda p=path, s=size: [0 for _ in read_frames(p, max_size=s)])
                runs.setdefault(f"drive_read_ms_{name}_{label}", []).append(1000 * dt / args.frames)
                dt = _timed(lambda p=path, s=size: synth(p, s))
                runs.setdefault(f"synth_s_{name}_{label}", []).append(dt)
        runs.setdefault("hdr_to_sdr_ms_1080p", []).append(1000 * _timed(lambda: hdr_to_sdr(hlg_frame, HLG)))
        runs.setdefault("reference_pick_s_all_frames_full_size", []).append(_timed(pick_all_converted))
        runs.setdefault("reference_pick_s_candidates_only", []).append(
            _timed(lambda: pick_reference_frames(hlg, 1, detect, "pose", max_size=1024))
        )
        runs.setdefault("icc_to_srgb_s_12mp", []).append(_timed(lambda: to_srgb(p3, matrix_profile())))
    backend.close()
    result = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    result.update(threads=args.threads, frames=args.frames, repeats=args.repeats)
    result["drive_max_size"] = DRIVE_MAX_SIZE
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

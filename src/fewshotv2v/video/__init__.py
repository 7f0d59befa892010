"""Video and image I/O with PyAV: streaming reader, streaming H.264 writer with audio passthrough.

Few-shot vid2vid (Wang et al., 2019) turns a *driving video* into a synthesized video frame by frame, so
every stage streams: `read_frames` is a generator and `VideoWriter` encodes each frame as it arrives; a whole
video is never held in memory. Only PyAV is used (no ffmpeg subprocess, no OpenCV).

numpy frames are `uint8 (H, W, 3)` RGB everywhere (docs/architecture.md).
"""

from fewshotv2v.video.images import (
    encode_image,
    fit_size,
    is_image_file,
    list_frame_files,
    read_image,
    resize_image,
    rotate_image,
    write_image,
)
from fewshotv2v.video.reader import VideoReader, probe, read_frames
from fewshotv2v.video.types import DEFAULT_FOLDER_FPS, IMAGE_SUFFIXES, VIDEO_SUFFIXES, Frame, VideoInfo
from fewshotv2v.video.writer import VideoWriter, _Tone, write_test_video

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "Frame",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "_Tone",
    "encode_image",
    "fit_size",
    "is_image_file",
    "list_frame_files",
    "probe",
    "read_frames",
    "read_image",
    "resize_image",
    "rotate_image",
    "write_image",
    "write_test_video",
]

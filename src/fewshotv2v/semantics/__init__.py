"""Semantic inputs of few-shot vid2vid (SPEC §1): canonical whole-body keypoints, their rendering into label
maps (skeleton, face edges, one-hot street labels), person / face crops, temporal smoothing, person
tracking, and the keypoint detectors (``backends``: mediapipe, DWPose).

Submodules are imported explicitly (``from fewshotv2v.semantics import crops``); nothing heavy is imported
here.
"""

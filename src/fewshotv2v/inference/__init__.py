"""Inference helpers behind `fewshotv2v.pipeline.Pipeline` (few-shot vid2vid synthesis, SPEC §5):
reference preparation, driving keypoints, test-time finetuning and the side-by-side compositor."""

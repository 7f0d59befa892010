"""Datasets: the folder layout (`layout`), preprocessing of videos into it (`preprocess`), synthetic people
(`synthetic`) and the training dataset (`dataset`). Submodules are imported on use (no torch here)."""

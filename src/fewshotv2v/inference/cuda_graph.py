"""The steady-state synthesis frame as a CUDA graph (issue 12's GPU fast path; UNMEASURED so far).

At batch 1 the pose generator is launch-bound on a GPU: hundreds of small kernels, each launched from
Python (10.2 ms per frame on an H100 with `torch.compile`, far above what its arithmetic needs). A CUDA
graph records the kernels of one frame once and replays them with a single launch. That needs the frame to
be static: K = 1 (the reference encodings and E_P's weights are cached in `ReferenceState` and do not
change), the previous frame given (frame 0 takes another path), fixed shapes and no host syncs, which holds
for `Generator.forward` in that case.

`GraphedFrame(generator, state)` is called like the pipeline's model step and returns the frame
`(1, 3, H, W)`. It replays the graph when it can, and runs eagerly otherwise: on CPU / MPS, with K > 1, on
frame 0, or after a capture failure (a warning says why). Inputs are copied into static buffers; the output
is a static buffer too, overwritten by the next call (the pipeline copies it before: `prev_image` is fed
back through the static input, and the uint8 conversion reads it before the next frame).

Not measured: no GPU was lent when it was written. Check with the `gpu`-marked test in
`tests/test_cuda_graph.py` (graph == eager) and time it before wiring it into `Pipeline`.
"""

from __future__ import annotations

import contextlib
import warnings

WARMUP_FRAMES = 3  # eager runs on a side stream before capture (cuDNN autotuning, allocator warm-up)


class GraphedFrame:
    """`__call__(label (1, C, H, W), prev_image (1, 3, H, W) | None, prev_label | None) -> image`."""

    def __init__(self, generator, state, *, autocast=contextlib.nullcontext):
        import torch

        self.generator, self.state, self.autocast = generator, state, autocast
        device = next(generator.parameters()).device
        self.enabled = device.type == "cuda" and state.num_refs == 1 and torch.cuda.is_available()
        self.graph = None
        self._static: dict[str, torch.Tensor] = {}
        self._out = None

    def eager(self, label, prev_image=None, prev_label=None):
        import torch

        with torch.inference_mode(), self.autocast():
            return self.generator(label, self.state, prev_image, prev_label).image

    def __call__(self, label, prev_image=None, prev_label=None):
        if not self.enabled or prev_image is None:
            return self.eager(label, prev_image, prev_label)
        if self.graph is None:
            self._capture(label, prev_image, prev_label)
            if self.graph is None:  # capture failed: eager from now on
                return self.eager(label, prev_image, prev_label)
        s = self._static
        s["label"].copy_(label)
        s["prev_image"].copy_(prev_image)
        s["prev_label"].copy_(prev_label)
        self.graph.replay()
        return self._out

    def _capture(self, label, prev_image, prev_label) -> None:
        import torch

        s = self._static
        s["label"], s["prev_image"], s["prev_label"] = label.clone(), prev_image.clone(), prev_label.clone()
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the graph, as the CUDA-graph docs require
                for _ in range(WARMUP_FRAMES):
                    self.eager(s["label"], s["prev_image"], s["prev_label"])
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._out = self.eager(s["label"], s["prev_image"], s["prev_label"])
            self.graph = graph
        except RuntimeError as exc:  # e.g. an op that syncs with the host: keep working, eagerly
            from fewshotv2v.errors import FewShotV2VWarning

            self.enabled, self.graph = False, None
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"CUDA graph capture failed, running eagerly: {first}", FewShotV2VWarning, 3)


__all__ = ["GraphedFrame"]

#!/usr/bin/env bash
# How the packaged `demo` model (src/fewshotv2v/assets/demo) was made: the tiny preset trained on CPU on
# synthetic people, in two runs (the second continues from the first with more identities and larger frames).
# Run from anywhere with fewshotv2v installed; writes under ${WORK:-./demo-train}.
set -euo pipefail
WORK=${WORK:-./demo-train}
mkdir -p "$WORK" && cd "$WORK"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# Run 1: 10 people x 48 frames at 64x64, 2000 steps (about 15 min on one core).
fsv2v synthetic -o synth10 --identities 10 --frames 48 --size 64x64 --seed 0
cat > stage1.toml <<'TOML'
[train]
lr_g = 2e-4
lr_d = 8e-4
single_frame_steps = 1200
clip_len_start = 2
clip_len_double_every = 400
clip_len_max = 4
log_every = 20
sample_every = 250
checkpoint_every = 500
TOML
fsv2v train --data synth10 --preset tiny --run stage1 --train-config stage1.toml --steps 2000 --batch-size 4 \
    --perceptual none --workers 0 --device cpu --held-out id0008,id0009 --seed 0

# Run 2: 30 people x 64 frames at 192x192, initialised from run 1.
fsv2v synthetic -o synth30 --identities 30 --frames 64 --size 192x192 --seed 1
cat > stage2.toml <<'TOML'
[train]
lr_g = 2e-4
lr_d = 8e-4
single_frame_steps = 300
clip_len_start = 2
clip_len_double_every = 1500
clip_len_max = 4
log_every = 50
sample_every = 500
checkpoint_every = 500
keep_last = 3
TOML
fsv2v train --data synth30 --preset tiny --init stage1/checkpoints/step-00002000 --run stage2 \
    --train-config stage2.toml --steps "${STEPS:-12000}" --batch-size 4 --perceptual none --workers 0 \
    --device cpu --seed 0 --held-out id0028,id0029
# (the packaged model is the newest checkpoint when the run was stopped; see its model card)
fsv2v export stage2 -o demo --license apache-2.0 \
    --data "30 synthetic people (fsv2v synthetic --identities 30 --frames 64 --size 192x192 --seed 1)"

#!/usr/bin/env bash
# Training the shipped `pose-lite` and `face-lite` models (the keypoint flow prior and the warp composite,
# SPEC §7) on CPU on synthetic people / faces, one run per mode side by side (one thread each), then
# exporting them as fp16 model folders small enough for the package (src/fewshotv2v/assets/).
# Run from anywhere with fewshotv2v installed; writes under ${WORK:-./lite-train}.
#
# Two stages per mode, both reconstruction-only (no VGG19 offline, no discriminator: with the few hundred
# steps a CPU affords, adversarial terms and a noisy warp only pulled the models below the prior):
#   1. keypoint noise 0.5 % of the crop height on the keypoints the prior sees (the model learns where the
#      prior is off), K drawn from 1..4 per step, clips of 2 frames (the previous-frame path is trained);
#   2. from stage 1, exact keypoints (a model trained only on noisy ones hedges at every edge and loses to
#      the prior on exact ones).
# Step counts are those of the packaged models (docs/real-photos.md has their numbers).
set -euo pipefail
WORK=${WORK:-./lite-train}
mkdir -p "$WORK" && cd "$WORK"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
POSE_STEPS=(${POSE_STEPS:-300 600})   # stage 1, stage 2
FACE_STEPS=(${FACE_STEPS:-150 150})

# 24 identities x 48 frames at 256x256 each; id0022 and id0023 are held out for `fsv2v eval`.
fsv2v synthetic -o synth_pose --identities 24 --frames 48 --size 256x256 --seed 3
fsv2v synthetic -o synth_face --identities 24 --frames 48 --size 256x256 --seed 4 --mode face

stage() {  # stage NAME NOISE WARP_WEIGHT
    cat > "$1.toml" <<TOML
[train]
lr_g = 2e-4
single_frame_steps = 0
clip_len_start = 2
clip_len_double_every = 100000
clip_len_max = 2
keypoint_noise = $2
w_reconstruction = 10.0
w_mask = 10.0
w_warp = $3
w_gan = 0.0
w_feature_matching = 0.0
w_face = 0.0
w_temporal = 0.0
log_every = 25
checkpoint_every = 150
keep_last = 12
TOML
}
# pose-lite has no residual flow (the warp loss would train nothing); face-lite's is trained by it
stage pose_stage1 0.005 0.0
stage pose_stage2 0.0 0.0
stage face_stage1 0.005 10.0
stage face_stage2 0.0 10.0

common=(--batch-size 4 --perceptual none --workers 0 --device cpu --held-out id0022,id0023)
run_mode() {  # run_mode MODE STEPS1 STEPS2
    fsv2v train --data "synth_$1" --preset "$1-lite" --run "$1_stage1" --train-config "$1_stage1.toml" \
        --steps "$2" --seed 0 "${common[@]}"
    fsv2v train --data "synth_$1" --init "$1_stage1/checkpoints/step-$(printf %08d "$2")" \
        --run "$1_stage2" --train-config "$1_stage2.toml" --steps "$3" --seed 1 "${common[@]}"
}
run_mode pose "${POSE_STEPS[@]}" &
run_mode face "${FACE_STEPS[@]}" &
wait

# Check them against the prior on the held-out people before packaging (they must beat it):
for mode in pose face; do
    fsv2v eval --model "${mode}_stage2" --data "synth_$mode" --clips id0022,id0023 --k 1,4 --max-frames 24
done
fsv2v export pose_stage2 -o pose-lite --half --no-discriminator --license apache-2.0 \
    --data "24 synthetic people (fsv2v synthetic --identities 24 --frames 48 --size 256x256 --seed 3)"
fsv2v export face_stage2 -o face-lite --half --no-discriminator --license apache-2.0 \
    --data "24 synthetic faces (fsv2v synthetic --mode face --identities 24 --frames 48 --size 256x256 --seed 4)"

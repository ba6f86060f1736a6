#!/usr/bin/env bash
# Reproduces the built-in models from scratch: synthetic data, the teacher synthetic-128 in three stages, its
# distilled lite student synthetic-128-lite, packaging, the report of docs/builtin-model.md.
#   bash tools/train_builtin_model.sh [WORK_DIR [ARGS...]]   (default ./builtin-model-run; ~3 h on 2 CPU cores)
# ARGS go to every training command (e.g. --max_steps=2 for a smoke run); NUM_TRAIN, NUM_TEST and NUM_FRAMES
# size the dataset (480, 8, 32) and ASSETS_DIR is where the weights go (default fomm_tf/assets).
# Stages 1 and 2 are the first built-in model (the paper's generator), reproduced as it ran: 60 epochs with the
# learning rate cut tenfold at epoch 48, then resumed at the full rate for 255 epochs, cut at 170 and 240.
# Stage 3 is today's synthetic-128: the same networks, the output blended with the warped source
# (--gen_blend_deformed), fine-tuned from stage 2 under the config's schedule. Then the student learns the teacher
# in two runs, as it did.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-builtin-model-run}"
shift || true
python=${PYTHON:-python3}
assets="${ASSETS_DIR:-fomm_tf/assets}"
$python tools/make_synthetic_dataset.py --output_dir="$work/data" --num_train="${NUM_TRAIN:-480}" \
    --num_test="${NUM_TEST:-8}" --num_frames="${NUM_FRAMES:-32}" --frame_size=128 --format=png_folder --seed=0 \
    --videos_per_identity=1
# Puppets of a seed the models never see, for the report (its one training video is unused).
$python tools/make_synthetic_dataset.py --output_dir="$work/unseen" --num_train=1 --num_test="${NUM_TEST:-8}" \
    --num_frames="${NUM_FRAMES:-32}" --frame_size=128 --format=png_folder --seed=7 --videos_per_identity=1
printf -- "--flagfile=configs/synthetic-128.flags\n--nogen_blend_deformed\n" > "$work/stage-1.flags"
$python -m fomm_tf.train --flagfile="$work/stage-1.flags" --dataset_root="$work/data" --model_dir="$work/stage-1" \
    --checkpoint_every=250 --seed=0 --num_epochs=60 --epoch_milestones=48 "$@"
$python -m fomm_tf.train --flagfile="$work/stage-1.flags" --dataset_root="$work/data" --model_dir="$work/stage-1" \
    --checkpoint_every=600 --seed=0 --num_epochs=255 --epoch_milestones=170,240 "$@"
$python -m fomm_tf.train --flagfile=configs/synthetic-128.flags --dataset_root="$work/data" --model_dir="$work/teacher" \
    --init_checkpoint="$work/stage-1" --checkpoint_every=600 --seed=0 "$@"
# The student as it ran: 20 epochs (cuts at 8 and 16), then resumed under the lite config's schedule.
for schedule in "--num_epochs=20 --epoch_milestones=8,16" ""; do
  # shellcheck disable=SC2086
  $python -m fomm_tf.train --flagfile=configs/synthetic-128-lite.flags --dataset_root="$work/data" \
      --model_dir="$work/student" --teacher_config=synthetic-128 --teacher_checkpoint="$work/teacher" \
      --checkpoint_every=600 --seed=0 $schedule "$@"
done
$python tools/package_builtin_model.py --model_dir="$work/teacher" --dataset_root="$work/data" --assets_dir="$assets"
$python tools/package_builtin_model.py --model=synthetic-128-lite --model_dir="$work/student" --assets_dir="$assets"
$python tools/builtin_model_report.py --dataset_roots="$work/data,$work/unseen" --teacher="$assets/synthetic-128.weights.npz" \
    --student="$assets/synthetic-128-lite.weights.npz"

#!/usr/bin/env bash
# Reproduces the built-in model from scratch: synthetic data, training, packaging, evaluation.
#   bash tools/train_builtin_model.sh [WORK_DIR]   (default: ./builtin-model-run; ~2.5 h on 2 CPU cores)
# The shipped model was trained in two stages, reproduced here as they ran: 60 epochs with the
# learning rate cut tenfold at epoch 48, then resumed with the config's schedule (back to the full
# rate, 255 epochs, cut at 170 and 240) once it was clear the generator was still improving.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-builtin-model-run}"
python=${PYTHON:-python3}
$python tools/make_synthetic_dataset.py --output_dir="$work/data" --num_train=480 --num_test=8 --num_frames=32 \
    --frame_size=128 --format=png_folder --seed=0 --videos_per_identity=1
$python -m fomm_tf.train --flagfile=configs/synthetic-128.flags --dataset_root="$work/data" \
    --model_dir="$work/run" --checkpoint_every=250 --seed=0 --num_epochs=60 --epoch_milestones=48
$python -m fomm_tf.train --flagfile=configs/synthetic-128.flags --dataset_root="$work/data" \
    --model_dir="$work/run" --checkpoint_every=600 --seed=0
$python tools/package_builtin_model.py --model_dir="$work/run" --dataset_root="$work/data"
for method in fomm no_motion global_affine; do
  $python -m fomm_tf.evaluate --flagfile=configs/synthetic-128.flags --checkpoint="$work/run" \
      --dataset_root="$work/data" --output_dir="$work/eval-$method" --method="$method"
done

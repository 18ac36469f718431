#!/bin/bash
# The mobile grid as 3 shards, one array task each: sbatch benchmarks/jobs/sweep_mobile.slurm.sh
# from the repository root (its .venv and data/shapes_large on the shared file system).
# Re-run one shard (done cells are skipped): sbatch --array=1 benchmarks/jobs/sweep_mobile.slurm.sh
#SBATCH --job-name=frontier-sweep-mobile
#SBATCH --array=0-2
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --output=sweep_mobile_%a.out
# The task id is the shard index, so the array counts from 0; N (3) is --shard-count.
set -euo pipefail
.venv/bin/python -m benchmarks sweep --grid mobile --zoo --data data/shapes_large \
    --out benchmarks/results/sweep_mobile --shard-count 3 --no-progress

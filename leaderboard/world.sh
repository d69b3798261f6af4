#!/usr/bin/env bash
# The measured rows of leaderboard/LEADERBOARD.md and baselines/world-report/: every built-in
# method on the toy world suite, fitted with seeds 0, 1 and 2 (36 fits per method), scored,
# then the leaderboard and the HTML report over that store. About an hour on 2 CPU cores;
# set RUNS to keep the store elsewhere. Interrupted, it resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-runs-world}"
run() { bench run --suite world --replicates 0,1,2 --runs "$RUNS" "$@"; }
run --method real
run --method base
run --method dreambooth_lora
run --method textual_inversion
bench leaderboard --runs "$RUNS" --out leaderboard/LEADERBOARD.md
# The HTML report: every run's numbers; in the image grids, the first two images of each
# prompt at fit seed 0 (all of them would put 20 MB of thumbnails in the repository), beside
# the world report of world/results/world.
rm -rf baselines/world-report
bench report --runs "$RUNS" --out baselines/world-report --replicates 0 --images-per-prompt 2 \
  --world-report world/results/world

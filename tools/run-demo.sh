#!/usr/bin/env bash
# Build, make the tiny random demo model (with its own tokenizer), and train LoRA on configs/demo.json.
# CPU when there is no GPU. Outputs: build/demo-run (metrics.jsonl, loss_curve.svg, checkpoints, TensorBoard).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
[ -f build/demo-model/model.safetensors ] || ./build/qwen-sft init-model --preset tiny --out build/demo-model
rm -rf build/demo-run
./build/qwen-sft train configs/demo.json "$@"
./build/qwen-sft export build/demo-run

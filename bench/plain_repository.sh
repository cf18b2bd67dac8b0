#!/usr/bin/env bash
# The plain config of issue 25, what a user writes before any tuning: copies MODELS of an
# example repository (examples/build_example_repository.py) into TARGET, each with nothing in
# config.pbtxt but `max_batch_size: 64` and `dynamic_batching { max_queue_delay_microseconds:
# 2000 }`, plus the config parameters given as KEY=VALUE.
#
#   bench/plain_repository.sh SOURCE TARGET MODEL[,MODEL...] [KEY=VALUE ...]
#   bench/plain_repository.sh /tmp/example /tmp/plain classifier,resnet18_classifier
#   bench/plain_repository.sh /tmp/example /tmp/fixed classifier adaptive_queue_delay=false
set -euo pipefail
source=$1
target=$2
IFS=, read -r -a models <<< "$3"
shift 3
rm -rf "$target" && mkdir -p "$target"
for model in "${models[@]}"; do
  cp -r "$source/$model" "$target/"
  {
    printf 'max_batch_size: 64\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n'
    for pair in "$@"; do
      printf 'parameters { key: "%s" value: "%s" }\n' "${pair%%=*}" "${pair#*=}"
    done
  } > "$target/$model/config.pbtxt"
done

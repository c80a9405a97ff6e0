#!/usr/bin/env bash
# Install size and import time of the core install and of every extra, side by side: builds the wheel, installs it
# into two fresh virtual environments (core; [all]), and prints each environment's size and the import time of
# what its users import first (median of 5 fresh interpreters). Versions are held to requirements.txt.
#
#   bash benchmarks/install_size.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
wheel="$(ls "$work"/dist/imbal_keras-*.whl)"
grep -v '^-r' "$repo/requirements-ray.txt" > "$work/ray-pin.txt"

median_import() {  # python, module: the median of 5 import times in fresh interpreters, in seconds
  for _ in 1 2 3 4 5; do
    "$1" -c "import time; t = time.perf_counter(); import $2; print(f'{time.perf_counter() - t:.2f}')" 2>/dev/null
  done | sort -n | sed -n 3p
}

printf '%-6s %10s %12s %s\n' install "size MiB" "import s" "module"
for variant in core all; do
  python -m venv "$work/$variant"
  target="$wheel"
  [[ $variant == all ]] && target="${wheel}[all]"
  "$work/$variant/bin/python" -m pip install --quiet --disable-pip-version-check "$target" \
    -c "$repo/requirements.txt" -c "$work/ray-pin.txt" 2>/dev/null
  size="$(du -sm "$work/$variant" | cut -f1)"
  for module in imbal_keras.callbacks imbal_keras.grid; do
    if [[ $variant == core && $module == imbal_keras.grid ]]; then continue; fi
    printf '%-6s %10s %12s %s\n' "$variant" "$size" "$(median_import "$work/$variant/bin/python" "$module")" "$module"
  done
done

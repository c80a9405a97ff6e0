#!/usr/bin/env bash
# The package as users install it: build the wheel, install it into fresh virtual environments outside the
# repository, and use it there. First the core install (the README's callback example runs; the grid refuses with
# one line naming its extra), then the same environment with every extra (the command on the embedded data, and
# `python -m imbal_keras`). Versions are held to requirements.txt, as the tests' are.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "+ build the wheel"
python -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
wheel="$(ls "$work"/dist/imbal_keras-*.whl)"
python -m venv "$work/venv"
py="$work/venv/bin/python"

echo "+ core install: $(basename "$wheel")"
"$py" -m pip install --quiet --disable-pip-version-check "$wheel" -c "$repo/requirements.txt"
"$py" - <<'PY'
import imbal_keras
assert imbal_keras.__version__, "no version"
names = [n for n in dir(imbal_keras) if not n.startswith("__")]
assert names == sorted(imbal_keras.__all__), names
PY
# The README's callback example, as a user copies it.
"$py" "$repo/.ci/readme_block.py" "$repo/README.md" "See inside training" > callback_example.py
"$py" callback_example.py > /dev/null
test -s logs/run1/composition.csv
if "$py" -c "import imbal_keras.grid" 2> grid_error.txt; then
  echo "imbal_keras.grid imported without the grid extra" >&2
  exit 1
fi
tail -n 1 grid_error.txt
grep -q "pip install 'imbal_keras\[grid\]'" grid_error.txt

echo "+ every extra: $(basename "$wheel")[all]"
grep -v '^-r' "$repo/requirements-ray.txt" > ray-pin.txt
"$py" -m pip install --quiet --disable-pip-version-check "${wheel}[all]" -c "$repo/requirements.txt" -c ray-pin.txt
# The installed command and the repository's run_experiment.py give the same run.
run_flags=(--strategy=upsample --steps=100 --eval_every=50 --num_examples=2000)
"$work/venv/bin/imbal-keras" "${run_flags[@]}" --output_dir="$work/installed" > command.txt
PYTHONPATH="$repo" "$py" "$repo/run_experiment.py" "${run_flags[@]}" --output_dir="$work/repository" > repository.txt
"$py" - "$work/installed" "$work/repository" <<'PY'
import glob, json, sys
installed, repository = (json.load(open(glob.glob(f"{d}/*/result.json")[0])) for d in sys.argv[1:])
a, b = ({k: v for k, v in r["final"].items() if k != "elapsed_seconds"} for r in (installed, repository))
assert a == b, (a, b)
print(f"installed command = repository script: final test AUPRC {a['test_average_precision']:.4f}")
PY
"$py" -m imbal_keras --strategy=none,upsample --seed=0:2 --steps=20 --eval_every=10 --num_examples=1000 \
  --output_dir="$work/grid" --dry_run > dry_run.txt
grep -q "4 runs" dry_run.txt
echo "wheel checks passed"

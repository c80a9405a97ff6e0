#!/usr/bin/env bash
# Runs the callback tests on a backend x version matrix: Keras and TensorFlow versions, each pair in
# its own virtual environment under /tmp (created on first use, reused afterwards; never in the repo).
#
#   bash benchmarks/keras_versions.sh [[BACKEND:]KERAS=TF[+EXTRA_REQUIREMENT...] ...]
#
# BACKEND is `tensorflow` (the default) or `jax`. Without arguments it runs Keras 3.8 (the oldest the
# callbacks accept, with TensorFlow 2.16 and `tensorflow-metadata<1.18` so that tensorflow_datasets
# imports), the oldest declared pair (Keras 3.10, TensorFlow 2.20) and the newest (Keras 3.15.1,
# TensorFlow 2.21), on TensorFlow; then the same three on JAX.
#
# A `jax:` entry installs `jax` as well and runs, with KERAS_BACKEND=jax, the JAX callback tests in
# `tests/jax/` (override with JAX_TESTS="path ..."); jax is `jax[cpu]==0.10.2` as in requirements-dev.txt
# (an entry's own `+jax[cpu]==VERSION` or JAX_REQUIREMENT="jax[cpu]==VERSION" overrides it: TensorFlow 2.16
# cannot be installed beside jax 0.10, so the Keras 3.8 entry takes jax 0.4.30).
#
# Each environment also gets the project's other runtime dependencies, loosely as `pip install` would
# pick them, and is checked to import tensorflow_datasets. Prints one line per environment; the last
# result is in docs/callbacks.md. Not part of the test suite: it installs TensorFlow (about 600 MB)
# per environment.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="${IMBAL_KERAS_VERSIONS_DIR:-/tmp/imbal_keras_versions}"
PYTHON="${PYTHON:-python3}"
# Every callback test file that runs on TensorFlow (the JAX ones run in the `jax:` column).
mapfile -t TESTS < <(cd "$REPO" && ls tests/callbacks*_test.py tests/batch_composition_test.py \
  tests/per_class_gradients_test.py | grep -v jax)
read -r -a JAX_TESTS <<<"${JAX_TESTS:-tests/jax}"
if [ "$#" -eq 0 ]; then
  set -- "3.8.0=2.16.2+tensorflow-metadata<1.18" "3.10.0=2.20.0" "3.15.1=2.21.0" "jax:3.8.0=2.16.2+tensorflow-metadata<1.18+jax[cpu]==0.4.30" \
    "jax:3.10.0=2.20.0" "jax:3.15.1=2.21.0"
fi

mkdir -p "$VENVS"
summary=()
for entry in "$@"; do
  backend=tensorflow
  combo="$entry"
  case "$entry" in
    jax:* | tensorflow:*) backend="${entry%%:*}" combo="${entry#*:}" ;;
  esac
  keras_version="${combo%%=*}"
  rest="${combo#*=}"
  tf_version="${rest%%+*}"
  extra=""
  [ "$rest" != "$tf_version" ] && extra="${rest#*+}" && extra="${extra//+/ }"
  tests=("${TESTS[@]}")
  if [ "$backend" = jax ]; then
    tests=("${JAX_TESTS[@]}")
    case " $extra" in *" jax"*) ;; *) extra="${JAX_REQUIREMENT:-jax[cpu]==0.10.2} $extra" ;; esac
  fi
  name="${backend}-keras-${keras_version}-tf-${tf_version}${extra:+-$(echo "$extra" | tr -c 'A-Za-z0-9.\n' '_')}"
  venv="$VENVS/$name"
  log="$VENVS/$name.log"
  echo "== $name (log: $log)"
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv" || { summary+=("$name: venv failed"); continue; }
  fi
  # shellcheck disable=SC2086
  if ! "$venv/bin/python" -m pip install -q "tensorflow==$tf_version" "keras==$keras_version" "tensorflow-datasets>=4.9" \
      "tensorboard" "absl-py>=2.0" "pandas>=2.0" "numpy>=1.26" "scipy>=1.11" "matplotlib>=3.8" pytest $extra \
      >"$log" 2>&1; then
    summary+=("$name: pip install failed (see $log)")
    continue
  fi
  versions="$("$venv/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("keras", "tensorflow", "tensorflow-datasets", "tensorflow-metadata", "protobuf")))')"
  if "$venv/bin/python" -c "import tensorflow_datasets" >>"$log" 2>&1; then
    tfds="imports"
  else
    tfds="FAILS to import ($(tail -1 "$log"))"
  fi
  result="$(cd "$REPO" && KERAS_BACKEND="$backend" PYTHONPATH="$REPO" "$venv/bin/python" -m pytest "${tests[@]}" -q \
    -p no:randomly -p no:xdist \
    -p no:cacheprovider 2>&1 | tee -a "$log" | tail -1)"
  summary+=("$name: $result; tensorflow_datasets $tfds [$versions]")
done

echo
echo "Callback tests by backend and environment ($(date -u +%Y-%m-%d)):"
printf '%s\n' "${summary[@]}"

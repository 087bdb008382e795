#!/usr/bin/env bash
# `make deploy-check`: render each kustomization and validate every object offline.
#
#   scripts/deploy-check.sh [--no-setup] [KUSTOMIZATION_DIR...]   (default: every deploy/overlays/*)
#
# Tools, pinned and kept under .cache/ (set up on first use, idempotent):
#   kustomize  sigs.k8s.io/kustomize/kustomize/v5 built with `go install` from the Go module proxy
#              -> .cache/deploy-bin/kustomize-$KUSTOMIZE_VERSION (about 1.5 min the first time)
#   validator  scripts/deploy/validate.py in .cache/deploy-venv (scripts/deploy/requirements.txt:
#              kubernetes-validate, which ships the Kubernetes JSON schemas; no network at validation)
# --no-setup: fail with a message instead of installing missing tools (used by tests/deploy_check.rs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

KUSTOMIZE_VERSION=v5.5.0
K8S_VERSIONS=1.29,1.37
VENV=.cache/deploy-venv
REQS=scripts/deploy/requirements.txt
KUSTOMIZE=.cache/deploy-bin/kustomize-$KUSTOMIZE_VERSION
DASHBOARDS=(deploy/grafana/*.json)

setup=1
dirs=()
for a in "$@"; do
  case "$a" in
    --no-setup) setup=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) dirs+=("$a") ;;
  esac
done
if [[ ${#dirs[@]} -eq 0 ]]; then
  for d in deploy/overlays/*/; do dirs+=("${d%/}"); done
fi

missing() { echo "deploy-check: $1 is missing; run \`make deploy-check\` (or scripts/deploy-check.sh) once to set it up" >&2; exit 3; }

if ! cmp -s "$REQS" "$VENV/.requirements" 2>/dev/null; then
  [[ $setup == 1 ]] || missing "$VENV"
  echo "==> deploy-check: Python venv $VENV ($REQS)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.requirements"
fi

if [[ ! -x $KUSTOMIZE ]]; then
  [[ $setup == 1 ]] || missing "$KUSTOMIZE"
  command -v go >/dev/null || { echo "deploy-check: needs Go to build kustomize ($KUSTOMIZE_VERSION)" >&2; exit 3; }
  echo "==> deploy-check: go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  mkdir -p .cache/deploy-bin/build
  # Module downloads stay under .cache/ (writable, so `rm -rf .cache` works).
  GOBIN="$ROOT/.cache/deploy-bin/build" GOMODCACHE="$ROOT/.cache/deploy-bin/gomod" \
    GOTOOLCHAIN=local GOFLAGS="-mod=mod -modcacherw" CGO_ENABLED=0 \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  mv .cache/deploy-bin/build/kustomize "$KUSTOMIZE"
  rm -rf .cache/deploy-bin/build .cache/deploy-bin/gomod
fi

out=.cache/deploy-check
mkdir -p "$out"
rc=0
tmpfiles=()
trap 'rm -f "${tmpfiles[@]}"' EXIT
for dir in "${dirs[@]}"; do
  [[ -f $dir/kustomization.yaml ]] || { echo "deploy-check: $dir has no kustomization.yaml" >&2; rc=1; continue; }
  # In-repo kustomizations keep their render in .cache/deploy-check/ for inspection; others use a temp file.
  abs="$(cd "$dir" && pwd)"
  if [[ $abs == "$ROOT"/* ]]; then
    rendered="$out/$(echo "${abs#"$ROOT"/}" | tr '/' '_').yaml"
  else
    rendered="$(mktemp "${TMPDIR:-/tmp}/deploy-check.XXXXXX")"
    tmpfiles+=("$rendered")
  fi
  echo "==> deploy-check: kustomize build $dir"
  if ! "$KUSTOMIZE" build "$dir" > "$rendered"; then
    echo "deploy-check: FAILED to render $dir" >&2
    rc=1
    continue
  fi
  if ! "$VENV/bin/python" scripts/deploy/validate.py "$rendered" --k8s "$K8S_VERSIONS" \
      $(printf -- '--dashboard %s ' "${DASHBOARDS[@]}"); then
    rc=1
  fi
done
if [[ $rc == 0 ]]; then
  echo "deploy-check: OK (${dirs[*]})"
else
  echo "deploy-check: FAILED" >&2
fi
exit "$rc"

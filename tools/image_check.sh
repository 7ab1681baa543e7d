#!/usr/bin/env bash
# Build the platform's image and check that it runs the way the Helm chart runs it.
#
#   tools/image_check.sh                       # base image python:3.11-slim-bookworm
#   tools/image_check.sh --debootstrap         # base image made here from a Debian mirror
#   MC_CHECK_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/mc_image \
#   MC_CHECK_REDIS_URL=redis://127.0.0.1:6379/0 tools/image_check.sh   # + PostgreSQL/Redis
#
# Checks, each a failure when it does not hold: the image builds; the embedded mode (SQLite in
# the volume) answers /healthz, /readyz and the discovery document; the process runs as uid
# 10001, not root; Docker's HEALTHCHECK command exits 0. With MC_CHECK_DATABASE_URL (an empty
# database it may use) and MC_CHECK_REDIS_URL: the migration Job's command (`db upgrade`), then
# `serve --workers 2` on a read-only root filesystem with the data folder on a tmpfs (as the
# chart's pods), /readyz ready, a client registered by the CLI gets a token.
#
# --debootstrap: where Docker Hub cannot be reached (a data centre with only a Debian mirror,
# these development machines), the base image is made by debootstrap from DEBIAN_MIRROR
# (default http://deb.debian.org/debian): Debian bookworm with its python3 (3.11), python3-venv,
# python-is-python3 and ca-certificates, plus this machine's extra certificate authorities
# (/usr/local/share/ca-certificates: an egress proxy's), trusted by pip through PIP_CERT.
# Containers use the host's network (`--network host`): the checks talk to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${TAG:-martinique-connect:check}
BASE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}
PORT=${PORT:-8790}
names=()
cleanup() {
  for name in "${names[@]}"; do docker rm -f "$name" >/dev/null 2>&1 || true; done
  [[ -n "${rootfs:-}" ]] && rm -rf "$rootfs"
  return 0
}
trap cleanup EXIT
fail() { echo "ÉCHEC : $*" >&2; exit 1; }
wait_ok() {  # URL: 200 within 60 s
  for _ in $(seq 1 120); do curl -sf "$1" >/dev/null && return 0; sleep 0.5; done
  fail "$1 ne répond pas"
}

if [[ "${1:-}" == "--debootstrap" ]]; then
  BASE=local/python:3.11-slim-bookworm
  rootfs=$(mktemp -d)
  echo "image de base $BASE par debootstrap…"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" \
    2>/dev/null || true
  chroot "$rootfs" update-ca-certificates >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$BASE" >/dev/null
fi

echo "construction de $TAG sur $BASE…"
# The classic builder: BuildKit would fetch the `# syntax=` frontend image from Docker Hub.
DOCKER_BUILDKIT=0 docker build -q --network host --build-arg "PYTHON_IMAGE=$BASE" -t "$TAG" . \
  >/dev/null
echo "  image : $(docker image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%d Mo", $1/1e6}')"

name=mc-check-embedded-$$; names+=("$name")
docker run -d --name "$name" --network host -e "MC_PORT=$PORT" \
  -e "MC_ISSUER=http://127.0.0.1:$PORT" "$TAG" >/dev/null
wait_ok "http://127.0.0.1:$PORT/healthz"
curl -sf "http://127.0.0.1:$PORT/readyz" | grep -q '"ready"' || fail "/readyz (embarqué)"
curl -sf "http://127.0.0.1:$PORT/.well-known/openid-configuration" \
  | grep -q "\"issuer\":\"http://127.0.0.1:$PORT\"" || fail "découverte (embarqué)"
[[ "$(docker exec "$name" id -u)" == 10001 ]] || fail "le processus ne tourne pas sous l'uid 10001"
# The HEALTHCHECK's command as Docker runs it (the words after "CMD", one per line).
mapfile -t healthcheck < <(docker image inspect "$TAG" \
  --format '{{range $i, $w := .Config.Healthcheck.Test}}{{if $i}}{{println $w}}{{end}}{{end}}')
docker exec -e "MC_PORT=$PORT" "$name" "${healthcheck[@]}" \
  || fail "la commande du HEALTHCHECK"
echo "  mode embarqué : /healthz, /readyz, découverte, uid 10001, HEALTHCHECK : OK"
docker rm -f "$name" >/dev/null

if [[ -n "${MC_CHECK_DATABASE_URL:-}" && -n "${MC_CHECK_REDIS_URL:-}" ]]; then
  env=(-e "MC_DATABASE_URL=$MC_CHECK_DATABASE_URL" -e "MC_REDIS_URL=$MC_CHECK_REDIS_URL"
       -e "MC_REDIS_PREFIX=mc-image-check-$$:" -e "MC_SECRET_KEY=$(openssl rand -hex 32)"
       -e "MC_ISSUER=http://127.0.0.1:$PORT" -e "MC_PORT=$PORT")
  pod=(--network host --read-only --tmpfs "/var/lib/martinique-connect:uid=10001,gid=10001"
       --tmpfs /tmp)
  docker run --rm "${pod[@]}" "${env[@]}" "$TAG" db upgrade >/dev/null || fail "db upgrade"
  name=mc-check-production-$$; names+=("$name")
  docker run -d --name "$name" "${pod[@]}" "${env[@]}" "$TAG" serve --workers 2 >/dev/null
  wait_ok "http://127.0.0.1:$PORT/healthz"
  curl -sf "http://127.0.0.1:$PORT/readyz" | grep -q '"ready"' || fail "/readyz (production)"
  client=$(docker run --rm "${pod[@]}" "${env[@]}" "$TAG" clients create --name "Contrôle image" \
    --grant-type client_credentials --scope archives:read --json)
  id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])' <<<"$client")
  secret=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])' <<<"$client")
  curl -sf -u "$id:$secret" -d grant_type=client_credentials -d scope=archives:read \
    "http://127.0.0.1:$PORT/token" | grep -q '"access_token"' || fail "jeton client_credentials"
  echo "  PostgreSQL + Redis, racine en lecture seule, 2 workers : db upgrade, /readyz, jeton : OK"
fi
echo "image $TAG : contrôles passés"

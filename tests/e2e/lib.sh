# tests/e2e/lib.sh: shared set-up for the end-to-end tests of the recipes.
#
# Sourced by tests/e2e/test-*: result helpers, the engine and image checks,
# a fake HTTPS upstream `upstream.test` (a container with host networking,
# serving a leaf from its own test CA on the host's address), a sampler that
# watches every process's argv for secret values, and a leak check for a
# slug. All traffic stays on this machine.

passed=0 failed=0 skipped=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
nok() { echo "not ok - $1${2:+: $2}"; failed=$((failed + 1)); }
skip() { echo "skip - $1: $2"; skipped=$((skipped + 1)); }
check() { # NAME STATUS [DETAIL]
  if [ "$2" = 0 ]; then ok "$1"; else nok "$1" "${3:-}"; fi
}
finish() {
  e2e_cleanup
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" = 0 ]
  exit
}

BOTTLE=${BOTTLE_BIN:-$PWD/${BUILD:-build}/bottle}
E2E_ID=e2e$$$RANDOM
E2E_LABEL=io.bottle.test=$E2E_ID
E2E_WORK=$(mktemp -d)
chmod 700 "$E2E_WORK"
E2E_SAMPLER=""

e2e_cleanup() {
  [ -n "$E2E_SAMPLER" ] && kill "$E2E_SAMPLER" 2>/dev/null
  docker ps -aq --filter "label=$E2E_LABEL" | xargs -r docker rm -f -v >/dev/null 2>&1
  [ -n "${E2E_KEEP:-}" ] || rm -rf "$E2E_WORK"
}
trap 'e2e_cleanup' EXIT

# Skips the whole file (and exits) when something it needs is absent.
e2e_require() { # NAME
  if [ -z "${DOCKER_HOST:-}" ] || ! docker version >/dev/null 2>&1; then
    skip "$1" "no Docker engine (set DOCKER_HOST)"
    finish
  fi
  local tool
  for tool in openssl curl; do
    command -v "$tool" >/dev/null 2>&1 || { skip "$1" "$tool is not installed"; finish; }
  done
  [ -x "$BOTTLE" ] || { skip "$1" "no bottle binary at $BOTTLE (run make)"; finish; }
  local out
  if ! out=$(tests/images/build 2>&1); then
    if [ "$(id -u)" != 0 ] && echo "$out" | grep -q 'needs root'; then
      skip "$1" "the test images need building and that needs root"
    else
      nok "offline test images build" "$(echo "$out" | tail -n 5 | tr '\n' ' ')"
    fi
    finish
  fi
}

# The host's own address (not loopback): bundles reach the host-network
# upstream through it from any bridge.
e2e_host_ip() {
  hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+\.' | grep -v '^127\.' | head -n 1
}

# A test CA and a server leaf it signs for DNS:NAME, in DIR: ca.pem,
# ca-key.pem, leaf.pem, leaf-key.pem. Status 1 when openssl fails.
e2e_test_pki() { # DIR NAME
  local w=$1 name=$2
  mkdir -p "$w"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bottle e2e CA for $name" \
    -keyout "$w/ca-key.pem" -out "$w/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$w/leaf-key.pem" -out "$w/leaf.csr" \
      2>/dev/null &&
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$name" >"$w/leaf.ext" &&
    openssl x509 -req -in "$w/leaf.csr" -CA "$w/ca.pem" -CAkey "$w/ca-key.pem" -CAcreateserial -days 2 \
      -extfile "$w/leaf.ext" -out "$w/leaf.pem" 2>/dev/null
}

# Starts upstream.test on the host's address, port $1, recording requests in
# $E2E_WORK/record/log. Sets UPSTREAM_CA (its CA cert) and UPSTREAM_IP.
e2e_upstream() { # PORT
  local port=$1 w=$E2E_WORK/upstream
  mkdir -p "$E2E_WORK/record"
  e2e_test_pki "$w" upstream.test || return 1
  cp tests/fakes/upstream.py "$w/"
  chmod -R a+rX "$w"
  chmod a+rwx "$E2E_WORK/record"
  UPSTREAM_CA=$w/ca.pem
  UPSTREAM_IP=$(e2e_host_ip)
  [ -n "$UPSTREAM_IP" ] || return 1
  docker run -d --name "bottle-e2e-upstream-$E2E_ID" --label "$E2E_LABEL" --network host \
    -v "$w:/srv:ro" -v "$E2E_WORK/record:/record" bottle-test-tools:${BOTTLE_TEST_IMAGE_TAG:-latest} \
    python3 /srv/upstream.py /srv/leaf.pem /srv/leaf-key.pem "$port" /record/log 0.0.0.0 >/dev/null || return 1
  local i
  for i in $(seq 1 100); do
    curl -fsS --cacert "$UPSTREAM_CA" --resolve "upstream.test:$port:127.0.0.1" \
      "https://upstream.test:$port/ready" >/dev/null 2>&1 && { : >"$E2E_WORK/record/log"; return 0; }
    sleep 0.1
  done
  return 1
}

# Watches /proc/*/cmdline of every process until stopped, appending the pid
# and cmdline of any process whose argv holds a line of $1 (a file of
# secret values, so they are never on the sampler's own argv).
e2e_sampler_start() { # SECRETS_FILE
  local secrets=$1 hits=$E2E_WORK/argv-hits
  : >"$hits"
  (
    while :; do
      for f in /proc/[0-9]*/cmdline; do
        if grep -a -q -F -f "$secrets" "$f" 2>/dev/null; then
          echo "$f: $(tr '\0' ' ' <"$f" 2>/dev/null | head -c 200)" >>"$hits"
        fi
      done
      sleep 0.05
    done
  ) &
  E2E_SAMPLER=$!
}

e2e_sampler_stop() {
  [ -n "$E2E_SAMPLER" ] && kill "$E2E_SAMPLER" 2>/dev/null && wait "$E2E_SAMPLER" 2>/dev/null
  E2E_SAMPLER=""
  [ ! -s "$E2E_WORK/argv-hits" ]
}

# Nothing of the slug is left: no container, network, fake machine, state dir.
e2e_leftovers() { # SLUG HOME
  local slug=$1 home=$2 out=""
  out+=$(docker ps -a --filter "label=io.bottle.slug=$slug" --format 'container {{.Names}} ')
  out+=$(docker network ls --filter "label=io.bottle.slug=$slug" --format 'network {{.Name}} ')
  out+=$(docker ps -a --filter "label=io.bottle.fake-smolvm.name=bottle-$slug" --format 'machine {{.Names}} ')
  [ -d "$home/.local/state/bottle/$slug" ] && out+="state-dir $home/.local/state/bottle/$slug"
  echo "$out"
}

# A private HOME with a bottle config; prints its path. Its smolmachines
# cache (the agent image's `docker save` archive, over a gigabyte with
# Claude Code) is shared by every test of this checkout: the archive is
# named by image ID, so a shared one is the same file a private one would be.
E2E_SHARED_CACHE=$(cd "${BUILD:-build}" 2>/dev/null && pwd)/e2e-cache
e2e_home() {
  local home
  home=$(mktemp -d "$E2E_WORK/home.XXXXXX")
  mkdir -p "$home/.config/bottle/bottles" "$home/.cache/bottle"
  if { [ -d "$E2E_SHARED_CACHE/smolmachines" ] || install -d -m 0700 "$E2E_SHARED_CACHE" \
    "$E2E_SHARED_CACHE/smolmachines"; } 2>/dev/null; then
    ln -s "$E2E_SHARED_CACHE/smolmachines" "$home/.cache/bottle/smolmachines"
  fi
  echo "$home"
}

# The slug a launch printed (first `launch plan <slug>:` line).
e2e_slug() { # LOG
  sed -nE 's/^launch plan ([a-z0-9-]+):.*/\1/p' "$1" | head -n 1
}

# e2e_exec NAME=VALUE... -- CMD ARG...: replaces the current (sub)shell with
# CMD run with exactly that environment, like `env -i` but without putting
# the values on any process's argv (the assignments are builtins). Use it as
# `e2e_exec ... &`: $! is then CMD's own pid.
#
# Plus SMOLVM_VM_UID_DROP=off when the suite runs as root (it does in CI):
# smolvm as root drops each VM to a uid of its own, which cannot open the
# launch's sockets, and bottle refuses that unless told the drop is off
# (docs/smolvm.md M4; the stand-in models the drop).
E2E_AS_ROOT=$([ "$(id -u)" = 0 ] && echo 1)
e2e_exec() {
  while IFS= read -r v; do unset "$v"; done < <(compgen -e)
  [ -z "$E2E_AS_ROOT" ] || export SMOLVM_VM_UID_DROP=off
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    export "${1?}"
    shift
  done
  shift
  exec "$@"
}

# e2e_run: the same in the foreground (in a subshell).
e2e_run() {
  (e2e_exec "$@")
}

# A TCP port free on this host right now (files run side by side on one
# engine; fixed ports would collide).
e2e_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# --- the guest's boundary ------------------------------------------------------
# A server on the host bound to every interface (0.0.0.0:$1), answering 200.
# Sets HOST_SERVER (its pid). The guest must reach it at none of the host's
# addresses.
e2e_host_server() { # PORT
  python3 -m http.server "$1" --bind 0.0.0.0 --directory "$E2E_WORK" >/dev/null 2>&1 &
  HOST_SERVER=$!
  local i
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Every address of this host the test can find: loopback, its own
# addresses, the gateways of the engine's networks, and smolvm's
# virtio-net gateway (100.96.0.1). One per line.
e2e_host_addresses() {
  {
    echo 127.0.0.1
    hostname -I 2>/dev/null | tr ' ' '\n'
    docker network ls -q | xargs -r docker network inspect -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' |
      tr ' ' '\n'
    echo 100.96.0.1
  } | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | sort -u
}

# The probe the agent runs inside the guest: its network interfaces, then
# one line per address (`reach ADDR:PORT CODE`, CODE 000 when nothing
# answered) and per foreign socket (`socket PATH ok|refused`). Arguments:
# PORT, then addresses (ADDR, or ADDR:PORT for another port) and socket
# paths.
E2E_PROBE='
port=$1; shift
echo "interfaces: $(ls /sys/class/net | tr "\n" " ")"
for a in "$@"; do
  case $a in
    /*) if socat -u /dev/null "UNIX-CONNECT:$a" 2>/dev/null; then echo "socket $a ok"; else echo "socket $a refused"; fi ;;
    *:*) echo "reach $a $(curl -s --noproxy "*" -m 3 -o /dev/null -w "%{http_code}" "http://$a/")" ;;
    *) echo "reach $a:$port $(curl -s --noproxy "*" -m 3 -o /dev/null -w "%{http_code}" "http://$a:$port/")" ;;
  esac
done'

# Checks a probe's output (file $1): only lo, nothing reached, no socket.
e2e_check_isolation() { # OUT LABEL
  local out=$1 label=$2
  grep -qE '^interfaces: lo $' "$out"
  check "$label: the guest has no network interface but lo" $? "$(grep '^interfaces' "$out")"
  local reached
  reached=$(grep -E '^reach ' "$out" | grep -v ' 000$')
  grep -q '^reach 100\.96\.0\.1:' "$out" && grep -q '^reach 127\.0\.0\.1:' "$out"
  check "$label: the guest probed loopback, the gateway 100.96.0.1 and every host address" $? "$(cat "$out")"
  check "$label: a host server on 0.0.0.0 answers at none of the host's addresses" \
    "$([ -z "$reached" ] && echo 0 || echo 1)" "$reached"
  if grep -q '^socket .* ok$' "$out"; then
    nok "$label: another bottle's sockets are out of reach" "$(grep '^socket' "$out")"
  else
    grep -q '^socket .* refused$' "$out"
    check "$label: another bottle's sockets are out of reach" $? "$(grep '^socket' "$out")"
  fi
}

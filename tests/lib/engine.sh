# engine.sh: a private Docker engine for the test suites.
#
#   . tests/lib/engine.sh
#   engine_up     # exports DOCKER_HOST, or sets ENGINE_SKIP to the reason
#   engine_down   # stops the engine if engine_up started it
#
# The engine is Debian's dockerd with its own data root, exec root, pid file
# and socket under $BUILD/engine, so it never touches a system engine and
# images built by earlier runs stay cached there. BOTTLE_TEST_DOCKER_HOST
# names an already running engine to use instead (unix://PATH).

ENGINE_SKIP=""
ENGINE_STARTED=""

engine_ping() {
  local sock=${1#unix://}
  [ -S "$sock" ] && curl -fsS --max-time 3 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1
}

engine_up() {
  if [ -n "${BOTTLE_TEST_DOCKER_HOST:-}" ]; then
    if engine_ping "$BOTTLE_TEST_DOCKER_HOST"; then
      export DOCKER_HOST=$BOTTLE_TEST_DOCKER_HOST
      return 0
    fi
    ENGINE_SKIP="BOTTLE_TEST_DOCKER_HOST=$BOTTLE_TEST_DOCKER_HOST does not answer"
    return 1
  fi
  local dir
  dir=$(cd "${BUILD:-build}" && pwd)/engine
  local sock=$dir/docker.sock
  if engine_ping "unix://$sock"; then
    export DOCKER_HOST=unix://$sock
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    ENGINE_SKIP="dockerd is not installed (run: make deps)"
    return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    ENGINE_SKIP="starting a private dockerd needs root (or set BOTTLE_TEST_DOCKER_HOST)"
    return 1
  fi
  mkdir -p "$dir/data" "$dir/exec"
  rm -f "$sock" "$dir/dockerd.pid"
  dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$sock" >"$dir/dockerd.log" 2>&1 &
  local pid=$!
  local i
  for i in $(seq 1 120); do
    if engine_ping "unix://$sock"; then
      export DOCKER_HOST=unix://$sock
      ENGINE_STARTED=$pid
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.25
  done
  kill "$pid" 2>/dev/null
  ENGINE_SKIP="the private dockerd did not start: $(tail -n 3 "$dir/dockerd.log" | tr '\n' ' ')"
  return 1
}

engine_down() {
  [ -n "$ENGINE_STARTED" ] || return 0
  kill "$ENGINE_STARTED" 2>/dev/null
  local i
  for i in $(seq 1 80); do
    kill -0 "$ENGINE_STARTED" 2>/dev/null || break
    sleep 0.25
  done
  kill -9 "$ENGINE_STARTED" 2>/dev/null
  ENGINE_STARTED=""
}

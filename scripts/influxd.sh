#!/usr/bin/env bash
# A private influxd for tests, benchmarks and the demo: loopback only, free ports, data in DIR.
#   scripts/influxd.sh start DIR   -> starts it (installing Debian's influxdb if missing), prints its URL
#   scripts/influxd.sh stop DIR    -> stops it
#   scripts/influxd.sh url DIR     -> prints the URL of the running one
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ensure_installed() {
  command -v influxd >/dev/null 2>&1 && return
  echo "influxd not found: installing Debian's influxdb package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq influxdb >&2
}

running() { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running; then cat "$dir/url"; return; fi
  ensure_installed
  local http rpc
  http=$(free_port); rpc=$(free_port)
  cat > "$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$http"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
CONF
  # A session of its own: Ctrl-C in the terminal that runs `make run` reaches the demo, which
  # flushes into influxd before the Makefile's trap stops it.
  nohup setsid influxd -config "$dir/influxdb.conf" > "$dir/influxd.log" 2>&1 &
  echo $! > "$dir/pid"
  echo "http://127.0.0.1:$http" > "$dir/url"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "http://127.0.0.1:$http/ping" >/dev/null 2>&1; then cat "$dir/url"; return; fi
    running || break
    sleep 0.1
  done
  echo "influxd did not start; its log:" >&2
  tail -20 "$dir/influxd.log" >&2
  exit 1
}

stop() {
  if running; then
    local pid; pid=$(cat "$dir/pid")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  url) running && cat "$dir/url" ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac

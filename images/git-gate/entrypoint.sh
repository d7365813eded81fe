#!/bin/sh
# git-gate/entrypoint.sh: the git-gate daemon (bottle-init runs it with
# /bin/sh, so it needs no exec bit on its read-only mount).
#
# For every `<name> <url>` line of the repos file it creates (or reuses) the
# bare mirror <root>/<name>.git with `remote add --mirror=fetch origin`,
# installs the pre-receive hook, fetches once and points an unborn HEAD at
# upstream's default branch; then it execs `git daemon`, whose access hook
# refreshes a mirror from upstream before every clone/fetch/push.
#
#   GIT_GATE_CONF_DIR    repos, known_hosts, keys/<name> (default /etc/bottle/git-gate)
#   GIT_GATE_ROOT        mirrors (default /var/lib/git-gate)
#   GIT_GATE_PORT        listen port (default 9418, on 0.0.0.0)
#   GIT_GATE_SCRIPT_DIR  where access-hook and pre-receive are (default: beside this file)
#   GIT_GATE_SCANNER     secret scanner (default gitleaks), used by pre-receive
set -euf # -f: repo lines are split into words, never globbed

conf=${GIT_GATE_CONF_DIR:-/etc/bottle/git-gate}
root=${GIT_GATE_ROOT:-/var/lib/git-gate}
port=${GIT_GATE_PORT:-9418}
scripts=${GIT_GATE_SCRIPT_DIR:-$(cd "$(dirname "$0")" && pwd)}
export GIT_GATE_CONF_DIR="$conf" GIT_GATE_ROOT="$root"

say() { echo "git-gate: $*" >&2; }

ssh_command() { # NAME: how git reaches upstream for that repo
  echo "ssh -i $conf/keys/$1 -o IdentitiesOnly=yes -o UserKnownHostsFile=$conf/known_hosts" \
    "-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10"
}

fix_head() { # DIR NAME: an unborn HEAD follows upstream's default branch
  git -C "$1" rev-parse --verify --quiet HEAD >/dev/null && return 0
  target=$(GIT_SSH_COMMAND=$(ssh_command "$2") git -C "$1" ls-remote --symref origin HEAD 2>/dev/null |
    sed -n 's/^ref: \(refs\/[^[:space:]]*\)[[:space:]]*HEAD$/\1/p' | head -n 1) || target=
  if [ -n "$target" ]; then
    git -C "$1" symbolic-ref HEAD "$target"
  fi
}

repos=$conf/repos
if [ ! -r "$repos" ]; then
  say "no repos file at $repos"
  exit 1
fi

mkdir -p "$root"
# git daemon runs the access hook directly, so it needs an executable copy;
# the mount it comes from may be read-only and not executable.
hookdir=$root/.gate
mkdir -p "$hookdir"
cp "$scripts/access-hook" "$hookdir/access-hook"
chmod 0755 "$hookdir/access-hook"

count=0
while IFS= read -r line || [ -n "$line" ]; do
  # shellcheck disable=SC2086
  set -- $line
  [ $# -eq 0 ] && continue
  case $1 in \#*) continue ;; esac
  if [ $# -ne 2 ]; then
    say "bad line in $repos (want '<name> <url>'): $line"
    exit 1
  fi
  name=$1 url=$2
  case $name in
    .* | *..* | */* | *[!A-Za-z0-9._-]*)
      say "bad repo name '$name' in $repos"
      exit 1
      ;;
  esac
  dir=$root/$name.git
  if [ ! -d "$dir" ]; then
    git init --quiet --bare "$dir"
    git -C "$dir" remote add --mirror=fetch origin "$url"
  else
    git -C "$dir" remote set-url origin "$url"
  fi
  cp "$scripts/pre-receive" "$dir/hooks/pre-receive"
  chmod 0755 "$dir/hooks/pre-receive"
  if GIT_SSH_COMMAND=$(ssh_command "$name") git -C "$dir" fetch --quiet --prune origin; then
    fix_head "$dir" "$name"
    say "mirror of $name ready"
  else
    say "initial fetch of $name failed; every clone/fetch will retry (and fail until it works)"
  fi
  count=$((count + 1))
done <"$repos"
say "serving $count repo(s) on port $port"

exec git daemon --reuseaddr --export-all --enable=receive-pack --informative-errors \
  --base-path="$root" --access-hook="$hookdir/access-hook" \
  --listen=0.0.0.0 --port="$port" "$root"

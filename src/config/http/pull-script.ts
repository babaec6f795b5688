import type { FastifyInstance } from 'fastify';
import type { RouteRule } from '../../auth/http-gate.ts';
import { ConfigConflict, InvalidConfig } from '../config-errors.ts';

/**
 * `pull.sh` (issue 13, docs/config.md "pull.sh"): what `slipway config pull [--watch] [--exec]`
 * does, as a POSIX sh script for images with only busybox `wget` (or `curl`), served at
 * `GET /config/v1/pull.sh`; and the plain-text forms of `/config/v1/files` and `/config/v1/watch`
 * it reads (`format=text`), since JSON is not for sh to parse.
 *
 * The text forms (JSON stays the default):
 * - files: `release N\n`, then per file `sha256 mode url destination\n`; the destination is last
 *   and taken as it is to the end of the line (spaces included). config-definitions lets a
 *   destination hold any character but NUL, so one with a control character (a newline would
 *   make a line of its own) is refused: 409, to be read in the JSON form.
 * - watch: `release N\n` (a 304 on timeout, as in JSON).
 */

export type ListingFormat = 'json' | 'text';

/** The `format` query parameter of /config/v1/files and /config/v1/watch: json (default) or text; else 400 naming it. */
export function listingFormat(query: Record<string, unknown>): ListingFormat {
  const f = query['format'];
  if (f === undefined || f === 'json') return 'json';
  if (f === 'text') return 'text';
  throw new InvalidConfig([{ field: 'format', message: `must be json or text, not ${JSON.stringify(String(f).slice(0, 40))}` }]);
}

export const TEXT_TYPE = 'text/plain; charset=utf-8';

// eslint-disable-next-line no-control-regex -- matching control characters is the point: C0 and DEL (a newline or carriage return would break the line)
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The text form of a release's listing (the JSON answer of GET /config/v1/files). */
export function filesText(listing: { service: string; env: string; release: number; files: readonly { name: string; sha256: string; mode: string; url: string; destination: string }[] }): string {
  const lines = [`release ${listing.release}`];
  for (const f of listing.files) {
    if (CONTROL.test(f.destination)) {
      throw new ConfigConflict(`release ${listing.release} of ${listing.service} in ${listing.env}: the destination of ${f.name} holds a control character, which format=text cannot carry: read the listing as JSON`);
    }
    lines.push(`${f.sha256} ${f.mode} ${f.url} ${f.destination}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The text form of a watch's answer. */
export function watchReleaseText(release: { version: number }): string {
  return `release ${release.version}\n`;
}

export const PULL_SCRIPT_ACCESS_RULES: readonly RouteRule[] = [
  // Any authenticated caller: no capability beyond the gate's authentication, which answers 401
  // to a request without credentials. Anonymous callers pass too where the operator turned the
  // anonymous policy on (`--anonymous-policy`, off by default): the gate gives them an identity
  // and there is no check for it to fail. Acceptable: the script is static and holds no data.
  { method: 'GET', url: '/config/v1/pull.sh', access: () => [] },
];

/** `GET /config/v1/pull.sh` on `app` (whose gate must have PULL_SCRIPT_ACCESS_RULES). */
export function pullScriptRoutes(app: FastifyInstance): void {
  app.get('/config/v1/pull.sh', (_req, reply) => {
    void reply.type('text/x-shellscript; charset=utf-8').header('Cache-Control', 'no-cache');
    return PULL_SCRIPT;
  });
}

/**
 * The script. A template literal: `\${`, `\\` and `` \` `` in it are the script's `${`, `\` and
 * a backquote. Its tests: test/config-pull-sh.e2e.test.ts (busybox sh + busybox wget, dash + curl).
 */
export const PULL_SCRIPT = `#!/bin/sh
# pull.sh: 'slipway config pull [--watch] [--exec CMD]' for images with only a POSIX sh and
# busybox wget or curl (docs/config.md, "pull.sh"). Served by the config center at
# GET /config/v1/pull.sh.
#
# Usage:
#   wget -qO /pull.sh --header "Authorization: Bearer $SLIPWAY_TOKEN" "$CONFIG_SERVER/config/v1/pull.sh"
#   (or: curl -fsSo /pull.sh -H "Authorization: Bearer $SLIPWAY_TOKEN" "$CONFIG_SERVER/config/v1/pull.sh")
#   sh /pull.sh [--dir DIR] [--watch [--wait SECONDS]] [--exec CMD] [--server URL] [--service NAME] [--env NAME]
#
#   CONFIG_SERVER, SERVICE, SLIPWAY_CONFIG_ENV  the config center, service and environment
#                       (what Slipway gives its tasks; --server, --service, --env instead)
#   SLIPWAY_TOKEN       optional, sent as Authorization: Bearer (curl reads it from a pipe; wget
#                       has it on its command line, where 'ps' in the same container shows it)
#   DIR                 where the files go, default $SLIPWAY_CONFIG_DIR, else '.': a destination
#                       /etc/app/app.yaml is DIR/etc/app/app.yaml, never outside DIR (.. refused)
#   --watch             then follow new releases (long poll of /config/v1/watch) and pull each
#   --wait SECONDS      how long the config center holds each long poll (1 to 60, default 60)
#   --exec CMD          run 'sh -c CMD' after each change on disk (the first pull's included), with
#                       SLIPWAY_CONFIG_RELEASE set to the release pulled
#
# Each file is fetched to a temporary file beside its destination, checked against the SHA-256 the
# release lists, given its mode, and renamed into place once every file of the release is there
# and checked: a digest mismatch writes nothing. The release pulled is kept in
# DIR/.slipway-config.state ('release N', 'service S', 'env E', then the release's listing lines);
# when the config center cannot be reached (no answer, or a 5xx) and that file is there, the files
# on disk stay and the script exits 0 (with --watch, it keeps them and keeps trying). It reads
# GET /config/v1/files?service=&env=&format=text ('release N', then 'sha256 mode url destination'
# per file) and GET /config/v1/watch?service=&env=&since=N&format=text ('release M', or 304),
# each with instance=$MESOS_TASK_ID when it is set (a gray release is for some instances).
#
# Exit: 0 pulled (or kept, above); 1 refused (a digest mismatch, a destination outside DIR, an
# HTTP error such as 401, 403 or 404), or unreachable with nothing pulled before; 2 bad usage.
# Needs: sh, curl or wget (curl when both are there), sha256sum, mkdir, chmod, mv, rm, sleep;
# timeout if there is one (bounds each request).

set -u
set -f
umask_was=$(umask)
umask 077

server=\${CONFIG_SERVER:-}
service=\${SERVICE:-}
env=\${SLIPWAY_CONFIG_ENV:-}
dir=\${SLIPWAY_CONFIG_DIR:-.}
# The task's id: a gray release's members get it (a task id outside [A-Za-z0-9._-] is not sent).
instance=\${MESOS_TASK_ID:-}
case $instance in *[!A-Za-z0-9._-]*) instance= ;; esac
inst=
[ -n "$instance" ] && inst="&instance=$instance"
watch=0
hold=60
exec_cmd=
has_exec=0

say() { printf 'pull.sh: %s\\n' "$*" >&2; }
usage() {
  say "usage: sh pull.sh [--dir DIR] [--watch [--wait SECONDS]] [--exec CMD] [--server URL] [--service NAME] [--env NAME]"
  exit 2
}
needs_value() { [ "$1" -ge 2 ] || { say "$2 needs a value"; usage; }; }

while [ $# -gt 0 ]; do
  case $1 in
    --watch) watch=1 ;;
    --wait) needs_value $# "$1"; hold=$2; shift ;;
    --wait=*) hold=\${1#--wait=} ;;
    --exec) needs_value $# "$1"; exec_cmd=$2; has_exec=1; shift ;;
    --exec=*) exec_cmd=\${1#--exec=}; has_exec=1 ;;
    --dir) needs_value $# "$1"; dir=$2; shift ;;
    --dir=*) dir=\${1#--dir=} ;;
    --server) needs_value $# "$1"; server=$2; shift ;;
    --server=*) server=\${1#--server=} ;;
    --service) needs_value $# "$1"; service=$2; shift ;;
    --service=*) service=\${1#--service=} ;;
    --env) needs_value $# "$1"; env=$2; shift ;;
    --env=*) env=\${1#--env=} ;;
    -h | --help) say "usage: sh pull.sh [--dir DIR] [--watch [--wait SECONDS]] [--exec CMD] [--server URL] [--service NAME] [--env NAME] (the comment atop the script says more)"; exit 0 ;;
    *) say "unknown argument: $1"; usage ;;
  esac
  shift
done

# Names as the config center has them: letters, digits, . _ -, starting with a letter or digit.
valid_name() {
  case $1 in '' | . | .. | [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*) return 1 ;; esac
  [ \${#1} -le 100 ]
}
case $server in
  http://?* | https://?*) ;;
  *) say "CONFIG_SERVER (or --server) must be the config center's http:// or https:// URL, not '$server'"; exit 2 ;;
esac
while :; do case $server in */) server=\${server%/} ;; *) break ;; esac; done
valid_name "$service" || { say "SERVICE (or --service) must be a config service's name, not '$service'"; exit 2; }
valid_name "$env" || { say "SLIPWAY_CONFIG_ENV (or --env) must be an environment's name, not '$env'"; exit 2; }
while :; do case $hold in 0?*) hold=\${hold#0} ;; *) break ;; esac; done
case $hold in
  '' | 0 | *[!0-9]*) say "--wait must be a whole number of seconds from 1, not '$hold'"; exit 2 ;;
esac
[ \${#hold} -le 2 ] && [ "$hold" -le 60 ] || hold=60
case \${SLIPWAY_TOKEN:-} in
  *[!A-Za-z0-9._~+/=-]*) say "SLIPWAY_TOKEN holds characters a token does not have"; exit 2 ;;
esac
[ -n "$dir" ] || dir=.
case $dir in -*) dir=./$dir ;; esac
mkdir -p "$dir" || { say "cannot make $dir"; exit 1; }
# Paths are "$root/<relative path>": root is "" for /.
root=$dir
while :; do case $root in */) root=\${root%/} ;; *) break ;; esac; done
state=$root/.slipway-config.state
work=$root/.slipway-config.$$

if command -v curl >/dev/null 2>&1; then
  client=curl
elif command -v wget >/dev/null 2>&1; then
  client=wget
else
  say "needs curl or wget"
  exit 1
fi
command -v sha256sum >/dev/null 2>&1 || { say "needs sha256sum"; exit 1; }
# wget's own timeouts differ between builds (busybox's may have none): timeout bounds it.
limited=0
if [ "$client" = wget ] && command -v timeout >/dev/null 2>&1 && timeout 5 true >/dev/null 2>&1; then limited=1; fi

# The temporary files of a pull whose files are not all renamed into place yet: DIR/...tmp of
# each path listed in $work.plan.
drop_pending() {
  [ -f "$work.plan" ] || return 0
  while IFS= read -r p <&3; do rm -f "$p.slipway-$$.tmp"; done 3<"$work.plan"
  rm -f "$work.plan"
}
cleanup() {
  drop_pending
  rm -f "$work.body" "$work.err" "$work.list" "$work.state"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# A SHA-256 in hex, from stdin (a file name could make sha256sum's output start with a backslash).
sha256_of() {
  s=$(sha256sum <"$1") || return 1
  printf '%s' "\${s%% *}"
}

limit() {
  t=$1
  shift
  if [ "$limited" = 1 ]; then timeout "$t" "$@"; else "$@"; fi
}

# get URL OUT SECONDS: the body of URL in OUT. Sets 'status' (the HTTP status, 000 without a
# whole answer) and, unless 2xx, 'why'. Answers 0 on 2xx.
get() {
  status=000
  why=
  rm -f "$2" "$work.err"
  if [ "$client" = curl ]; then
    # The token through a pipe (-K -), off the command line.
    status=$(
      if [ -n "\${SLIPWAY_TOKEN:-}" ]; then printf 'header = "Authorization: Bearer %s"\\n' "$SLIPWAY_TOKEN"; fi |
        curl -sS -K - -o "$2" -w '%{http_code}' --connect-timeout 10 --max-time "$3" "$1" 2>"$work.err"
    ) || status=000
  else
    if [ -n "\${SLIPWAY_TOKEN:-}" ]; then
      limit "$3" wget -q -S -O "$2" --header "Authorization: Bearer $SLIPWAY_TOKEN" "$1" 2>"$work.err"
    else
      limit "$3" wget -q -S -O "$2" "$1" 2>"$work.err"
    fi
    ok=$?
    # wget -S prints each answer's status line ("  HTTP/1.1 304 Not Modified"): the last one counts.
    while IFS= read -r l; do
      case $l in *HTTP/[0-9]*' '[0-9][0-9][0-9]*)
        r=\${l#*HTTP/}
        r=\${r#* }
        status=\${r%%[!0-9]*}
        ;;
      esac
    done <"$work.err"
    if [ "$ok" != 0 ]; then
      case $status in 2??) status=000 ;; esac
    fi
  fi
  case $status in
    2??) return 0 ;;
    000) why="no answer from $server ($(last_line "$work.err"))" ;;
    *) why="HTTP $status $(first_line "$2")" ;;
  esac
  return 1
}
first_line() {
  f=
  [ -f "$1" ] && IFS= read -r f <"$1"
  printf '%s' "$f"
}
last_line() {
  f=
  if [ -f "$1" ]; then
    while IFS= read -r l; do [ -z "$l" ] || f=$l; done <"$1"
  fi
  printf '%s' "\${f:-gone before answering}"
}
# The answer says the config center cannot be reached (no answer, or a 5xx of it or a proxy).
unreachable() {
  case $status in 000 | 5??) return 0 ;; esac
  return 1
}

# rel_of DESTINATION: sets 'rel', the path under DIR (without empty and . components); fails on
# a .. component, on nothing left, and on DIR's own .slipway-config* files.
rel_of() {
  rel=
  ifs_was=$IFS
  IFS=/
  for part in $1; do
    case $part in
      '' | .) ;;
      ..) IFS=$ifs_was; return 1 ;;
      *) rel=\${rel:+$rel/}$part ;;
    esac
  done
  IFS=$ifs_was
  case $rel in '' | .slipway-config | .slipway-config.* | .slipway-config/*) return 1 ;; esac
  return 0
}

# The release kept in DIR's state file (of this service and environment), or "".
kept_release() {
  l1=
  l2=
  l3=
  if [ -f "$state" ]; then
    {
      IFS= read -r l1
      IFS= read -r l2
      IFS= read -r l3
    } <"$state"
  fi
  [ "$l2" = "service $service" ] && [ "$l3" = "env $env" ] || return 0
  case \${l1#release } in '' | *[!0-9]*) ;; *) printf '%s' "\${l1#release }" ;; esac
}

# pull: the current release under DIR. Sets 'release' and 'changed' (1 when a file was written or
# the release is another one). Answers 0 done, 1 refused, 2 unreachable ('why' says why).
pull() {
  changed=0
  if ! get "$server/config/v1/files?service=$service&env=$env$inst&format=text" "$work.list" 30; then
    if unreachable; then return 2; fi
    say "the files of $service in $env: $why"
    return 1
  fi
  listed=
  # The paths of this release so far, one a line between newlines: two destinations may name one
  # file (/etc/a and etc/a), which would leave half a release.
  seen='
'
  rm -f "$work.plan" "$work.state"
  : >"$work.plan"
  while IFS= read -r line <&3; do
    if [ -z "$listed" ]; then
      listed=\${line#release }
      case $line in "release "[0-9]*) ;; *) listed=x ;; esac
      case $listed in *[!0-9]*)
        say "the config center's listing does not start with 'release N': '$line'"
        drop_pending
        return 1
        ;;
      esac
      printf 'release %s\\nservice %s\\nenv %s\\n' "$listed" "$service" "$env" >"$work.state"
      continue
    fi
    # sha256 mode url destination: the destination last, as it is (spaces included).
    sha=\${line%% *}
    rest=\${line#* }
    mode=\${rest%% *}
    rest=\${rest#* }
    url=\${rest%% *}
    dest=\${rest#* }
    case $sha in *[!0-9a-f]*) sha= ;; esac
    case $mode in 0[0-7][0-7][0-7]) ;; *) mode= ;; esac
    # Only this config center's own paths: the token goes nowhere else.
    case $url in /config/v1/files/*) ;; *) url= ;; esac
    if [ \${#sha} != 64 ] || [ -z "$mode" ] || [ -z "$url" ] || [ "$dest" = "$rest" ]; then
      say "release $listed: a listing line is not 'sha256 mode url destination': '$line'"
      drop_pending
      return 1
    fi
    if ! rel_of "$dest"; then
      say "release $listed: refused: the destination '$dest' is not a file under $dir (.. or DIR's own .slipway-config files); nothing written"
      drop_pending
      return 1
    fi
    path=$root/$rel
    if [ -d "$path" ]; then
      say "release $listed: refused: $path (of '$dest') is a directory; nothing written"
      drop_pending
      return 1
    fi
    case $seen in *"
$rel
"*)
      say "release $listed: refused: '$dest' is the file $path of another destination too; nothing written"
      drop_pending
      return 1
      ;;
    esac
    seen="$seen$rel
"
    printf '%s\\n' "$line" >>"$work.state"
    # The same bytes there already: only the mode.
    if [ -f "$path" ] && [ "$(sha256_of "$path")" = "$sha" ]; then
      chmod "$mode" "$path" || { drop_pending; return 1; }
      continue
    fi
    parent=\${path%/*}
    if [ -n "$parent" ] && ! mkdir -p "$parent"; then
      say "cannot make $parent"
      drop_pending
      return 1
    fi
    tmp=$path.slipway-$$.tmp
    printf '%s\\n' "$path" >>"$work.plan"
    if ! get "$server$url" "$tmp" 60; then
      drop_pending
      if unreachable; then return 2; fi
      say "release $listed, $dest: $why"
      return 1
    fi
    got=$(sha256_of "$tmp")
    if [ "$got" != "$sha" ]; then
      say "release $listed: refused: $dest has the SHA-256 $got, not $sha as the release lists; nothing written"
      drop_pending
      return 1
    fi
    chmod "$mode" "$tmp" || { drop_pending; return 1; }
  done 3<"$work.list"
  if [ -z "$listed" ]; then
    say "the config center's listing is empty"
    drop_pending
    return 1
  fi
  # Every file there and checked: into place, each by a rename.
  while IFS= read -r p <&3; do
    if ! mv -f "$p.slipway-$$.tmp" "$p"; then
      say "cannot rename into $p"
      drop_pending
      return 1
    fi
    changed=1
  done 3<"$work.plan"
  rm -f "$work.plan"
  [ "$listed" = "\${release:-}" ] || changed=1
  release=$listed
  mv -f "$work.state" "$state" || say "cannot write $state"
  return 0
}

run_exec() {
  [ "$has_exec" = 1 ] || return 0
  (
    umask "$umask_was"
    SLIPWAY_CONFIG_RELEASE=$release
    export SLIPWAY_CONFIG_RELEASE
    exec sh -c "$exec_cmd"
  ) || say "--exec exited with $?"
}

pulled() {
  if [ "$changed" = 1 ]; then
    say "pulled release $release of $service in $env into $dir"
    run_exec
  else
    say "up to date with release $release of $service in $env in $dir"
  fi
}

release=$(kept_release)
pull
case $? in
  0) pulled ;;
  2)
    if [ -z "$release" ]; then
      say "the config center cannot be reached: $why; and no release was pulled into $dir before"
      exit 1
    fi
    say "the config center cannot be reached: $why; release $release stays in $dir"
    ;;
  *) exit 1 ;;
esac
[ "$watch" = 1 ] || exit 0

backoff=1
while :; do
  if get "$server/config/v1/watch?service=$service&env=$env&since=$release&wait=$hold$inst&format=text" "$work.body" $((hold + 30)); then
    pull
    case $? in
      0) pulled; backoff=1; continue ;;
      2) say "pull: $why; again in $backoff s" ;;
      *) say "pull refused; release $release stays; again in $backoff s" ;;
    esac
  elif [ "$status" = 304 ]; then
    backoff=1
    continue
  else
    say "watch: $why; again in $backoff s"
  fi
  sleep "$backoff"
  backoff=$((backoff * 2))
  [ "$backoff" -le 30 ] || backoff=30
done
`;

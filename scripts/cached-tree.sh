# A folder built once and cached, sourced by portabled-rootfs.sh and vm-rootfs.sh (bash). The caller sets CACHE,
# STAMP (what the build is) and STAMP_FILE (its name inside the finished folder) and defines die().
#
#   cache_is_complete            the cache holds the current stamp
#   cache_reuse_or_lock NAME     prints the cache and exits when complete; else takes the build lock (flock(1),
#                                waiting with a message), re-checks, and removes leftovers of interrupted builds
#   cache_begin_build LOGNAME    TMP (a fresh folder beside the cache) and LOG in it; on a failing exit the log's
#                                tail goes to stderr; TMP goes on every exit
#   cache_install DIR            writes the stamp into DIR, renames it into place (an older cache moved aside
#                                first, then removed) and prints the cache
#
# The cache is never modified once in place: a half-built tree never looks complete to a later run.

cache_is_complete() { [ -f "$CACHE/$STAMP_FILE" ] && [ "$(cat "$CACHE/$STAMP_FILE")" = "$STAMP" ]; }

# Removes a build tree, first unmounting whatever an interrupted debootstrap left mounted in it
# (its second stage mounts proc/sys into the target); rm --one-file-system would not cross those.
remove_tree() {
  local dir="$1" m
  [ -e "$dir" ] || return 0
  { findmnt -rn -o TARGET 2>/dev/null || true; } | { grep -F -- "$dir/" || true; } | sort -r |
    while read -r m; do umount -l -- "$(printf '%b' "$m")" 2>/dev/null || true; done
  rm -rf --one-file-system -- "$dir"
}

cache_reuse_or_lock() {
  local who="$1" old
  CACHE="${CACHE%/}"
  [ -n "$CACHE" ] && [ "$CACHE" != / ] || die "refusing to use '/' as cache"
  # Fast path, no lock needed: a complete cache is only ever replaced by rename.
  if cache_is_complete; then
    printf '%s\n' "$CACHE"
    exit 0
  fi
  PARENT="$(dirname "$CACHE")"
  NAME="$(basename "$CACHE")"
  mkdir -p "$PARENT"
  exec 9>"$PARENT/.$NAME.lock"
  if ! flock -n 9; then
    printf '%s: waiting for another build of %s\n' "$who" "$CACHE" >&2
    flock 9
  fi
  if cache_is_complete; then # built by whoever held the lock
    printf '%s\n' "$CACHE"
    exit 0
  fi
  # Leftovers of interrupted builds (we hold the lock, so nobody is using them).
  for old in "$PARENT/.$NAME.tmp."* "$PARENT/.$NAME.old."*; do
    if [ -e "$old" ]; then remove_tree "$old"; fi
  done
  CACHE_WHO="$who"
}

cache_cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '%s: build of %s failed (exit %s); last lines of the log:\n' "$CACHE_WHO" "$CACHE" "$rc" >&2
    tail -n 40 "$LOG" >&2 || true
  fi
  remove_tree "$TMP"
}

cache_begin_build() {
  TMP="$(mktemp -d "$PARENT/.$NAME.tmp.XXXXXX")"
  LOG="$TMP/$1"
  trap cache_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

cache_install() {
  local dir="$1" old=""
  printf '%s\n' "$STAMP" >"$dir/$STAMP_FILE"
  sync -f "$dir/$STAMP_FILE" 2>/dev/null || true
  if [ -e "$CACHE" ] || [ -L "$CACHE" ]; then
    old="$PARENT/.$NAME.old.$$"
    mv -T "$CACHE" "$old"
  fi
  mv -T "$dir" "$CACHE"
  if [ -n "$old" ]; then remove_tree "$old"; fi
  printf '%s\n' "$CACHE"
}

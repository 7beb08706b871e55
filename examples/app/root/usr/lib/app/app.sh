#!/usr/bin/bash
# Counts its starts in its StateDirectory= (kept across reattach) and says which base it runs on.
count=/var/lib/app/count
n=$(cat "$count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$count"
. /etc/os-release
echo "app start $n on base $IMAGE_ID $IMAGE_VERSION"
while true; do date; sleep 5; done

#!/bin/sh
# gofuse-diff.sh regenerates third_party/go-fuse.patch: cowvol's changes to
# go-fuse, as `diff -ruN` of the pristine module (from the Go module cache,
# downloaded if missing) against third_party/go-fuse. See
# third_party/go-fuse/PATCHES.md.
#
#   third_party/gofuse-diff.sh          rewrite third_party/go-fuse.patch
#   third_party/gofuse-diff.sh -check   exit 1 if it is out of date
set -eu

# The upstream version third_party/go-fuse is a copy of.
VERSION=v2.12.1
# The module's directories left out of the copy: nothing kept imports them.
OMITTED=".github benchmark example newunionfs virtiofs zipfs internal/vhostuser"

here=$(cd "$(dirname "$0")" && pwd)
pristine=$(cd "$here/.." && go mod download -json "github.com/hanwen/go-fuse/v2@$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
if [ -z "$pristine" ] || [ ! -d "$pristine" ]; then
	echo "gofuse-diff: no module cache copy of go-fuse $VERSION" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -R "$pristine" "$tmp/a"
chmod -R u+w "$tmp/a"
for d in $OMITTED; do
	rm -rf "${tmp:?}/a/$d"
done
ln -s "$here/go-fuse" "$tmp/b"

# diff exits 1 when the trees differ. The timestamps are cut from the file
# headers so that the patch only changes when the code does.
status=0
(cd "$tmp" && diff -ruN -x PATCHES.md a b/) >"$tmp/diff" || status=$?
if [ "$status" -gt 1 ]; then
	exit "$status"
fi
sed -E 's#^((---|\+\+\+) [^	]*)	.*#\1#' "$tmp/diff" >"$tmp/patch"

if [ "${1:-}" = "-check" ]; then
	if ! cmp -s "$tmp/patch" "$here/go-fuse.patch"; then
		echo "gofuse-diff: third_party/go-fuse.patch is out of date: run third_party/gofuse-diff.sh" >&2
		exit 1
	fi
	exit 0
fi
cp "$tmp/patch" "$here/go-fuse.patch"
echo "wrote third_party/go-fuse.patch: $(grep -c '^[-+][^-+]' "$here/go-fuse.patch") changed lines"

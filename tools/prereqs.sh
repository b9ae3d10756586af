#!/usr/bin/env bash
# `make prereqs`: installs, on a Debian machine, as root, whatever the tests
# need and this machine lacks, and checks FUSE and loop devices. What is
# there already is left alone, so a second run installs nothing. Needs no
# stdin. `make test` runs it first when run as root.
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
export PATH="${PATH:-}:/usr/local/sbin:/usr/sbin:/sbin"
GO="${GO:-go}"

if [ "$(id -u)" != 0 ]; then
	echo "make prereqs: must run as root (apt-get, modprobe)" >&2
	exit 1
fi

# command -> Debian package that provides it
declare -A pkg_of=(
	[make]=make
	[gcc]=gcc # cgo, for -race
	[git]=git # cowvol --version's revision (make build)
	[fusermount3]=fuse3
	[mkfs.ext4]=e2fsprogs
	[e2fsck]=e2fsprogs
	[losetup]=mount
	[mount]=mount
	[umount]=mount
	[fstrim]=util-linux
	[fio]=fio
	[aws]=awscli                   # the AWS CLI itself drives the daemon in integration/awscli_test.go
	[systemd-analyze]=systemd      # verifies contrib/systemd/cowvol.service (systemd/unit_test.go)
)
missing=()
for cmd in "${!pkg_of[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
done
need_modprobe=false
{ [ -e /dev/fuse ] && [ -e /dev/loop-control ]; } || need_modprobe=true
if $need_modprobe && ! command -v modprobe >/dev/null 2>&1; then
	missing+=(kmod)
fi
if [ "${#missing[@]}" -gt 0 ]; then
	mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
	echo "make prereqs: installing: ${pkgs[*]}"
	apt-get update -q </dev/null
	apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null
else
	echo "make prereqs: all required commands present; installing no package"
fi

if [ ! -e /dev/fuse ]; then
	echo "make prereqs: /dev/fuse missing; modprobe fuse"
	modprobe fuse || true
fi
[ -e /dev/fuse ] || { echo "make prereqs: no /dev/fuse (modprobe fuse failed)" >&2; exit 1; }
if [ ! -e /dev/loop-control ]; then
	echo "make prereqs: /dev/loop-control missing; modprobe loop"
	modprobe loop || true
fi
if ! free_loop="$(losetup -f 2>&1)"; then
	echo "make prereqs: no free loop device: $free_loop" >&2
	exit 1
fi
echo "make prereqs: /dev/fuse present; next free loop device $free_loop"

gobin="$("$GO" env GOPATH)/bin"
# MinIO, the S3-compatible server the snapshot-store tests run against:
# pinned, built once into GOPATH/bin (it takes minutes) and kept there.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c # = miniotest.Version (checked by its test)
if [ -n "${COWVOL_MINIO:-}" ] && [ -x "$COWVOL_MINIO" ]; then
	echo "make prereqs: MinIO at $COWVOL_MINIO"
elif command -v minio >/dev/null 2>&1; then
	echo "make prereqs: MinIO at $(command -v minio)"
elif [ -x "$gobin/minio" ]; then
	echo "make prereqs: MinIO at $gobin/minio"
else
	echo "make prereqs: building MinIO $MINIO_VERSION into $gobin (cached after the first run)"
	GOBIN="$gobin" "$GO" install "github.com/minio/minio@$MINIO_VERSION" </dev/null
fi

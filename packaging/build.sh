#!/usr/bin/env bash
# Builds the ipfix-balancer package with nfpm.
#
#   packaging/build.sh rpm|deb     package $BIN/* into $DIST (run `make build` first;
#                                  `make rpm` / `make deb` do both)
#   packaging/build.sh version     print the package version only
#
# Environment: BIN (default bin), DIST (default dist), ARCH (default GOARCH),
# VERSION (default `git describe --tags --always --dirty`; turned into a valid
# rpm/deb version, see pkg_version), SOURCE_DATE_EPOCH (default the commit time;
# file times in the package). Prints the path of the package it wrote.
#
# nfpm runs through `go run` at a pinned version: nothing is installed and
# go.mod is untouched. v2.45.2 is the newest release whose dependencies all
# come from proxy.golang.org: v2.46+ need go.digitalxero.dev modules, which
# the proxy answers with 403 Forbidden.
set -euo pipefail

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

# pkg_version maps git describe output to a version rpm and dpkg both accept
# and order the way git does ('-' is taken by the release, '~' sorts first):
#   v1.2.3                  1.2.3
#   v1.2.3-rc1              1.2.3~rc1
#   v1.2.3-4-gabc1234       1.2.3+4.gabc1234
#   v1.2.3-4-gabc1234-dirty 1.2.3+4.gabc1234.dirty
#   abc1234[-dirty]         0.0.0~gitabc1234[.dirty]   (no tag yet)
pkg_version() {
	local d=$1 dirty=""
	if [[ $d == 0.0.0~git* ]]; then
		echo "$d"
		return
	fi
	if [[ $d == *-dirty ]]; then
		dirty=.dirty
		d=${d%-dirty}
	fi
	d=${d#v}
	local re_tag='^([0-9][0-9A-Za-z.]*)(-([0-9A-Za-z.]+))?$'
	local re_post='^([0-9][0-9A-Za-z.]*)(-([0-9A-Za-z.]+))?-([0-9]+)-g([0-9a-f]+)$'
	if [[ $d =~ $re_post ]]; then
		local v=${BASH_REMATCH[1]}
		[[ -n ${BASH_REMATCH[3]} ]] && v+="~${BASH_REMATCH[3]}"
		echo "$v+${BASH_REMATCH[4]}.g${BASH_REMATCH[5]}$dirty"
	elif [[ $d =~ ^[0-9a-f]{7,40}$ ]]; then
		echo "0.0.0~git$d$dirty"
	elif [[ $d =~ $re_tag ]]; then
		local v=${BASH_REMATCH[1]}
		[[ -n ${BASH_REMATCH[3]} ]] && v+="~${BASH_REMATCH[3]}"
		echo "$v${dirty:++0$dirty}"
	else
		# A tag that is not a version ("prod", "x-1"): keep only the commit.
		local sha
		sha=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
		echo "0.0.0~git$sha$dirty"
	fi
}

usage() {
	echo "usage: $0 rpm|deb|version" >&2
	exit 2
}

[[ $# -eq 1 ]] || usage
cd "$(dirname "$0")/.."

if [[ -n ${VERSION:-} ]]; then
	describe=$VERSION
elif git describe --tags >/dev/null 2>&1; then
	describe=$(git describe --tags --always --dirty)
else
	# No tag: git describe --always prints the bare commit, which may even
	# look like a number; say so explicitly.
	describe=$(git describe --always --dirty 2>/dev/null || echo unknown)
	describe=0.0.0~git${describe/-dirty/.dirty}
fi
export VERSION
VERSION=$(pkg_version "$describe")
case $1 in
version)
	echo "$VERSION"
	exit 0
	;;
rpm | deb) packager=$1 ;;
*) usage ;;
esac

export BIN=${BIN:-bin} ARCH=${ARCH:-$(go env GOARCH)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
DIST=${DIST:-dist}
for b in ipfix-balancer ipfix-loader ipfix-gen; do
	if [[ ! -x $BIN/$b ]]; then
		echo "$0: $BIN/$b missing: run make build first" >&2
		exit 1
	fi
done
mkdir -p "$DIST"

# nfpm names the file: ipfix-balancer-<version>-1.<arch>.rpm, ipfix-balancer_<version>-1_<arch>.deb,
# and says so: "created package: <path>".
log=$(go run "$NFPM" package --config packaging/nfpm.yaml --packager "$packager" --target "$DIST/" 2>&1) || {
	echo "$log" >&2
	exit 1
}
echo "$log" >&2
out=$(sed -n 's/^created package: //p' <<<"$log")
if [[ ! -f $out ]]; then
	echo "$0: nfpm did not say which file it wrote" >&2
	exit 1
fi
echo "$out"

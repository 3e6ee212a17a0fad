#!/bin/bash
# `make deb`: builds the Debian packages from a copy of the source tree into build/deb/
# (basisnetd_*.deb, basisnetd-train_*.deb, the -dbgsym package, .buildinfo, .changes), then
# runs lintian on them. The copy holds what `make` builds from: the work tree's files that
# git does not ignore, without node_modules (benchmark tooling); outside a git checkout the
# whole tree without build/ and .git. It is built at a fixed path,
# build/deb/basisnetd-VERSION, and removed afterwards. docs/packaging.md.
# Environment: DEB_OUT (output directory, default build/deb), LINTIAN=0 skips lintian.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEB_OUT:-build/deb}
for tool in dpkg-buildpackage dh fakeroot; do
    command -v "$tool" >/dev/null || { echo "deb: $tool is missing: run make deps" >&2; exit 1; }
done
version=$(dpkg-parsechangelog -S Version)
src=$out/basisnetd-$version
rm -rf "$src"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
        case /$f in */node_modules/*) continue;; esac
        [ -e "$f" ] && printf '%s\0' "$f"
    done \
        | tar -c --null -T - -f - | tar -x -C "$src"
else
    tar -c --exclude=./build --exclude=./.git --exclude=node_modules -f - . | tar -x -C "$src"
fi
rm -f "$out"/basisnetd*_"$version"_*.deb "$out"/basisnetd*_"$version"_*.ddeb \
      "$out"/basisnetd_"$version"_*.buildinfo "$out"/basisnetd_"$version"_*.changes
(cd "$src" && dpkg-buildpackage -us -uc -b -jauto)
rm -rf "$src"
ls -l "$out"/basisnetd*_"$version"_*.deb
if [ "${LINTIAN:-1}" != 0 ]; then
    command -v lintian >/dev/null || { echo "deb: lintian is missing: run make deps" >&2; exit 1; }
    lintian --fail-on error,warning --info "$out/basisnetd_${version}_amd64.changes"
fi

#!/bin/bash
# Every relative link and picture in the repository's Markdown files resolves: the file
# exists and a #fragment names a heading of it (tools/docs/check_links.py). Then the checker
# itself is checked on a page with a missing file and a missing heading, which it must
# report. < 1 s.
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
failed=0
"$PY" tools/docs/check_links.py || { echo "FAIL: broken links above"; failed=1; }
printf '# T\n[a](nosuch.md) [b](#nosuch) [c](#t) `[d](inside-code.md)`\n' > "$T/t.md"
out=$("$PY" tools/docs/check_links.py "$T/t.md" 2>/dev/null)
n=$(printf '%s\n' "$out" | grep -c 'link to' || true)
if [ "$n" -ne 2 ] || ! grep -q 'nosuch.md: no such file' <<<"$out" || ! grep -q "no heading '#nosuch'" <<<"$out"; then
    echo "FAIL: the checker should report exactly the two broken links of a test page, got:"; echo "$out"
    failed=1
fi
[ "$failed" -eq 0 ] && echo "ok: every Markdown link resolves"
exit "$failed"

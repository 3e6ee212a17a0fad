#!/usr/bin/python3
"""Checks every relative link and picture of the repository's Markdown files: the file it
names must exist, and a #fragment must be a heading of that file (GitHub's anchors:
lower case, punctuation dropped, spaces as '-', repeats numbered -1, -2, ...). Links to
http(s)/mailto are not fetched. Code blocks and `code spans` are skipped.

Usage: /usr/bin/python3 tools/docs/check_links.py [FILE.md ...]   (default: every *.md
git tracks, or every *.md under the current directory outside .git and build*)
Prints FILE:LINE: message per broken link; exit 1 if any, 0 otherwise."""
import os
import re
import subprocess
import sys

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def md_files():
    try:
        out = subprocess.run(["git", "ls-files", "*.md"], capture_output=True, text=True, check=True)
        files = [f for f in out.stdout.split("\n") if f]
        if files:
            return files
    except (OSError, subprocess.CalledProcessError):
        pass
    found = []
    for root, dirs, names in os.walk("."):
        dirs[:] = [d for d in dirs if d != ".git" and not d.startswith("build")]
        found += [os.path.join(root, n)[2:] for n in names if n.endswith(".md")]
    return sorted(found)


def text_lines(path):
    """(line number, text) outside fenced code blocks, with code spans blanked."""
    fence = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"\s*(```|~~~)", line)
            if m:
                fence = None if fence == m.group(1) else (fence or m.group(1))
                continue
            if fence:
                continue
            yield n, re.sub(r"`[^`]*`", "``", line)


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen, out = {}, set()
        fence = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"\s*(```|~~~)", line)
                if m:
                    fence = None if fence == m.group(1) else (fence or m.group(1))
                    continue
                m = None if fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
                if m:
                    base = slug(m.group(1).replace("`", ""))
                    k = seen.get(base, 0)
                    out.add(base if k == 0 else "%s-%d" % (base, k))
                    seen[base] = k + 1
        _anchors[path] = out
    return _anchors[path]


def check(path):
    bad = []
    for n, line in text_lines(path):
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r"[a-z][a-z0-9+.-]*:", target):      # http:, https:, mailto:
                continue
            file_part, _, frag = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                bad.append("%s:%d: link to %s: no such file" % (path, n, target))
            elif frag and dest.endswith(".md") and frag not in anchors(dest):
                bad.append("%s:%d: link to %s: %s has no heading '#%s'" % (path, n, target, dest, frag))
    return bad


def main():
    files = sys.argv[1:] or md_files()
    bad = [b for f in files for b in check(f)]
    for b in bad:
        print(b)
    print("check_links: %d files, %d broken links" % (len(files), len(bad)), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

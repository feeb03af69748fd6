#!/usr/bin/env python3
"""Renders every page in man/ as man-db and groff do and fails on any warning.

    check_man_pages.py MAN_DIR

For each page: `man --warnings -E UTF-8 -l PAGE` (what a reader's man does, with groff's
warnings on), `groff -man -ww -z PAGE` (every troff warning) and `lexgrog PAGE` (the
NAME line mandb indexes for whatis and apropos). Anything on standard error, or a
failing exit status, fails the test. Without man-db or groff the test is skipped
(exit 77, ctest's SKIP_RETURN_CODE) with a message saying so; when the CI environment
variable is set it fails instead, since tools/install-deps installs both there.
"""
import glob
import os
import shutil
import subprocess
import sys

TOOLS = {"man": "man-db", "lexgrog": "man-db", "groff": "groff-base"}


def main():
    if len(sys.argv) != 2:
        print("usage: check_man_pages.py MAN_DIR", file=sys.stderr)
        return 64
    man_dir = sys.argv[1]
    missing = sorted({package for tool, package in TOOLS.items() if not shutil.which(tool)})
    if missing:
        why = "needs %s (tools/install-deps installs them)" % " and ".join(missing)
        print("*** SKIPPED: man pages not rendered: " + why, file=sys.stderr)
        if os.environ.get("CI"):
            print("*** FAILED: CI is set, so the man pages must be checked", file=sys.stderr)
            return 1
        return 77

    pages = sorted(glob.glob(os.path.join(man_dir, "*.[1-8]")))
    if not pages:
        print("no man pages found in " + man_dir, file=sys.stderr)
        return 1
    # A fixed width and locale, so a result does not depend on the terminal or on the
    # locales the machine has (a missing one makes man warn).
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", LANG="C.UTF-8")
    env.pop("MANOPT", None)
    env.pop("MANROFFOPT", None)
    failed = 0
    for page in pages:
        before = failed
        for command in (["man", "--warnings", "-E", "UTF-8", "-l", page],
                        ["groff", "-man", "-ww", "-z", page],
                        ["lexgrog", page]):
            run = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, timeout=60)
            if run.returncode != 0 or run.stderr:
                failed += 1
                print("FAIL %s (exit %d)" % (" ".join(command), run.returncode))
                sys.stdout.write(run.stderr.decode(errors="replace"))
                if command[0] == "lexgrog":
                    sys.stdout.write(run.stdout.decode(errors="replace"))
        if failed == before:
            print("ok   " + page)
    if failed:
        print("%d check(s) failed; render a page with: man --warnings -E UTF-8 -l PAGE >/dev/null" % failed)
        return 1
    print("%d man pages render without warnings" % len(pages))
    return 0


if __name__ == "__main__":
    sys.exit(main())

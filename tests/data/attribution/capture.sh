#!/bin/sh
# Capture the samples of tests/test_attribution.py from the real tools:
#   PATH=/work/venv/bin:$PATH sh tests/data/attribution/capture.sh
# Each sample, NAME.raw, is the tool's output (both streams in one pipe, as pre-commit reads
# them). The test reads NAME.txt: the same lines, each prefixed with the file it is about ("-"
# for none) and "|", written by a person who read the output.
set -u
out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cd "$work" || exit 1
printf 'import os\nx = 1\n' > a.py; printf 'y = 2\n' > b.py
printf 'import sys\n' > c.py; printf 'z=3\n' > d.py
printf 'a: 1\nb:  2\n' > a.yaml; printf -- '---\nb: 2\n' > b.yaml; printf 'c:   1  \n' > c.yaml
printf '#!/bin/sh\necho $x\n' > a.sh; printf '#!/bin/sh\necho hi\n' > b.sh
printf '#!/bin/sh\ncd $d\nls $y\n' > c.sh
printf 'int main(){int a[2]; a[3]=0; return 0;}\n' > a.c; printf 'int f(){return 1;}\n' > b.c
printf 'int g(){char *p=0; return *p;}\n' > c.c
printf 'var a = 1;\n' > a.js; printf 'let b = 2;\n' > b.js; printf 'x();\nfoo();\n' > c.js
printf 'teh cat\n' > a.txt; printf 'ok\n' > b.txt; printf 'recieve\n' > c.txt
sample() {  # NAME FILES... -- COMMAND...
    name=$1; shift; files=""
    while [ "$1" != "--" ]; do files="$files $1"; shift; done; shift
    { echo "# files:$files"; "$@" $files 2>&1 | sed "s|$work/|/w/|g"; } > "$out/$name.raw"
}
py="a.py b.py c.py d.py"
sample flake8 $py -- flake8
sample ruff-full $py -- ruff check --no-cache --output-format=full
sample ruff-concise $py -- ruff check --no-cache --output-format=concise
sample ruff-grouped $py -- ruff check --no-cache --output-format=grouped
sample pycodestyle $py -- pycodestyle
sample pylint $py -- pylint --exit-zero --score=n
sample isort $py -- isort --check-only
sample black $py -- black --check
sample yamllint-standard a.yaml b.yaml c.yaml -- yamllint -f standard
sample yamllint-parsable a.yaml b.yaml c.yaml -- yamllint -f parsable
sample shellcheck-tty a.sh b.sh c.sh -- shellcheck
sample shellcheck-gcc a.sh b.sh c.sh -- shellcheck -f gcc
sample codespell a.txt b.txt c.txt -- codespell
sample cppcheck a.c b.c c.c -- cppcheck
if command -v eslint > /dev/null; then  # npm install --global eslint
    sample eslint-stylish a.js b.js c.js -- eslint --no-config-lookup --rule 'no-undef: error' \
        --rule 'no-unused-vars: warn'
fi
rm -rf "$work"

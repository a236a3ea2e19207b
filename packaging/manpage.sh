#!/usr/bin/env bash
# Writes the man page of one packaged program from its --help, gzipped as
# Debian ships them (help2man; the build runs this, packaging/CMakeLists.txt).
#   manpage.sh HELP2MAN BINARY INSTALLED_NAME VERSION SUMMARY INCLUDE OUT.1.gz
# The page is named after INSTALLED_NAME (navarch-node-agent), which the
# binary's own usage line (node-agent) does not know.
set -euo pipefail
help2man=$1 binary=$2 name=$3 version=$4 summary=$5 include=$6 out=$7
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ln -s "$binary" "$dir/$name"
"$help2man" --no-info --no-discard-stderr --section=1 --source="Navarch $version" \
  --manual=Navarch --version-string="$version" --name="$summary" \
  --include="$include" --output="$dir/$name.1" "$dir/$name"
# The synopsis shows the build's name (or none): use the installed one.
sed -i -E '/^\.SH SYNOPSIS$/,/^\.SH /{s/^\.B( .*)?$/.B '"$name"'/}' "$dir/$name.1"
gzip -9n <"$dir/$name.1" >"$out"

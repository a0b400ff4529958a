#!/usr/bin/env bash
# Copy the jars of the manifest's flink-connectors set with mvn and verify each pinned sha256.
# Usage: fetch-connectors.sh JARS_TOML OUT_DIR
set -euo pipefail
manifest=$1 out=$2
mkdir -p "$out"
awk '/^\[\[jar\]\]/{s="";c="";h=""} /^set =/{gsub(/"/,"",$3);s=$3} /^coordinates =/{gsub(/"/,"",$3);c=$3}
     /^sha256 =/{gsub(/"/,"",$3);h=$3; if (s=="flink-connectors") print c, h}' "$manifest" |
while read -r coords sha; do
  mvn -q -B dependency:copy -Dartifact="$coords" -DoutputDirectory="$out"
  IFS=: read -r _group artifact version <<<"$coords"
  echo "$sha  $out/$artifact-$version.jar" | sha256sum -c -
done

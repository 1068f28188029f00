#!/usr/bin/env bash
# Refresh the API baseline that CI's `buf breaking` compares proto/ against.
#
# Run it only when the API changed on purpose and the change is safe for
# clients: after additions (new messages, fields, RPCs, enum values) have
# merged, or when a breaking change is deliberate (then also say so in the
# commit, and consider a new package version, tally.v2, instead).
#
#   scripts/update-api-baseline.sh           # writes .ci/api-baseline.binpb
#   git add .ci/api-baseline.binpb && git commit -m "API baseline: ..."
#
# Needs buf (npm install -g @bufbuild/buf, or pip install buf-bin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v buf >/dev/null 2>&1 || { echo "buf is not installed (npm install -g @bufbuild/buf)" >&2; exit 1; }

out=.ci/api-baseline.binpb
before=""
[[ -f $out ]] && before=$(sha256sum "$out" | cut -d' ' -f1)
buf lint
# A binary Buf image: every file of the module with its imports, source info
# excluded so that comment edits do not churn the baseline.
buf build --exclude-source-info -o "$out"
after=$(sha256sum "$out" | cut -d' ' -f1)
if [[ $before == "$after" ]]; then
    echo "$out is already up to date"
else
    echo "$out refreshed; commit it"
fi

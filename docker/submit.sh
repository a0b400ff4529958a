#!/usr/bin/env bash
# The one-shot submit of the scoring job (the compose file's `submit` service; the image's entry
# command for a session cluster). Settings: $RISKSTREAM_CONFIG and RISKSTREAM__* variables.
#   1. create the project topics that are missing (kafka.bootstrap_servers);
#   2. train and promote a champion if the registry has none (a first start);
#   3. `flink run` the scoring job on $JOBMANAGER (detached unless SUBMIT_ATTACHED=1).
# Arguments are passed to the job (e.g. --bounded).
set -euo pipefail
: "${JOBMANAGER:=jobmanager:8081}"
: "${FLINK_HOME:=/opt/flink}"
python=${RISKSTREAM_PYTHON:-$(command -v python)}
riskstream=("$python" -m riskstream)

"${riskstream[@]}" kafka create-topics
if ! "${riskstream[@]}" models show >/dev/null 2>&1; then
  echo "no champion in the registry: training one (riskstream train --promote)"
  "${riskstream[@]}" train --promote --quiet
fi
detach=(-d)
if [[ "${SUBMIT_ATTACHED:-0}" == 1 ]]; then detach=(); fi
exec bash "$FLINK_HOME/bin/flink" run -m "$JOBMANAGER" "${detach[@]}" \
  -pym jobs.scoring -pyexec "$python" -pyclientexec "$python" "$@"

#!/usr/bin/env bash
# The long fuzz runs: schemathesis against a real server on SQLite and PostgreSQL, then the
# property tests with many examples. Extra arguments go to bench/fuzz/openapi.py, e.g.
#   bench/fuzz/run.sh --max-examples 500
#   bench/fuzz/run.sh --max-examples 200 --checks all   # also schemathesis's acceptance checks
# PostgreSQL: a scratch database is created and dropped at EVENTYARD_FUZZ_POSTGRES_URL's server
# (default postgresql://postgres@127.0.0.1:5432/postgres); set EVENTYARD_FUZZ_SKIP_POSTGRES=1
# to run SQLite only. HYPOTHESIS_PROFILE=long gives the property tests 1,000 examples each.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
status=0
echo "== schemathesis, SQLite"
$PY bench/fuzz/openapi.py "$@" || status=1
if [ "${EVENTYARD_FUZZ_SKIP_POSTGRES:-0}" != 1 ]; then
    admin=${EVENTYARD_FUZZ_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
    db="eventyard_fuzz_$$"
    psql "$admin" -qc "CREATE DATABASE $db"
    trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
    echo "== schemathesis, PostgreSQL"
    $PY bench/fuzz/openapi.py --database-url "${admin%/*}/$db" "$@" || status=1
fi
echo "== property tests (HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-long})"
HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-long} .venv/bin/pytest -q -p no:cacheprovider \
    --timeout 0 tests/fuzz -k "not openapi" || status=1
exit $status

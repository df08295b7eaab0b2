# Point `verdi` (and python) at the project-local AiiDA profile:   source env.sh
# Exports AIIDA_PATH=<repo>/.aiida (or $QDTRAPS_AIIDA_PATH) and activates <repo>/.venv. Works from any directory.
_qdtraps_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
export AIIDA_PATH="${QDTRAPS_AIIDA_PATH:-$_qdtraps_root/.aiida}"
if [ -f "$_qdtraps_root/.venv/bin/activate" ]; then
    . "$_qdtraps_root/.venv/bin/activate"
else
    echo "env.sh: $_qdtraps_root/.venv does not exist yet; run 'make setup' first" >&2
fi
if [ ! -f "$AIIDA_PATH/config.json" ] && [ ! -f "$AIIDA_PATH/.aiida/config.json" ]; then
    echo "env.sh: no AiiDA profile in $AIIDA_PATH yet; run 'make setup' first" >&2
fi
unset _qdtraps_root

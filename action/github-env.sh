# The GitHub Action's step (action.yml): install keybroker (install.sh), then
# `keybroker env --format github` with the action's config, profile and gateway inputs.
set -euo pipefail
# shellcheck source=install.sh
source "$(dirname "${BASH_SOURCE[0]}")/install.sh"

args=(env --format github)
if [ -n "${KEYBROKER_ACTION_PROFILE:-}" ]; then args+=(--profile "$KEYBROKER_ACTION_PROFILE"); fi
if [ -n "${KEYBROKER_ACTION_GATEWAY:-}" ]; then args+=(--gateway "$KEYBROKER_ACTION_GATEWAY"); fi
if [ -n "${KEYBROKER_ACTION_CONFIG:-}" ]; then
  KEYBROKER_CONFIG="$(cd "$(dirname "$KEYBROKER_ACTION_CONFIG")" && pwd)/$(basename "$KEYBROKER_ACTION_CONFIG")"
  export KEYBROKER_CONFIG
fi
"$KEYBROKER_BIN" "${args[@]}"

#!/usr/bin/env bash
# Remakes the README's screenshots (docs/*.png) from the real-browser story (crates/latchkey/tests/it/browser.rs):
# the consent page in the SDK's popup, the sample site signed in, and "Apps and websites you've allowed", at a
# phone's width. Needs what the browser test needs: Chromium at /usr/bin/chromium and `npm ci` done in
# crates/latchkey/tests/browser. Usage: docs/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/latchkey-target}
SHOTS=$(mktemp -d)
trap 'rm -rf "$SHOTS"' EXIT
CI=true LATCHKEY_TEST_SHOTS="$SHOTS" cargo test -q -p latchkey --test it \
  browser::a_customer_a_developer_and_the_sdk_sample_in_headless_chromium -- --exact
for name in consent sample-signed-in your-apps; do
  cp "$SHOTS/$name.png" "docs/$name.png"
  echo "docs/$name.png: $(($(stat -c %s "docs/$name.png") / 1024)) KB"
done

#!/usr/bin/env bash
# Refresh the web chat page's libraries in src/r1local/webui/vendor/ from the npm registry.
# The built files are committed, so installing r1local needs no Node; run this only to upgrade.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=src/r1local/webui/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null &&
  npm install --no-audit --no-fund marked@15 dompurify@3 katex@0.16 @highlightjs/cdn-assets@11 >/dev/null)
m=$work/node_modules
rm -rf "$dest" && mkdir -p "$dest/fonts"
cp "$m/marked/lib/marked.umd.js" "$dest/marked.js"
cp "$m/dompurify/dist/purify.min.js" "$dest/purify.min.js"
cp "$m/@highlightjs/cdn-assets/highlight.min.js" "$dest/highlight.min.js"
cp "$m/@highlightjs/cdn-assets/styles/github.min.css" "$dest/highlight-light.min.css"
cp "$m/@highlightjs/cdn-assets/styles/github-dark.min.css" "$dest/highlight-dark.min.css"
cp "$m/katex/dist/katex.min.js" "$m/katex/dist/katex.min.css" "$dest/"
cp "$m/katex/dist/fonts/"*.woff2 "$dest/fonts/"
{
  echo "Libraries of the web chat page, copied from npm by scripts/vendor_webui.sh:"
  for p in marked dompurify katex @highlightjs/cdn-assets; do
    node -e "const p=require('$m/$p/package.json'); console.log(p.name+' '+p.version+' ('+p.license+')')"
  done
} > "$dest/VERSIONS.txt"

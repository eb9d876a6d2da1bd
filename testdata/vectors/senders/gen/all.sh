#!/bin/sh
# Regenerates the vector files of the github, standard, stripe, slack and
# shopify presets with Node's crypto (an implementation independent of the
# gateway; shopify.js also checks its signature with openssl) and shows any
# difference from the committed files. Run from the repository root.
set -eu
dir=$(dirname "$0")
for g in github standard stripe slack shopify; do
	node "$dir/$g.js"
done
for g in github standard stripe slack shopify; do
	git diff --exit-code -- "$dir/../$g.json"
done
echo "vectors unchanged"

#!/usr/bin/env bash
# build.sh OUT: builds Traefik's own command (github.com/traefik/traefik/v3/cmd/traefik,
# the version this module requires) into the file OUT, for bench/proxies.sh.
#
# Why not a plain `go build`: a handful of modules that Traefik's ACME DNS
# providers (go-acme/lego) import are not served by the module proxy this
# project can reach (huaweicloud, ucloud, akamai, oracle cloud, sakura cloud,
# yandex cloud SDKs). go.mod therefore replaces lego by ./.lego (not in git),
# a copy of the released lego module that this script makes from the module
# cache, with the one generated file that lists every DNS provider
# (providers/dns/zz_gen_dns_providers.go) minus those six providers (go build
# -overlay may not touch files in the module cache). Nothing on the proxy
# path changes: the benchmark does no ACME. The rest is Traefik's code as
# released.
set -euo pipefail
out=$1
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
missing='edgedns|huaweicloud|oraclecloud|sakuracloud|ucloud|yandexcloud'
# LEGO must be the version Traefik requires (see go.mod's replace).
LEGO=v5.4.1
src="$(cd / && GOFLAGS='' go mod download -json "github.com/go-acme/lego/v5@$LEGO" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[[ -n "$src" ]] || { echo "build.sh: go-acme/lego/v5@$LEGO not found" >&2; exit 1; }
rm -rf .lego
cp -r "$src" .lego
chmod -R u+w .lego
gen=.lego/providers/dns/zz_gen_dns_providers.go
# Drop the import line and the `case "x": return x.NewDNSProvider()` pair of
# each missing provider.
awk -v re="^($missing)\$" '
  /^\t"github.com\/go-acme\/lego\/v5\/providers\/dns\// { n = $1; gsub(/"/, "", n); sub(/.*\//, "", n); if (n ~ re) next }
  /^\tcase / && getline nxt > 0 {
    split(nxt, w, "."); p = w[1]; gsub(/[ \t]|return/, "", p)
    if (p ~ re) next
    print; print nxt; next
  }
  { print }' "$src/providers/dns/zz_gen_dns_providers.go" >"$gen"
if grep -qE "providers/dns/($missing)\"" "$gen"; then
  echo "build.sh: patching $gen failed" >&2
  exit 1
fi
go build -trimpath -o "$out" github.com/traefik/traefik/v3/cmd/traefik

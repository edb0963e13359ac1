#!/bin/sh
# Render /etc/faceauth-gateway/nginx.conf.template with the GATEWAY_* environment (the same placeholders
# localrun/gateway.py fills in for the local run), check the certificate, then run nginx in the foreground.
# Extra arguments go to nginx (e.g. `-t` to only test the configuration).
set -eu

template=${GATEWAY_TEMPLATE:-/etc/faceauth-gateway/nginx.conf.template}

# Defaults (documented in docs/configuration.md). An empty value counts as unset.
: "${GATEWAY_RUNTIME_DIR:=/tmp/faceauth-gateway}"
: "${GATEWAY_ERROR_PAGES_DIR:=/usr/share/faceauth-gateway/errors}"
: "${GATEWAY_UPSTREAM_CONF:=/etc/faceauth-gateway/upstream.conf}"
: "${GATEWAY_HTTPS_LISTEN:=8443}"
: "${GATEWAY_HTTP_LISTEN:=8080}"
: "${GATEWAY_PUBLIC_HTTPS_PORT:=443}"
: "${GATEWAY_TLS_CERT:=/etc/faceauth/tls/fullchain.pem}"
: "${GATEWAY_TLS_KEY:=/etc/faceauth/tls/privkey.pem}"
: "${GATEWAY_ACCESS_LOG:=/dev/stdout}"
: "${GATEWAY_LOGIN_RATE:=30r/m}"
: "${GATEWAY_LOGIN_BURST:=20}"
: "${GATEWAY_MAX_BODY_SIZE:=25m}"
: "${GATEWAY_HSTS_MAX_AGE:=31536000}"
: "${GATEWAY_TRUST_REQUEST_ID:=off}"
: "${GATEWAY_STATIC_MAX_AGE:=1h}"
: "${GATEWAY_ERROR_LOG_LEVEL:=warn}"

names=$(grep -o '\${GATEWAY_[A-Z0-9_]*}' "$template" | sort -u | tr -d '${}')
for name in $names; do
  eval "value=\${$name-}"
  # shellcheck disable=SC2154  # set by eval
  if [ -z "$value" ]; then
    echo "gateway: $name is not set" >&2
    exit 1
  fi
  case "$value" in
    *';'* | *'{'* | *'}'*) echo "gateway: $name must not contain ';' or braces" >&2; exit 1 ;;
  esac
  export "${name?}"
done

for file in "$GATEWAY_TLS_CERT" "$GATEWAY_TLS_KEY"; do
  if [ ! -r "$file" ]; then
    echo "gateway: cannot read $file: mount the certificate folder (GATEWAY_TLS_DIR in .env) and make" \
         "fullchain.pem and privkey.pem readable by uid $(id -u)" >&2
    exit 1
  fi
done

mkdir -p "$GATEWAY_RUNTIME_DIR"
for sub in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$GATEWAY_RUNTIME_DIR/$sub"; done

# The upstream list may name its DNS server as ${GATEWAY_RESOLVER}: by default the container's own, from
# /etc/resolv.conf (Docker's embedded DNS is 127.0.0.11; Podman's is the network's gateway address).
upstream_conf=$GATEWAY_UPSTREAM_CONF
[ -r "$upstream_conf" ] || { echo "gateway: cannot read the upstream list $upstream_conf" >&2; exit 1; }
if grep -q '\${GATEWAY_RESOLVER}' "$upstream_conf"; then
  if [ -z "${GATEWAY_RESOLVER:-}" ]; then
    GATEWAY_RESOLVER=$(awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ { printf "%s%s", sep, $2; sep = " " }' \
      /etc/resolv.conf 2>/dev/null || true)
  fi
  if [ -z "$GATEWAY_RESOLVER" ]; then
    echo "gateway: no IPv4 nameserver in /etc/resolv.conf; set GATEWAY_RESOLVER to the DNS server that" \
         "resolves the compose service names" >&2
    exit 1
  fi
  case "$GATEWAY_RESOLVER" in
    *';'* | *'{'* | *'}'*) echo "gateway: GATEWAY_RESOLVER must not contain ';' or braces" >&2; exit 1 ;;
  esac
  export GATEWAY_RESOLVER
fi
rendered_upstream="$GATEWAY_RUNTIME_DIR/upstream.conf"
# `server NAME resolve` (re-resolving a name while running) needs nginx >= 1.27.3. An older nginx (Debian's,
# on the offline base images) would refuse the configuration: there the names are resolved once, at start,
# and a scaled or re-created auth-web needs a gateway restart.
nginx_version=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9][0-9.]*\).*|\1|p')
version_number=$(echo "$nginx_version" | awk -F. '{ print ($1 * 1000000) + ($2 * 1000) + $3 }')
watch_upstreams=false
if [ "${version_number:-0}" -lt 1027003 ] && grep -q ' resolve;' "$upstream_conf"; then
  echo "gateway: nginx $nginx_version cannot re-resolve upstream names itself (1.27.3 can): it reloads when" \
       "their addresses change (checked every 10 s)" >&2
  envsubst '${GATEWAY_RESOLVER}' < "$upstream_conf" | sed -e 's/ resolve;/;/' -e '/^[[:space:]]*resolver/d' \
    > "$rendered_upstream"
  watch_upstreams=true
else
  envsubst '${GATEWAY_RESOLVER}' < "$upstream_conf" > "$rendered_upstream"
fi
GATEWAY_UPSTREAM_CONF=$rendered_upstream
# Only the template's own placeholders are substituted; nginx's $variables are left alone.
envsubst "$(printf '${%s} ' $names)" < "$template" > "$GATEWAY_RUNTIME_DIR/nginx.conf"

# What `resolve` does on a newer nginx, for an older one: a restarted or scaled auth-web gets new addresses, which
# nginx reads only when it (re)loads its configuration. Not for one-off runs with arguments (`-t`).
upstream_addresses() {
  for host in $(sed -n 's/^[[:space:]]*server[[:space:]][[:space:]]*\([A-Za-z][A-Za-z0-9.-]*\):.*/\1/p' "$rendered_upstream"); do
    getent ahostsv4 "$host" | awk '{ print $1 }'
  done | sort -u | tr '\n' ' '
}
if [ "$watch_upstreams" = true ] && [ "$#" -eq 0 ]; then
  known=$(upstream_addresses)
  (
    while sleep 10; do
      now=$(upstream_addresses)
      if [ -n "$now" ] && [ "$now" != "$known" ]; then
        echo "gateway: upstream addresses changed ($known-> $now): reloading nginx" >&2
        nginx -e stderr -p "$GATEWAY_RUNTIME_DIR" -c "$GATEWAY_RUNTIME_DIR/nginx.conf" -s reload && known=$now
      fi
    done
  ) &
fi

exec nginx -e stderr -p "$GATEWAY_RUNTIME_DIR" -c "$GATEWAY_RUNTIME_DIR/nginx.conf" "$@"

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
: "${GATEWAY_MAX_BODY_SIZE:=17m}"
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
# Only the template's own placeholders are substituted; nginx's $variables are left alone.
envsubst "$(printf '${%s} ' $names)" < "$template" > "$GATEWAY_RUNTIME_DIR/nginx.conf"

exec nginx -e stderr -p "$GATEWAY_RUNTIME_DIR" -c "$GATEWAY_RUNTIME_DIR/nginx.conf" "$@"

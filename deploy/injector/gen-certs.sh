#!/bin/sh
# Makes a private CA and a serving certificate for remora-injector.remora-system.svc with openssl,
# then prints the caBundle and the kubectl commands that install them (or runs them with --apply).
#   deploy/injector/gen-certs.sh [--apply] [OUTDIR]      (OUTDIR default: ./remora-injector-certs)
# Environment: SERVICE (remora-injector), NAMESPACE (remora-system), DAYS (365).
set -eu

APPLY=0
if [ "${1:-}" = "--apply" ]; then APPLY=1; shift; fi
OUT="${1:-./remora-injector-certs}"
SERVICE="${SERVICE:-remora-injector}"
NAMESPACE="${NAMESPACE:-remora-system}"
DAYS="${DAYS:-365}"
HOST="${SERVICE}.${NAMESPACE}.svc"

command -v openssl >/dev/null 2>&1 || { echo "gen-certs.sh: openssl is required" >&2; exit 1; }
mkdir -p "$OUT"
umask 077

# CA: signs only this serving certificate; keep ca.key offline or delete it.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$DAYS" \
  -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -subj "/CN=remora-injector-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

cat > "$OUT/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:${SERVICE},DNS:${SERVICE}.${NAMESPACE},DNS:${HOST},DNS:${HOST}.cluster.local
EXT
openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$OUT/tls.key" -out "$OUT/tls.csr" -subj "/CN=${HOST}" 2>/dev/null
openssl x509 -req -sha256 -days "$DAYS" -in "$OUT/tls.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" \
  -CAcreateserial -out "$OUT/tls.crt" -extfile "$OUT/server.ext" 2>/dev/null
rm -f "$OUT/tls.csr" "$OUT/server.ext" "$OUT/ca.srl"
openssl verify -CAfile "$OUT/ca.crt" "$OUT/tls.crt" >/dev/null

CA_BUNDLE="$(base64 < "$OUT/ca.crt" | tr -d '\n')"
printf '%s\n' "$CA_BUNDLE" > "$OUT/caBundle.b64"

PATCH="[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"${CA_BUNDLE}\"},{\"op\":\"add\",\"path\":\"/webhooks/1/clientConfig/caBundle\",\"value\":\"${CA_BUNDLE}\"}]"
if [ "$APPLY" = 1 ]; then
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n "$NAMESPACE" create secret tls "${SERVICE}-tls" --cert="$OUT/tls.crt" --key="$OUT/tls.key" \
    --dry-run=client -o yaml | kubectl apply -f -
  kubectl patch mutatingwebhookconfiguration "$SERVICE" --type=json -p "$PATCH"
else
  echo "Wrote $OUT/ca.crt, $OUT/tls.crt, $OUT/tls.key (serving certificate for $HOST)."
  echo
  echo "caBundle: $CA_BUNDLE"
  echo
  echo "Install:"
  echo "  kubectl -n $NAMESPACE create secret tls ${SERVICE}-tls --cert=$OUT/tls.crt --key=$OUT/tls.key"
  echo "  kubectl apply -k deploy/"
  echo "  kubectl patch mutatingwebhookconfiguration $SERVICE --type=json -p '$PATCH'"
fi

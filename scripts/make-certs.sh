#!/usr/bin/env bash
# Makes the throwaway PKI of a local stack or a test run in DIR:
#   ca.pem / ca.key           the CA that signs every TLS certificate of the stack
#   server.pem / server.key   a leaf for 127.0.0.1 and localhost (pns-mock, pushhubd)
#   apns.p8 / apns-pub.pem    an APNs token-auth key (PKCS#8 EC P-256) and its public half
#   fcm.key / fcm-pub.pem     an FCM service-account key (PKCS#8 RSA 2048) and its public half
# Idempotent: existing files are kept.
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
if [[ ! -f ca.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=pushhub local CA" -keyout ca.key -out ca.pem 2>/dev/null
fi
if [[ ! -f server.pem ]]; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile server.ext -out server.pem 2>/dev/null
  rm -f server.csr server.ext ca.srl
fi
if [[ ! -f apns.p8 ]]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out apns.p8 2>/dev/null
  openssl pkey -in apns.p8 -pubout -out apns-pub.pem 2>/dev/null
fi
if [[ ! -f fcm.key ]]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out fcm.key 2>/dev/null
  openssl pkey -in fcm.key -pubout -out fcm-pub.pem 2>/dev/null
fi

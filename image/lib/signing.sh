# RAUC signing-key selection for image/build.sh, sourced (kept apart so
# tests/tests/image_signing.rs can run it without building an image).
#
# select_signing_key CACHE LOG sets sign_key, cert, keyring and
# signing ("release" or "development"):
#   - EDGE_RAUC_KEY / EDGE_RAUC_CERT: the release key (PEM files or a PKCS#11
#     URI for the key), kept outside the repository;
#   - a release build (EDGE_RELEASE=1 or build.sh --release) without them
#     fails: it must never ship an image or bundle signed with a key that
#     lives on a build machine;
#   - otherwise a development key made once under CACHE/keys (gitignored),
#     with a warning saying so.
select_signing_key() {
  local cache="$1" log="$2" keys="$1/keys"
  if [[ -n "${EDGE_RAUC_KEY:-}" || -n "${EDGE_RAUC_CERT:-}" ]]; then
    if [[ -z "${EDGE_RAUC_KEY:-}" || -z "${EDGE_RAUC_CERT:-}" ]]; then
      echo "error: EDGE_RAUC_KEY and EDGE_RAUC_CERT must be set together" >&2
      return 1
    fi
    # A PKCS#11 URI is not a file; a file must exist.
    local f
    for f in "$EDGE_RAUC_KEY" "$EDGE_RAUC_CERT"; do
      if [[ "$f" != pkcs11:* && ! -s "$f" ]]; then
        echo "error: signing key/certificate $f is missing or empty" >&2
        return 1
      fi
    done
    sign_key="$EDGE_RAUC_KEY" cert="$EDGE_RAUC_CERT" signing=release
  elif [[ "${EDGE_RELEASE:-0}" == 1 ]]; then
    echo "error: release build without the release key: set EDGE_RAUC_KEY and EDGE_RAUC_CERT (refusing to sign with a development key)" >&2
    return 1
  else
    sign_key="$keys/dev.key.pem" cert="$keys/dev.cert.pem" signing=development
    if [[ ! -s "$sign_key" ]]; then
      mkdir -p "$keys" && chmod 0700 "$keys"
      openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/O=edge-agent/CN=edge-agent development" \
        -keyout "$sign_key" -out "$cert" 2>>"$log"
    fi
    echo "warning: signing with the DEVELOPMENT key $sign_key (not a release build: boxes with this image accept bundles signed by this machine's key)" >&2
  fi
  # The image trusts the signing certificate itself (a single-level keyring).
  keyring="${EDGE_RAUC_KEYRING:-$cert}"
}

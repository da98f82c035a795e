#!/usr/bin/env bash
# The end-to-end espsec demo on a synthetic ESP32-S3 app. Run by `make demo`.
set -euo pipefail

OUT=demo-out
rm -rf "$OUT" && mkdir -p "$OUT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Secure Boot v2 signing keys (RSA-3072, 0600, never overwritten)"
espsec secure-boot generate-key --scheme rsa3072 "$OUT/signing-key-0.pem"
espsec secure-boot generate-key --scheme rsa3072 "$OUT/signing-key-1.pem"
ls -l "$OUT"/*.pem

step "A small synthetic ESP32-S3 app image"
espsec image build-app --chip esp32s3 --version 1.0.0 --secure-version 1 "$OUT/app.bin"
espsec image info "$OUT/app.bin"

step "Sign with two keys (two signature blocks)"
espsec secure-boot sign -k "$OUT/signing-key-0.pem" -k "$OUT/signing-key-1.pem" \
    -o "$OUT/app-signed.bin" "$OUT/app.bin"
espsec secure-boot info "$OUT/app-signed.bin"

step "The eFuse key digests to burn into SECURE_BOOT_DIGEST0/1"
DIGEST0=$(espsec secure-boot key-digest "$OUT/signing-key-0.pem")
DIGEST1=$(espsec secure-boot key-digest "$OUT/signing-key-1.pem")
echo "SECURE_BOOT_DIGEST0 = $DIGEST0"
echo "SECURE_BOOT_DIGEST1 = $DIGEST1"

step "Verify as the ROM does: against the eFuse digests"
espsec secure-boot verify --key-digest "$DIGEST0" --key-digest "$DIGEST1" "$OUT/app-signed.bin"

step "Revoke key 0 (SECURE_BOOT_KEY_REVOKE0): block 1 still verifies"
espsec secure-boot verify --key-digest "$DIGEST0" --key-digest "$DIGEST1" --revoked 0 \
    "$OUT/app-signed.bin"

step "Tamper with one byte of the signed app: refused"
cp "$OUT/app-signed.bin" "$OUT/app-tampered.bin"
python - "$OUT/app-tampered.bin" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[0x120] ^= 0x01  # one bit of the first code segment
open(path, "wb").write(data)
PY
if espsec secure-boot verify --key-digest "$DIGEST0" --key-digest "$DIGEST1" \
    "$OUT/app-tampered.bin"; then
    echo "tampered image was accepted: demo FAILED" >&2
    exit 1
fi
echo "(refused, as it must be)"

step "Done: outputs are in $OUT/"

#!/usr/bin/env bash
# The end-to-end espsec demo on a synthetic ESP32-S3 app. Run by `make demo`.
set -euo pipefail

OUT=demo-out
rm -rf "$OUT" && mkdir -p "$OUT"
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then  # bold headings on a terminal only
    step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    step() { printf '\n== %s\n' "$*"; }
fi

step "Secure Boot v2 signing keys (RSA-3072, 0600, never overwritten)"
espsec secure-boot generate-key --scheme rsa3072 -o "$OUT/signing-key-0.pem"
espsec secure-boot generate-key --scheme rsa3072 -o "$OUT/signing-key-1.pem"
ls -l "$OUT"/*.pem

step "A small synthetic ESP32-S3 app image"
espsec image build-app --chip esp32s3 --version 1.0.0 --secure-version 1 -o "$OUT/app.bin"
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

step "Virtual device: a blank ESP32-S3 (every eFuse 0, flash erased)"
DEV="$OUT/device"
espsec device create --chip esp32s3 --flash-size 4MB "$DEV"
espsec image build-bootloader --chip esp32s3 -o "$OUT/bootloader.bin"
espsec secure-boot sign -k "$OUT/signing-key-0.pem" -k "$OUT/signing-key-1.pem" \
    -o "$OUT/bootloader-signed.bin" "$OUT/bootloader.bin"
cat > "$OUT/partitions.csv" <<'CSV'
# Name,   Type, SubType, Offset,   Size
nvs,      data, nvs,     0x9000,   0x4000
otadata,  data, ota,     0xd000,   0x2000
phy_init, data, phy,     0xf000,   0x1000
ota_0,    app,  ota_0,   0x10000,  0xf0000
ota_1,    app,  ota_1,   0x100000, 0xf0000
nvs_keys, data, nvs_keys, 0x1f0000, 0x1000, encrypted
esp_secure_cert, 0x3F, , 0x1f1000, 0x2000, encrypted
CSV
cat > "$OUT/sdkconfig" <<'CFG'
CONFIG_IDF_TARGET="esp32s3"
CONFIG_SECURE_BOOT=y
CONFIG_SECURE_FLASH_ENC_ENABLED=y
CONFIG_SECURE_FLASH_ENCRYPTION_MODE_RELEASE=y
CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y
CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK=y
CFG
espsec device flash "$DEV" --sdkconfig "$OUT/sdkconfig" \
    --write 0x0 "$OUT/bootloader-signed.bin" --partition-table "$OUT/partitions.csv" \
    --write 0x10000 "$OUT/app-signed.bin"

step "Factory: a device-unique HMAC_UP key and the Secure Boot key digests, burned over download mode"
# The device in ROM download mode (GPIO0 low) on a socket: the real esptool and the eFuse
# burns go through the ROM's serial protocol, and the chip's own rules apply.
espsec device serve "$DEV" --quiet > "$OUT/serve.url" &
SERVE=$!
for _ in $(seq 100); do [ -s "$OUT/serve.url" ] && break; sleep 0.1; done
DL_URL=$(head -n 1 "$OUT/serve.url")
esptool --port "$DL_URL" --no-stub get-security-info | grep -E "^(Chip ID|Secure Boot|Flash Enc)"
python -c 'import os, sys; sys.stdout.buffer.write(os.urandom(32))' > "$OUT/hmac-key.bin"
espsec efuse burn-key --port "$DL_URL" BLOCK_KEY5 "$OUT/hmac-key.bin" HMAC_UP | tail -n 1
# The production Secure Boot key digests, burned over the same port before the first boot
# (the bootloader then finds them in place rather than burning its own).
espsec efuse burn-key-digest --port "$DL_URL" --key-digest "$DIGEST0" BLOCK_KEY0 SECURE_BOOT_DIGEST0 \
    | tail -n 1
espsec efuse burn-key-digest --port "$DL_URL" --key-digest "$DIGEST1" BLOCK_KEY1 SECURE_BOOT_DIGEST1 \
    | tail -n 1
rm "$OUT/hmac-key.bin"  # read-protected in the chip; no copy is kept anywhere
kill "$SERVE" && wait "$SERVE" 2>/dev/null || true

step "Factory: the device's identity for mutual TLS (RSA key in the DS peripheral, cert from the fleet's device CA)"
FLEET="$OUT/fleet"
espsec fleet init --key-digest "$DIGEST0" --token-output "$OUT/fleet-admin-token" "$FLEET" \
    | grep "admin token"
espsec device provision-identity "$DEV" --device-id demo-s3-0001 \
    --ca "$FLEET/device-ca.pem" --ca-key "$FLEET/device-ca-key.pem"
echo "challenge from the fleet" > "$OUT/challenge.txt"
espsec device sign "$DEV" "$OUT/challenge.txt" -o "$OUT/challenge.sig"

step "First boot: the bootloader turns on Secure Boot v2 and release-mode flash encryption"
espsec device boot "$DEV"

step "Audit: the device is production-ready (no high finding); SARIF and HTML reports for CI"
espsec audit "$DEV" --fail-on high --brief -o "$OUT/audit.html" | tail -n 1
espsec audit "$DEV" -o "$OUT/audit.sarif" > /dev/null

step "Locked: the first boot left the chip in Secure Download Mode; eFuse burns are refused"
if espsec efuse burn --device "$DEV" SECURE_VERSION 0xffff; then
    echo "a locked chip accepted an eFuse burn: demo FAILED" >&2
    exit 1
fi

step "Second boot: the ROM and the bootloader verify against the burned key digests"
espsec device boot "$DEV" | grep -E "verified with|^running"

step "Key 1 is retired: the running app revokes SECURE_BOOT_DIGEST1"
espsec device revoke-key "$DEV" 1

step "Three updates the device refuses"
espsec image build-app --chip esp32s3 --version 2.0.0 --secure-version 2 -o "$OUT/app-2.bin" >/dev/null
espsec secure-boot sign -k "$OUT/signing-key-0.pem" -o "$OUT/app-2-signed.bin" "$OUT/app-2.bin" >/dev/null
python - "$OUT/app-2-signed.bin" "$OUT/app-2-tampered.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[0x120] ^= 0x01  # two bytes of the first segment: the XOR checksum still matches,
data[0x121] ^= 0x01  # only the Secure Boot signature can tell
open(sys.argv[2], "wb").write(data)
PY
espsec secure-boot sign -k "$OUT/signing-key-1.pem" -o "$OUT/app-2-key1.bin" "$OUT/app-2.bin" >/dev/null
espsec image build-app --chip esp32s3 --version 0.9.0 --secure-version 0 -o "$OUT/app-old.bin" >/dev/null
espsec secure-boot sign -k "$OUT/signing-key-0.pem" -o "$OUT/app-old-signed.bin" "$OUT/app-old.bin" >/dev/null
for update in app-2-tampered app-2-key1 app-old-signed; do
    if result=$(espsec device ota "$DEV" "$OUT/$update.bin"); then
        echo "$result"
        echo "$update.bin was accepted: demo FAILED" >&2
        exit 1
    fi
    echo "$result" | tail -n 1
done

step "Fleet OTA: an HTTPS fleet server trusting SECURE_BOOT_DIGEST0; devices authenticate by mutual TLS"
espsec fleet serve --port 0 --admin-port 0 "$FLEET" 2>"$OUT/fleet.log" &
FLEET_PID=$!
trap 'kill "$FLEET_PID" 2>/dev/null; wait "$FLEET_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    URL=$(sed -n 's/^fleet server on //p' "$OUT/fleet.log")
    ADMIN_URL=$(sed -n 's/^fleet admin on \([^ ]*\).*/\1/p' "$OUT/fleet.log")
    [ -n "$URL" ] && [ -n "$ADMIN_URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { cat "$OUT/fleet.log" >&2; echo "fleet server did not start" >&2; exit 1; }
echo "fleet server on $URL"
echo "fleet admin API and dashboard on $ADMIN_URL (127.0.0.1 only)"
export ESPSEC_FLEET_URL="$ADMIN_URL" ESPSEC_FLEET_STATE="$FLEET" \
    ESPSEC_FLEET_TOKEN_FILE="$OUT/fleet-admin-token"
publish() {  # publish BUNDLE: upload it (the server verifies it), offer it to every device
    local line
    line=$(espsec fleet release upload "$1")
    echo "$line"
    RELEASE=$(echo "$line" | sed -n 's/^release \([0-9a-f]*\):.*/\1/p')
    espsec fleet cohort assign default "$RELEASE"
}

step "Provision the device's OTA client in its NVS: server, CA, manifest key, ECIES from BLOCK_KEY5"
espsec device provision-ota "$DEV" --server "$URL" --ca "$FLEET/tls/ca.pem" \
    --manifest-key "$FLEET/manifest-key.pub.pem" --device-id demo-s3-0001 \
    --hmac-key-block BLOCK_KEY5 --pub-key-output "$OUT/device-ecies.pub.pem"

step "Publish 2.0.0: signed with key 0, pre-encrypted for the device's ECIES key"
espsec ota pack -k "$OUT/signing-key-0.pem" --encrypt-to "$OUT/device-ecies.pub.pem" \
    -o "$OUT/release-2.zip" "$OUT/app-2.bin" | sed -n 1p
publish "$OUT/release-2.zip"

step "The device updates: check in, manifest, app descriptor first, download, decrypt, verify, switch"
espsec device ota "$DEV"

step "3.0.0 fails its self-test after the reboot: the device rolls back to 2.0.0"
espsec image build-app --chip esp32s3 --version 3.0.0 --secure-version 3 -o "$OUT/app-3.bin" >/dev/null
espsec ota pack -k "$OUT/signing-key-0.pem" --encrypt-to "$OUT/device-ecies.pub.pem" \
    -o "$OUT/release-3.zip" "$OUT/app-3.bin" >/dev/null
publish "$OUT/release-3.zip"
if result=$(espsec device ota "$DEV" --self-test fail); then
    echo "$result"; echo "3.0.0 was kept: demo FAILED" >&2; exit 1
fi
echo "$result" | grep -E "\[(self-test|confirm|reboot)\]|rolled_back|^running ota"

step "A release with a lower secure_version (1.5.0, secure_version 1): the server does not offer it"
espsec image build-app --chip esp32s3 --version 1.5.0 --secure-version 1 -o "$OUT/app-1.5.bin" >/dev/null
espsec ota pack -k "$OUT/signing-key-0.pem" --encrypt-to "$OUT/device-ecies.pub.pem" \
    -o "$OUT/release-1.5.zip" "$OUT/app-1.5.bin" >/dev/null
publish "$OUT/release-1.5.zip"
espsec device ota "$DEV" | tail -n 1

step "...and when a compromised server offers it anyway, the device refuses it from its app descriptor"
python - "$FLEET/fleet.sqlite3" "$RELEASE" <<'PY'
import sqlite3, sys  # the attacker rewrites the release's secure_version in the fleet database
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE releases SET secure_version = 9 WHERE id = ?", (sys.argv[2],))
db.commit()
PY
if result=$(espsec device ota "$DEV"); then
    echo "$result"; echo "the downgrade was accepted: demo FAILED" >&2; exit 1
fi
echo "$result" | grep -E "\[(manifest|image-header|report)\]|^refused"

step "What the fleet saw"
espsec fleet devices list
espsec fleet reports

step "device status: locked down"
espsec device status "$DEV"

step "Done: outputs are in $OUT/"

"""SRP-6a of protocomm security 2 against ESP-IDF's own test vector."""

from __future__ import annotations

import pytest

from espsec.provisioning.protocomm import srp

# ESP-IDF components/protocomm/test_apps/main/test_srp.c (Unlicense OR CC0-1.0): the
# username "wifiprov", password "abcd1234", sec2_salt and sec2_verifier (also used by
# test_security2.c). Hex of the C byte arrays, in source order.
IDF_USERNAME = b"wifiprov"
IDF_PASSWORD = b"abcd1234"
IDF_SALT = bytes.fromhex("036ee0c7bcb9eda84c9eac97d93decf4")
IDF_VERIFIER = bytes.fromhex(
    "7c7c85476508946dd636af37d7e8914378cffd616c59d2f83908127238de9e24a470261cdfa903c2b270e7"
    "b13224da111d9718dc607208cc9ac90c4827e2ae89aa1625b804d21a9b3a8f37f6e43a712ee127866eadce"
    "28ff5446601fb99687dc5740a7d46cc97754dc1682f0ed356ac470ad3d90b5819470d7bc65b2d518e02ec3"
    "a5f968dd647bb8b73c9cfc00d8717eb79a7cb1b7c2c318342932433e0099e98294e3d82ab09629b7df0e5f"
    "08334076529132009f972c896c391ec8280544173f68028a9f4461d1f5a17e5a70d2c72381cb3868e42c20"
    "bc40577617bd08b896bc26eb32466935058c1570d91be9becca938a667f0ad5013197264bf52c234e21b11"
    "797472bd345bb1e2fd6673fe716474d04ebc51241940870e9240e621e72d4e37762f2ee268c789e8321342"
    "068484534ab30c1b4c8d1c519719abae77ffdbecf0109534336bcb3e840fb9d85fb8a0b855533e70f718f5"
    "ce7b4ebf27cecea8b3be40c5c532293e71649ede8cf675a1e6f653c831a878de5040f762de36b2ba"
)


def test_verifier_matches_esp_idf_test_srp_vector():
    assert srp.verifier(IDF_USERNAME, IDF_PASSWORD, IDF_SALT) == IDF_VERIFIER
    assert len(IDF_VERIFIER) == srp.N_LEN


def test_client_and_device_agree_on_the_key_and_proofs():
    device = srp.SrpServer(IDF_SALT, IDF_VERIFIER)
    client = srp.SrpClient(IDF_USERNAME, IDF_PASSWORD)
    assert len(client.public_key) == srp.N_LEN
    key = device.session_key(client.public_key)
    proof = client.process_challenge(IDF_SALT, device.public_key)
    device_proof = device.verify_client(IDF_USERNAME, proof)
    assert device_proof is not None and len(key) == 64
    assert client.verify_device(device_proof) == key


@pytest.mark.parametrize(
    ("username", "password"), [(b"wifiprov", b"abcd1235"), (b"wifiprow", b"abcd1234")]
)
def test_wrong_password_or_username_gives_no_device_proof(username, password):
    device = srp.SrpServer(IDF_SALT, IDF_VERIFIER)
    client = srp.SrpClient(username, password)
    device.session_key(client.public_key)
    proof = client.process_challenge(IDF_SALT, device.public_key)
    assert device.verify_client(username, proof) is None


@pytest.mark.parametrize("a_pub", [b"\x00" * 384, srp.to_bytes(srp.N), srp.to_bytes(2 * srp.N)])
def test_device_rejects_client_key_that_is_zero_mod_n(a_pub):
    """RFC 5054 section 2.5.4; test_srp.c checks A = 0 and A = N."""
    with pytest.raises(ValueError, match="mod N"):
        srp.SrpServer(IDF_SALT, IDF_VERIFIER).session_key(a_pub)


def test_client_rejects_device_key_that_is_zero_mod_n():
    client = srp.SrpClient(IDF_USERNAME, IDF_PASSWORD)
    with pytest.raises(ValueError):
        client.process_challenge(IDF_SALT, srp.to_bytes(srp.N))


def test_generated_salt_never_starts_with_zero():
    assert all(srp.new_salt()[0] for _ in range(300))


def test_c_arrays_hold_salt_and_verifier_bytes():
    text = srp.c_arrays(IDF_SALT, IDF_VERIFIER)
    assert text.startswith("static const char sec2_salt[] = {\n    0x03, 0x6e,")
    assert "static const char sec2_verifier[] = {" in text
    assert text.count("0x") == len(IDF_SALT) + len(IDF_VERIFIER)

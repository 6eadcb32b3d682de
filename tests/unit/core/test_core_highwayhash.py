"""HighwayHash-64 against published vectors and the node hashes seen on the wire."""

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .twins import both_twins

# minio/highwayhash highwayhash_test.go, testVectors64: key = bytes 0..31, input = bytes
# 0..n-1 for n = 0..64, each the 8-byte digest (the Sum64 value little-endian) in hex.
MINIO_KEY = bytes(range(32))
MINIO_VECTORS_64 = [
    "536ec222de567a90", "78ddcdc7aa43ab7e", "623db5b09a56d0b8", "803d468aabef6b5c",
    "da7e009368a405f2", "4145a9e468168a2b", "6fcaef5b32cc4cbd", "8294f53817ae024d",
    "71315fe5085120e1", "84157ac74e64d232", "0ba903b1cd0ae1f6", "155c415b61f4bbc3",
    "9cfa630004c23c24", "ff41e665ce589aa8", "235a4548a331b024", "3bf349a4863f7940",
    "32b87ef98934abcf", "e2c0c5c8d267fe19", "c25c569ca690dd04", "04c571238e51d975",
    "16ddd341119bad38", "e0708acd2c436402", "90336888625adba9", "8c023f009254b0d7",
    "1ee559ea5a615f20", "8428052196c8e0ee", "4f4f28a7931afc1b", "1da90db7b5752151",
    "39c6a2a076891ff7", "e7e3841fef3f09ae", "0f866111b092ca22", "685a03cf7c00c79f",
    "fc80d5ecd964c9a0", "fc8131a03cf7902c", "9eeb91564ef85c18", "9baa5227eff5c14f",
    "eb330a5e1a39b7f5", "9c6ce9b4834bb8b9", "b4d95c2a71fe425e", "dc973f0cf9f250a1",
    "7d632d5ed722a57f", "2bd3ff0dccd01a18", "2840851e98ed8938", "2dee86c5e89742fb",
    "9c0528bb454a066d", "0c86ecb309365690", "66c69740e9fca47a", "081e916bc0ba2613",
    "344f152b8d1626b9", "8d94b14589841999", "be5e8234c58fa9a2", "b6f03e21959080e9",
    "e9c07b7083542e58", "f56a8aa814946e08", "3d74f6208db986ee", "a7c0b109f67f9bf8",
    "e8c3229ec19c7d4c", "6f2a56245000979a", "efebe623f41cd45d", "27e268049c6013df",
    "5a158841f6a40d6e", "a1d4d7504bba55b7", "bd79746484347a88", "a03921bfe9eb8eab",
    "ffa6d24c5d2c5475",
]  # fmt: skip

# spec/wire.md §4.1 and golden/README.md: the uint64 value, as it appears (big-endian) on the
# wire.
NODE_HASHES = {
    "foo": "ef7a78b67f92bdf7",
    "bar": "14ef88ca522894d1",
    "node1": "61052d2b582eb15e",
    "node2": "51bcc6e14eb3fee1",
    "node3": "2b1efddaab3bdbdc",
    "control": "3bdee1e3b5f2dbcd",
    "worker": "a6e72546dd757047",
    "": "7035da75b9d54469",
    "receptor-node-with-a-long-name-exceeding-32-bytes": "7e2daf2118da6e04",
    "alpha": "65efb30772de1513",
    "beta": "28501aba8f06ebda",
}

SETTINGS = settings(max_examples=150, deadline=None)


def test_minio_vector_count() -> None:
    assert len(MINIO_VECTORS_64) == 65


@pytest.mark.parametrize("length", range(65))
def test_minio_vectors(highwayhash: ModuleType, length: int) -> None:
    expected = int.from_bytes(bytes.fromhex(MINIO_VECTORS_64[length]), "little")
    assert highwayhash.hash64(bytes(range(length)), MINIO_KEY) == expected


@pytest.mark.parametrize(("name", "wire"), NODE_HASHES.items())
def test_node_hash_vectors(highwayhash: ModuleType, name: str, wire: str) -> None:
    value = highwayhash.node_hash(name)
    assert value == int(wire, 16)
    assert value.to_bytes(8, "big").hex() == wire
    assert highwayhash.hash64(name.encode()) == value
    assert highwayhash.hash64(name.encode(), highwayhash.ZERO_KEY) == value


def test_zero_key(highwayhash: ModuleType) -> None:
    assert bytes(32) == highwayhash.ZERO_KEY


def test_node_hash_encodes_utf8(highwayhash: ModuleType) -> None:
    name = "nœud-ñ-节点"
    assert highwayhash.node_hash(name) == highwayhash.hash64(name.encode("utf-8"))


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_must_be_32_bytes(highwayhash: ModuleType, size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        highwayhash.hash64(b"abc", bytes(size))


def test_accepts_bytes_like(highwayhash: ModuleType) -> None:
    data = bytes(range(100))
    expected = highwayhash.hash64(data, MINIO_KEY)
    assert highwayhash.hash64(bytearray(data), MINIO_KEY) == expected
    assert highwayhash.hash64(memoryview(data), bytearray(MINIO_KEY)) == expected
    assert highwayhash.hash64(memoryview(b"xx" + data)[2:], MINIO_KEY) == expected


def test_rejects_text(highwayhash: ModuleType) -> None:
    with pytest.raises(TypeError):
        highwayhash.hash64("alpha")
    with pytest.raises(TypeError):
        highwayhash.node_hash(b"alpha")


@SETTINGS
@given(data=st.binary(max_size=300), key=st.binary(min_size=32, max_size=32))
def test_twins_agree(data: bytes, key: bytes) -> None:
    compiled, pure = both_twins("highwayhash")
    value = compiled.hash64(data, key)
    assert value == pure.hash64(data, key)
    assert 0 <= value < 2**64


@SETTINGS
@given(name=st.text(max_size=40))
def test_twins_agree_on_node_names(name: str) -> None:
    compiled, pure = both_twins("highwayhash")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            compiled.node_hash(name)
        with pytest.raises(UnicodeEncodeError):
            pure.node_hash(name)
        return
    assert compiled.node_hash(name) == pure.node_hash(name)
